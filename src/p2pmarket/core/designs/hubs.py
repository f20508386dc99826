"""An exact, smaller model of a full peer-to-peer market: trades routed through fee hubs.

When every pair of peers may trade (`links` not restricted), the fee of a sale m -> n
depends only on m and on n's community (SPEC section 3): the community's intra fee inside
it; the contract fee where m's and n's communities have one; otherwise m's own export fee,
whoever buys. So the market is the same as one routed through hubs, with links growing with
peers + communities^2 instead of peers^2:

    seller m in community c --intra fee-->  in[c]          --free--> to[c]
                            --export fee--> out[c]         --free--> to[d]  (d != c, no contract)
                            --pair fee-->   contract[c>d]  --free--> to[d]
    to[d] --free--> every buyer in d

Where no seller's export fee is below its community's intra fee or the fee of a contract
out of it, one hub `out` takes every seller's exports and delivers to every group: its extra
paths are never cheaper than the fee they compete with (docs/performance.md, section 2).
Peers listed in no community form one delivery group `*`: they sell through out[*] (their
own export fee) which delivers to every group, `*` included. With a uniform fee there is one
hub: every seller --uniform fee--> hub --free--> every buyer. Hubs have no generation or
load: inflow = outflow.

Why it is exact. (1) Every path seller -> hubs -> buyer n != m costs exactly the explicit
fee of m -> n (and, under the `paper` objective, the seller's offer on its first link, as
in the explicit model): the hub a seller enters is fixed by the pair of communities, and no
hub delivers where another fee applies. So any explicit solution maps to a hub solution of
the same cost, and the hub optimum is no worse. (2) Conversely, any hub flow decomposes into
paths (proportional sharing at the hubs, `p2pmarket.core.flows`), i.e. bilateral trades
with their explicit fees, plus paths from a peer back to itself. A self-path costs its fee
(plus the offer under `paper`), which is >= 0 whenever offers are non-negative; removing it
lowers both the peer's sales and purchases by the same amount, keeps its balance and its
no-resale row, and costs nothing more. So the hub optimum is no better either. With a
negative offer under the `paper` objective (2) fails, and `clear()` keeps the explicit model.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable
from dataclasses import astuple, dataclass

import numpy as np
import numpy.typing as npt

from p2pmarket.core.designs.data import IntArray, PeerData
from p2pmarket.core.designs.links import community_links
from p2pmarket.core.designs.network import Network, assemble
from p2pmarket.core.scenario import FloatArray, Scenario, series
from p2pmarket.errors import OptionError
from p2pmarket.types import Design, ModelKind, NodeKind, Objective, Route

__all__ = [
    "HUB_MIN_LINK_PERIODS",
    "HUB_MIN_SAVING",
    "bilateral_from_hubs",
    "build_hub_network",
    "hub_links_estimate",
    "hubs_are_exact",
    "use_hubs",
]

LONE = "*"

HUB_MIN_SAVING = 4
"""The hub model is used by default when it has this many times fewer links..."""
HUB_MIN_LINK_PERIODS = 120_000
"""...and the explicit model at least this many trade variables, links x periods (below,
both solve in a blink: 5,000 links over a day). Counted over the periods, not per period: a
100-peer market of 4,600 links is small over a day and 40 million trade variables over a
year of hours."""


def use_hubs(
    s: Scenario, data: PeerData, design: Design, objective: Objective, reduce: bool | None
) -> bool:
    """Whether to clear through fee hubs: only where they are exact (p2p or hybrid,
    unrestricted links); `reduce` True insists (refused where inexact), False never, None
    decides by size."""
    exact = design in (Design.P2P, Design.HYBRID) and hubs_are_exact(s, data, objective)
    if reduce and not exact:
        raise OptionError(
            "reduce",
            "the hub model is exact only for the p2p and hybrid designs with unrestricted "
            "links (and non-negative offers under the paper objective)",
        )
    explicit, hubs = hub_links_estimate(data)
    large = explicit * s.periods >= HUB_MIN_LINK_PERIODS and explicit >= HUB_MIN_SAVING * hubs
    return exact and (bool(reduce) or (reduce is None and large))


def hubs_are_exact(s: Scenario, data: PeerData, objective: Objective) -> bool:
    """Whether the hub model has the explicit p2p model's optimum (see the module's proof)."""
    if s.links is not None:
        return False
    return objective != "paper" or bool((data.offer_per_kwh >= 0).all())


def hub_links_estimate(data: PeerData) -> tuple[int, int]:
    """(explicit p2p links, hub links, roughly) for choosing between the two models."""
    sellers, buyers = int(data.can_sell.sum()), int(data.can_buy.sum())
    groups = len(data.group_ids)
    return sellers * buyers, 3 * sellers + buyers + min(groups, sellers) ** 2


def build_hub_network(s: Scenario, data: PeerData, design: Design = Design.P2P) -> Network:
    """Nodes and links of the hub model of the p2p design: peers, then hubs. For the hybrid
    design, the community design's managers and links (`links.community_links`) come
    between: peers, managers, hubs (docs/performance.md, section 2, "Hybrid")."""
    n = len(data.ids)
    T = s.periods
    managers: list[str] = []
    routed: list[tuple[IntArray, IntArray, FloatArray, Route]] = []
    if Design(design) == Design.HYBRID:
        managers, routed = community_links(data, _uniform(s), n, T)
    first_hub = n + len(managers)
    sellers = np.flatnonzero(data.can_sell)
    buyers = np.flatnonzero(data.can_buy)
    links: list[tuple[IntArray, IntArray, FloatArray]] = []
    hubs: list[str] = []

    def hub(name: str) -> int:
        hubs.append(name)
        return first_hub + len(hubs) - 1

    def done() -> Network:
        return _network(data, managers, routed, hubs, links)

    def free(count: int) -> FloatArray:
        return np.zeros((count, T))

    if s.uniform_fee is not None:
        u = hub("uniform")
        fee = np.broadcast_to(series(s.uniform_fee, T), (sellers.size, T)).copy()
        links.append((sellers, np.full(sellers.size, u), fee))
        links.append((np.full(buyers.size, u), buyers, free(buyers.size)))
        return done()

    listed = len(s.communities)
    # Delivery group of each peer: its listed community, or the lone group `listed`.
    group = np.where(data.group < listed, data.group, listed)
    names = [*data.group_ids[:listed], LONE]
    has_buyers = np.bincount(group[buyers], minlength=listed + 1) > 0
    deliver = np.full(listed + 1, -1)
    for g in np.flatnonzero(has_buyers):
        deliver[g] = hub(f"to:{names[g]}")
    members_buying = buyers
    links.append((deliver[group[members_buying]], members_buying, free(members_buying.size)))

    contract = ~np.isnan(data.pair_fee[:listed, :listed, 0])
    # Inside a community: seller -> in[c] -> to[c].
    size = np.bincount(group, minlength=listed + 1)
    for c in range(listed):
        inside = sellers[group[sellers] == c]
        if size[c] < 2 or inside.size == 0 or deliver[c] < 0:
            continue
        h = hub(f"in:{names[c]}")
        links.append(
            (inside, np.full(inside.size, h), data.group_intra_fee[np.full(inside.size, c)])
        )
        links.append((np.array([h]), np.array([deliver[c]]), free(1)))
    # Between communities without a contract: seller -> out[c] -> to[d], at the seller's fee
    # (or through one export hub for all, where no path through it undercuts a fee).
    if _one_export_hub(data, sellers, group, deliver, contract):
        h = hub("out")
        targets = np.flatnonzero(deliver >= 0)
        links.append((sellers, np.full(sellers.size, h), data.export_fee[sellers]))
        links.append((np.full(targets.size, h), deliver[targets], free(targets.size)))
    else:
        for c in range(listed + 1):
            _community_export_hub(c, data, sellers, group, deliver, contract, names, hub, links)
    # Contracts: seller in c -> contract[c>d] -> to[d], at the pair fee.
    for c, d in zip(*np.nonzero(contract), strict=True):
        selling = sellers[group[sellers] == c]
        if selling.size == 0 or deliver[d] < 0 or c == d:
            continue
        h = hub(f"contract:{names[c]}>{names[d]}")
        fee = np.broadcast_to(data.pair_fee[c, d], (selling.size, T)).copy()
        links.append((selling, np.full(selling.size, h), fee))
        links.append((np.array([h]), np.array([deliver[d]]), free(1)))
    return done()


def _community_export_hub(
    c: int,
    data: PeerData,
    sellers: IntArray,
    group: IntArray,
    deliver: IntArray,
    contract: npt.NDArray[np.bool_],
    names: list[str],
    hub: Callable[[str], int],
    links: list[tuple[IntArray, IntArray, FloatArray]],
) -> None:
    """out[c]: community c's sellers at their export fee, to every other delivery group
    without a contract (the lone group `*` also to itself)."""
    listed = contract.shape[0]
    targets = [
        d
        for d in range(listed + 1)
        if deliver[d] >= 0
        and (d != c or c == listed)
        and not (c < listed and d < listed and contract[c, d])
    ]
    selling = sellers[group[sellers] == c]
    if not targets or selling.size == 0:
        return
    h = hub(f"out:{names[c]}")
    links.append((selling, np.full(selling.size, h), data.export_fee[selling]))
    free = np.zeros((len(targets), data.load_kw.shape[1]))
    links.append((np.full(len(targets), h), deliver[targets], free))


def _one_export_hub(
    data: PeerData,
    sellers: IntArray,
    group: IntArray,
    deliver: IntArray,
    contract: npt.NDArray[np.bool_],
) -> bool:
    """Whether one export hub, fed by every seller at its export fee and delivering to every
    group, is as exact as one per community (docs/performance.md, section 2): its paths that
    the per-community hubs leave out — into the seller's own community, and along a contract
    — must cost no less than the fee they compete with, the intra fee or the contract fee, in
    every period (so an optimum never takes them where they cost more, and where they cost
    the same the trade's fee is the same)."""
    listed = contract.shape[0]
    fee = data.export_fee[sellers]  # (sellers, periods)
    home = group[sellers]
    listed_seller = home < listed
    if (fee < 0).any():
        return False
    intra = data.group_intra_fee[np.minimum(home, max(listed - 1, 0))] if listed else fee
    if (listed_seller[:, None] & (fee < intra)).any():
        return False
    for c, d in zip(*np.nonzero(contract), strict=True):
        if c == d or deliver[d] < 0:
            continue
        inside = home == c
        if (fee[inside] < data.pair_fee[c, d][None, :]).any():
            return False
    return True


def _uniform(s: Scenario) -> FloatArray | None:
    return None if s.uniform_fee is None else series(s.uniform_fee, s.periods)


def _network(
    data: PeerData,
    managers: list[str],
    routed: list[tuple[IntArray, IntArray, FloatArray, Route]],
    hubs: list[str],
    links: list[tuple[IntArray, IntArray, FloatArray]],
) -> Network:
    """Peers, `managers` (with their `routed` links, hybrid only), then `hubs` and their
    `links`."""
    n = len(data.ids)
    hub_seller = np.concatenate([p[0] for p in links]).astype(np.int64)
    hub_buyer = np.concatenate([p[1] for p in links]).astype(np.int64)
    hub_to = np.where(hub_buyer < n, Route.HUB_PEER, Route.HUB_HUB)
    hub_route = np.where(hub_seller < n, Route.PEER_HUB, hub_to).astype(str)
    routes = np.concatenate([*(np.full(p[0].size, str(p[3])) for p in routed), hub_route])
    return assemble(
        data.ids,
        [*managers, *hubs],
        [NodeKind.MANAGER] * len(managers) + [NodeKind.HUB] * len(hubs),
        [*(p[:3] for p in routed), *links],
        lambda *_: routes,
        ModelKind.HUBS,
    )


# --- back from hub flows to bilateral trades -------------------------------------------


def bilateral_from_hubs(
    period: IntArray,
    seller: IntArray,
    buyer: IntArray,
    energy_kwh: FloatArray,
    fee: FloatArray,
    n_peers: int,
) -> tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray]:
    """The hub model's link flows (node positions; hubs are the nodes from `n_peers` on) as
    bilateral trades between peers: `(period, seller, buyer, energy_kwh, fee)`.

    North-west corner decomposition through the acyclic network of hubs: each hub hands on
    what it received in order, seller by seller, filling its outflows in order, so the output
    grows with the links (at most inflows + outflows pieces per hub), keeps every seller's
    energy and every fee, and is an optimal decomposition (see the module's proof). Hubs are
    taken level by level (a level's hubs receive only from peers and earlier levels), each
    level matched for every hub and period at once (`_match`). Self-paths (free) are dropped.
    """
    hub_seller, hub_buyer = seller >= n_peers, buyer >= n_peers
    direct = ~hub_seller & ~hub_buyer
    done = [(period[direct], seller[direct], buyer[direct], energy_kwh[direct], fee[direct])]
    between = hub_seller & hub_buyer
    before: dict[int, set[int]] = {}
    for h_from, h_to in zip(seller[between].tolist(), buyer[between].tolist(), strict=True):
        before.setdefault(h_to, set()).add(h_from)
    level: dict[int, int] = {}
    for hub in graphlib.TopologicalSorter(before).static_order():
        level[hub] = 1 + max((level[h] for h in before.get(hub, ())), default=-1)
    n_nodes = int(max(seller.max(initial=0), buyer.max(initial=0))) + 1
    depth = np.zeros(n_nodes, dtype=np.int64)
    for hub, d in level.items():
        depth[hub] = d
    into = ~hub_seller & hub_buyer
    parcels = _Flows(period[into], buyer[into], seller[into], energy_kwh[into], fee[into])
    out = hub_seller
    outflows = _Flows(period[out], seller[out], buyer[out], energy_kwh[out], fee[out])
    for d in range(int(depth.max(initial=-1)) + 1):
        at_level = depth[parcels.node] == d
        matched = _match(parcels.take(at_level), outflows.take(depth[outflows.node] == d), n_nodes)
        onward = matched.other >= n_peers
        rest = parcels.take(~at_level)
        later = matched.take(onward)
        # A piece delivered to a further hub is a parcel there: (period, that hub, origin).
        parcels = _Flows.concat(
            rest, _Flows(later.period, later.other, later.node, later.energy, later.fee)
        )
        final = matched.take(~onward)
        done.append((final.period, final.node, final.other, final.energy, final.fee))
    p, s_, b, e, f = (np.concatenate(parts) for parts in zip(*done, strict=True))
    keep = (e > 1e-9) & (s_ != b)
    p, s_, b, e, f = p[keep], s_[keep], b[keep], e[keep], f[keep]
    # Pieces of the same (period, seller, buyer) summed, in that order: one sort of a
    # combined key (periods x nodes x nodes stays far inside int64).
    key = (p.astype(np.int64) * n_nodes + s_) * n_nodes + b
    unique, first = np.unique(key, return_index=True)
    inverse = np.searchsorted(unique, key)
    return (
        p[first].astype(np.int64),
        s_[first].astype(np.int64),
        b[first].astype(np.int64),
        np.bincount(inverse, weights=e, minlength=unique.size).astype(float),
        np.bincount(inverse, weights=f, minlength=unique.size).astype(float),
    )


