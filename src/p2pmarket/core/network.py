"""From a scenario to arrays: per-peer data, groups (communities) and the trade links of a design.

Everything here is vectorised numpy over peers, links and periods; nothing loops over pairs
of peers in Python. The link rules are those of SPEC section 3:

* p2p: a link m -> n for every ordered pair of distinct peers (or the scenario's `links`).
  Fee: the uniform fee when set; else the intra fee if m and n share a community; else the
  fee of the contract (c(m), c(n)) if there is one; else m's export fee.
* community: a community of two or more members gets a manager node. Member -> manager pays
  the intra fee (the uniform fee when set), manager -> member is free. Managers (and peers
  alone in their community, which are their own managers) trade with each other in both
  directions, paying the contract fee if set, else the selling community's export fee (its
  own setting, default 0; for a peer alone, the community's setting if given, else the
  peer's export fee). The uniform fee, when set, replaces both.
* hybrid: the links of both designs.

Links that can never carry energy are left out, which changes no optimum: a seller must be
able to generate or discharge (no-resale rule), and a buyer must have load, flexible demand,
storage, or (the grid) a buy price -- otherwise its balance forces its imports to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.scenario import Scenario, series

__all__ = ["MANAGER_PREFIX", "Network", "PeerData", "build_network", "peer_data"]

MANAGER_PREFIX = "manager:"
"""Manager nodes are named `manager:<community id>`."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PeerData:
    """Per-peer arrays aligned with `scenario.peers` (shape (peers,) or (peers, periods))."""

    ids: pd.Index
    role: npt.NDArray[np.str_]
    group: IntArray
    load_kw: FloatArray
    min_kw: FloatArray
    max_kw: FloatArray
    offer_per_kwh: FloatArray
    export_fee: FloatArray
    can_sell: BoolArray
    can_buy: BoolArray
    group_ids: tuple[str, ...]
    """Community id per group; a peer listed in no community is a group named by its id."""
    group_size: IntArray
    group_intra_fee: FloatArray
    group_export_fee: FloatArray
    pair_fee: FloatArray
    """(groups, groups, periods), NaN where no contract is set."""


@dataclass(frozen=True)
class Network:
    """Nodes (peers first, then manager nodes) and directed trade links with their fees."""

    nodes: pd.Index
    n_peers: int
    seller: IntArray
    buyer: IntArray
    fee_per_kwh: FloatArray
    """(links, periods)."""
    route: npt.NDArray[np.str_]
    """`p2p`, `member-manager`, `manager-member` or `manager-manager` per link."""
    kind: str = "explicit"
    """`explicit` (the design's own links) or `hubs` (`p2pmarket.core.hubs`)."""

    @property
    def hubs(self) -> bool:
        """Whether the pass-through nodes are the fee hubs of the reduced p2p model."""
        return self.kind == "hubs"

    @property
    def managers(self) -> pd.Index:
        return self.nodes[self.n_peers :]

    @property
    def n_links(self) -> int:
        return int(self.seller.size)


def peer_data(s: Scenario) -> PeerData:
    """Per-peer arrays of a scenario: loads, bounds, offers, fees and community groups."""
    T = s.periods
    n = len(s.peers)
    ids = pd.Index(s.peer_ids, name="peer")
    load = np.stack([series(p.load_kw, T) for p in s.peers])
    gen = [p.generation for p in s.peers]
    min_kw = np.stack([series(g.min_kw if g else None, T) for g in gen])
    max_kw = np.stack([series(g.max_kw if g else None, T) for g in gen])
    offer = np.stack([series(g.offer_per_kwh if g else None, T) for g in gen])
    export_fee = np.stack([series(p.export_fee, T) for p in s.peers])
    has_storage = np.array([p.storage is not None for p in s.peers])
    has_flex = np.array([len(p.flexible_load) > 0 for p in s.peers])
    absorbs = np.array([p.buy_price_per_kwh is not None for p in s.peers])

    # Groups: the listed communities, then one group per peer listed nowhere.
    group = np.full(n, -1, dtype=np.int64)
    position = {pid: i for i, pid in enumerate(s.peer_ids)}
    group_ids: list[str] = []
    intra: list[FloatArray] = []
    community_export: list[FloatArray | None] = []
    for c in s.communities:
        group[[position[m] for m in c.members]] = len(group_ids)
        group_ids.append(c.id)
        intra.append(series(c.intra_fee, T))
        community_export.append(None if c.export_fee is None else series(c.export_fee, T))
    for i in np.flatnonzero(group < 0):
        group[i] = len(group_ids)
        group_ids.append(s.peers[i].id)
        intra.append(np.zeros(T))
        community_export.append(None)
    size = np.bincount(group, minlength=len(group_ids)).astype(np.int64)
    group_export = np.zeros((len(group_ids), T))
    for g, fee in enumerate(community_export):
        if fee is not None:
            group_export[g] = fee
        elif size[g] == 1:
            group_export[g] = export_fee[np.flatnonzero(group == g)[0]]

    pair = np.full((len(group_ids), len(group_ids), T), np.nan)
    gindex = {gid: g for g, gid in enumerate(group_ids[: len(s.communities)])}
    for cf in s.community_fees:
        pair[gindex[cf.from_], gindex[cf.to]] = series(cf.fee, T)

    can_sell = (max_kw > 0).any(axis=1) | has_storage
    can_buy = (load > 0).any(axis=1) | has_flex | has_storage | absorbs
    return PeerData(
        ids=ids,
        role=np.array([p.role for p in s.peers]),
        group=group,
        load_kw=load,
        min_kw=min_kw,
        max_kw=max_kw,
        offer_per_kwh=offer,
        export_fee=export_fee,
        can_sell=can_sell,
        can_buy=can_buy,
        group_ids=tuple(group_ids),
        group_size=size,
        group_intra_fee=np.stack(intra) if intra else np.zeros((0, T)),
        group_export_fee=group_export,
        pair_fee=pair,
    )


