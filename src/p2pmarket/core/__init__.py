"""The pure core: scenario, network, model, clearing and results.

Nothing in here reads or writes files, talks to a network, reads the clock for anything
but timings, prints, or configures logging (but for one `NullHandler` on linopy's logger, so
that its records reach the application's logging and never stderr on their own). Edges
(`p2pmarket.io`, `p2pmarket.cli`, ...) compose it.
"""
