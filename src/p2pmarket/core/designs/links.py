"""The explicit trade links of each design, with their fees (SPEC section 3).

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

import numpy as np
import pandas as pd

from p2pmarket.core.designs.data import IntArray, PeerData
from p2pmarket.core.designs.network import Network, assemble
from p2pmarket.core.scenario import FloatArray, Scenario, series
from p2pmarket.types import Design, NodeKind, Route

__all__ = ["build_network", "community_links"]


def build_network(s: Scenario, data: PeerData, design: Design) -> Network:
    """Nodes and links of `design` with their fees; managers are named by community id."""
    n = len(data.ids)
    T = s.periods
    uniform = None if s.uniform_fee is None else series(s.uniform_fee, T)
    parts: list[tuple[IntArray, IntArray, FloatArray, Route]] = []
    managers: list[str] = []
    design = Design(design)
    if design in (Design.P2P, Design.HYBRID):
        seller, buyer = _p2p_pairs(s, data)
        parts.append((seller, buyer, _p2p_fee(data, seller, buyer, uniform), Route.P2P))
    if design in (Design.COMMUNITY, Design.HYBRID):
        managers, community_parts = community_links(data, uniform, n, T)
        parts.extend(community_parts)
    routes = np.concatenate([np.full(p[0].size, str(p[3])) for p in parts])
    links = [(seller, buyer, fee) for seller, buyer, fee, _ in parts]
    return assemble(data.ids, managers, NodeKind.MANAGER, links, lambda *_: routes)


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


def community_links(
    data: PeerData, uniform: FloatArray | None, n: int, T: int
) -> tuple[list[str], list[tuple[IntArray, IntArray, FloatArray, Route]]]:
    """Manager nodes (positions from `n` on) and the links of the community design, each part
    with its `Route` (also the manager routes of the hybrid hub model, `hubs`)."""
    shared = np.flatnonzero(data.group_size >= 2)
    managers = [data.group_ids[g] for g in shared]
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
        (members_selling, manager_node[data.group[members_selling]], up_fee, Route.MEMBER_MANAGER),
        (
            manager_node[data.group[members_buying]],
            members_buying,
            np.zeros((members_buying.size, T)),
            Route.MANAGER_MEMBER,
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
    parts.append((manager_node[gs], manager_node[gb], fee, Route.MANAGER_MANAGER))
    return managers, parts