def build_network(s: Scenario, data: PeerData, design: str) -> Network:
    """Nodes and links of `design` ("p2p", "community" or "hybrid") with their fees."""
    n = len(data.ids)
    T = s.periods
    uniform = None if s.uniform_fee is None else series(s.uniform_fee, T)
    parts: list[tuple[IntArray, IntArray, FloatArray, str]] = []
    managers: list[str] = []
    if design in ("p2p", "hybrid"):
        seller, buyer = _p2p_pairs(s, data)
        parts.append((seller, buyer, _p2p_fee(data, seller, buyer, uniform), "p2p"))
    if design in ("community", "hybrid"):
        managers, community_parts = _community_links(data, uniform, n, T)
        parts.extend(community_parts)
    if design not in ("p2p", "community", "hybrid"):
        raise ValueError(f"unknown design {design!r}")
    seller = np.concatenate([p[0] for p in parts]).astype(np.int64)
    buyer = np.concatenate([p[1] for p in parts]).astype(np.int64)
    fee = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, T))
    route = np.concatenate([np.full(p[0].size, p[3]) for p in parts])
    nodes = pd.Index([*data.ids, *managers], name="node")
    return Network(nodes=nodes, n_peers=n, seller=seller, buyer=buyer, fee_per_kwh=fee, route=route)


def _p2p_pairs(s: Scenario, data: PeerData) -> tuple[IntArray, IntArray]:
    if s.links is None:
        sellers = np.flatnonzero(data.can_sell)
        buyers = np.flatnonzero(data.can_buy)
        seller, buyer = (a.ravel() for a in np.meshgrid(sellers, buyers, indexing="ij"))
    else:
        pairs = pd.DataFrame(s.links, columns=["seller", "buyer"]).drop_duplicates()
        seller = data.ids.get_indexer(pd.Index(pairs["seller"])).astype(np.int64)
        buyer = data.ids.get_indexer(pd.Index(pairs["buyer"])).astype(np.int64)
    keep = (seller != buyer) & data.can_sell[seller] & data.can_buy[buyer]
    return seller[keep], buyer[keep]


def _p2p_fee(
    data: PeerData, seller: IntArray, buyer: IntArray, uniform: FloatArray | None
) -> FloatArray:
    """Fee of each p2p link and period (SPEC section 3)."""
    T = data.load_kw.shape[1]
    if uniform is not None:
        return np.broadcast_to(uniform, (seller.size, T)).copy()
    gs, gb = data.group[seller], data.group[buyer]
    contract = data.pair_fee[gs, gb]
    between = np.where(np.isnan(contract), data.export_fee[seller], contract)
    return np.where((gs == gb)[:, None], data.group_intra_fee[gs], between)


def _community_links(
    data: PeerData, uniform: FloatArray | None, n: int, T: int
) -> tuple[list[str], list[tuple[IntArray, IntArray, FloatArray, str]]]:
    """Manager nodes and the links of the community design."""
    shared = np.flatnonzero(data.group_size >= 2)
    managers = [f"{MANAGER_PREFIX}{data.group_ids[g]}" for g in shared]
    # Node acting as each group's manager: its hub, or the lone member itself.
    manager_node = np.empty(len(data.group_ids), dtype=np.int64)
    manager_node[data.group[::-1]] = np.arange(n)[::-1]
    manager_node[shared] = n + np.arange(shared.size)

    in_shared = data.group_size[data.group] >= 2
    members_selling = np.flatnonzero(in_shared & data.can_sell)
    members_buying = np.flatnonzero(in_shared & data.can_buy)
    up_fee = data.group_intra_fee[data.group[members_selling]]
    if uniform is not None:
        up_fee = np.broadcast_to(uniform, up_fee.shape).copy()
    parts = [
        (members_selling, manager_node[data.group[members_selling]], up_fee, "member-manager"),
        (
            manager_node[data.group[members_buying]],
            members_buying,
            np.zeros((members_buying.size, T)),
            "manager-member",
        ),
    ]

    # Manager <-> manager: every ordered pair of distinct groups whose nodes can trade.
    groups = np.arange(len(data.group_ids))
    is_hub = data.group_size >= 2
    lone_peer = manager_node.copy()
    g_sell = groups[is_hub | data.can_sell[np.minimum(lone_peer, n - 1)]]
    g_buy = groups[is_hub | data.can_buy[np.minimum(lone_peer, n - 1)]]
    gs, gb = (a.ravel() for a in np.meshgrid(g_sell, g_buy, indexing="ij"))
    keep = gs != gb
    gs, gb = gs[keep], gb[keep]
    if uniform is not None:
        fee = np.broadcast_to(uniform, (gs.size, T)).copy()
    else:
        contract = data.pair_fee[gs, gb]
        fee = np.where(np.isnan(contract), data.group_export_fee[gs], contract)
    parts.append((manager_node[gs], manager_node[gb], fee, "manager-manager"))
    return managers, parts
