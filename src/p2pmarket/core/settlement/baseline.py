"""The no-trading baseline that savings are measured against (SPEC C4)."""

from __future__ import annotations

from p2pmarket.core.scenario import Scenario

__all__ = ["baseline_scenario"]


def baseline_scenario(scenario: Scenario) -> Scenario:
    """The no-trading baseline: the same peers, each trading with the grid alone (over the
    links the scenario allows, when it restricts them), cleared under `system-cost`."""
    grids = scenario.grid_ids
    others = [p.id for p in scenario.peers if p.role != "grid"]
    links = [[g, n] for g in grids for n in others] + [[n, g] for g in grids for n in others]
    if scenario.links is not None:
        allowed = set(scenario.links)
        links = [link for link in links if tuple(link) in allowed]
    return scenario.replace(
        design="p2p",
        objective="system-cost",
        links=links,
        name=f"{scenario.name} (baseline)",
    )
