"""How figures stay readable for large markets: past `PER_PEER` peers, they draw communities.

A figure of a few peers draws each peer. A market of hundreds of peers would give hundreds of
stacked layers, panels, rows and legend entries, figures thousands of pixels tall and minutes
of drawing: there each figure draws one series per *group* instead, a group being a
community, the grid, or the peers in no community. Past `MAX_GROUPS` groups the largest
keep their own series and the rest are summed as `others (n)`. Every figure's size is then
bounded whatever the number of peers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.reports.style import GRID_COLOUR, PeerStyle, peer_styles

__all__ = [
    "MAX_GROUPS",
    "MAX_PANELS",
    "MAX_ROWS",
    "NO_COMMUNITY",
    "OTHERS",
    "PER_PEER",
    "by_group",
    "group_of",
    "group_styles",
    "is_large",
    "keep_largest",
    "keep_largest_of",
    "series_of",
]

PER_PEER = 24
"""Markets with more non-grid peers than this are drawn by community."""
MAX_GROUPS = 12
"""Series (and legend entries) of one figure at most; the smallest are summed as others."""
MAX_PANELS = 24
"""Small multiples of one figure at most."""
MAX_ROWS = 40
"""Rows of one heat map or bar chart at most."""
NO_COMMUNITY = "no community"
OTHERS = "others"


def is_large(scenario: Scenario) -> bool:
    """Whether a figure of `scenario` draws groups (communities) rather than peers."""
    return sum(p.role != "grid" for p in scenario.peers) > PER_PEER


def group_of(scenario: Scenario) -> dict[str, str]:
    """Peer id -> its group: its community's id, `grid` (every grid peer), or `no community`.

    A community whose id is `grid` or `no community` would merge with that group; such ids
    are written `community grid` instead."""
    owner = scenario.community_of()
    reserved = {"grid", NO_COMMUNITY, OTHERS}
    out: dict[str, str] = {}
    for peer in scenario.peers:
        community = owner.get(peer.id)
        if peer.role == "grid":
            out[peer.id] = "grid"
        elif community is None:
            out[peer.id] = NO_COMMUNITY
        else:
            out[peer.id] = f"community {community}" if community in reserved else community
    return out


def by_group(table: pd.DataFrame, groups: Mapping[str, str]) -> pd.DataFrame:
    """A period x peer table summed into period x group, groups in order of first member."""
    order = list(dict.fromkeys(groups[str(p)] for p in table.columns))
    summed = table.T.groupby([groups[str(p)] for p in table.columns], sort=False).sum().T
    return summed.reindex(columns=order)


def keep_largest(
    table: pd.DataFrame, size: Sequence[float] | None = None, limit: int = MAX_GROUPS
) -> pd.DataFrame:
    """At most `limit` columns: the `limit - 1` largest (by `size`, else by the column's sum
    of absolute values) in their order, the rest summed into a last column `others (n)`."""
    return keep_largest_of([table], size, limit)[0]


def keep_largest_of(
    tables: Sequence[pd.DataFrame], size: Sequence[float] | None = None, limit: int = MAX_GROUPS
) -> list[pd.DataFrame]:
    """`keep_largest` on tables of the same columns, the same columns kept in each (by
    `size`, else by the sum of absolute values over every table)."""
    first = tables[0]
    if first.shape[1] <= limit:
        return list(tables)
    weight = (
        np.asarray(size, dtype=float)
        if size is not None
        else sum(t.abs().sum(axis=0).to_numpy(dtype=float) for t in tables)
    )
    keep = set(np.argsort(-np.asarray(weight), kind="stable")[: limit - 1].tolist())
    kept = [c for i, c in enumerate(first.columns) if i in keep]
    rest = [c for i, c in enumerate(first.columns) if i not in keep]
    out = []
    for table in tables:
        part = table[kept].copy()
        part[f"{OTHERS} ({len(rest)})"] = table[rest].sum(axis=1)
        out.append(part)
    return out


def series_of(
    result: ClearingResult, *tables: pd.DataFrame, limit: int = MAX_GROUPS
) -> tuple[list[pd.DataFrame], dict[str, PeerStyle], str]:
    """Period x peer `tables` as the series a figure draws, their styles and what a series
    is (`peer` or `community`): unchanged for a small market; summed by group, at most
    `limit` groups, for a large one (see the module docstring)."""
    if not is_large(result.scenario):
        return list(tables), peer_styles(result.scenario), "peer"
    groups = group_of(result.scenario)
    grouped = keep_largest_of([by_group(t, groups) for t in tables], limit=limit)
    names = [str(c) for c in grouped[0].columns]
    styles = group_styles(names)
    return grouped, styles, "community"


def group_styles(names: Sequence[str]) -> dict[str, PeerStyle]:
    """A style per group as `peer_styles` gives one per peer; the grid dark grey, others
    light grey."""
    plain = [n for n in names if n != "grid" and not n.startswith(OTHERS)]
    styles = peer_styles(plain)
    for name in names:
        if name == "grid":
            styles[name] = PeerStyle(GRID_COLOUR)
        elif name.startswith(OTHERS):
            styles[name] = PeerStyle("#BBBBBB", "...")
    return {name: styles[name] for name in names}
