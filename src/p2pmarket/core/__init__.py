"""The pure core: scenario, network, model, clearing and results.

Nothing in here reads or writes files, talks to a network, reads the clock for anything
but timings, or configures logging. Edges (`p2pmarket.io`, `p2pmarket.cli`, ...) compose it.
"""