@dataclass(frozen=True)
class _Flows:
    """Flows at hubs: `node` is the hub, `other` the origin (parcels) or destination (outflows)
    or, after matching, `node` the origin and `other` the destination."""

    period: IntArray
    node: IntArray
    other: IntArray
    energy: FloatArray
    fee: FloatArray

    def take(self, mask: npt.NDArray[np.bool_]) -> _Flows:
        return _Flows(
            self.period[mask], self.node[mask], self.other[mask], self.energy[mask], self.fee[mask]
        )

    @staticmethod
    def concat(a: _Flows, b: _Flows) -> _Flows:
        return _Flows(
            *(np.concatenate([x, y]) for x, y in zip(astuple(a), astuple(b), strict=True))
        )


def _match(parcels: _Flows, outflows: _Flows, n_nodes: int) -> _Flows:
    """Match the parcels that entered each (period, hub) to its outflows in order; the result
    has `node` = the parcel's origin and `other` = the outflow's destination.

    Both sides are sorted by (period, hub); each hub's outflows are scaled to sum exactly to
    what entered it (they differ by rounding only), so one global cumulative sum on each side
    puts every hub's parcels and outflows on the same stretch of a line, and one sorted merge
    of the two sets of cut points gives every piece: at most parcels + outflows pieces.
    """
    if parcels.period.size == 0 or outflows.period.size == 0:
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
        return _Flows(empty_i, empty_i, empty_i, empty_f, empty_f)
    key_in = parcels.period * n_nodes + parcels.node
    key_out = outflows.period * n_nodes + outflows.node
    a = np.argsort(key_in, kind="stable")
    b = np.argsort(key_out, kind="stable")
    key_in, key_out = key_in[a], key_out[b]
    supply = parcels.energy[a]
    demand = outflows.energy[b]
    size = int(max(key_in.max(), key_out.max())) + 1
    entered = np.bincount(key_in, weights=supply, minlength=size)
    leaving = np.bincount(key_out, weights=demand, minlength=size)
    scale = np.divide(entered, leaving, out=np.zeros(size), where=leaving > 0)
    cut_in = np.cumsum(supply)
    cut_out = np.cumsum(demand * scale[key_out])
    cuts = np.unique(np.concatenate([cut_in, cut_out]))
    lo = np.concatenate([[0.0], cuts[:-1]])
    middle = (lo + cuts) / 2
    i = np.minimum(np.searchsorted(cut_in, middle), supply.size - 1)
    j = np.minimum(np.searchsorted(cut_out, middle), demand.size - 1)
    keep = key_in[i] == key_out[j]  # drops rounding slivers across hub boundaries
    i, j = i[keep], j[keep]
    energy = (cuts - lo)[keep]
    fee_in = parcels.fee[a] / np.where(supply > 0, supply, 1.0)
    fee_out = outflows.fee[b] / np.where(demand > 0, demand, 1.0)
    return _Flows(
        period=key_in[i] // n_nodes,
        node=parcels.other[a][i],
        other=outflows.other[b][j],
        energy=energy,
        fee=energy * (fee_in[i] + fee_out[j]),
    )
