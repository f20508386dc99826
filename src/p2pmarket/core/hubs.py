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

import numpy as np
import pandas as pd

from p2pmarket.core.network import FloatArray, IntArray, Network, PeerData
from p2pmarket.core.scenario import Scenario, series

__all__ = ["HUB_PREFIX", "build_hub_network", "hub_links_estimate", "hubs_are_exact"]

HUB_PREFIX = "hub:"
LONE = "*"


def hubs_are_exact(s: Scenario, data: PeerData, objective: str) -> bool:
    """Whether the hub model has the explicit p2p model's optimum (see the module's proof)."""
    if s.links is not None:
        return False
    return objective != "paper" or bool((data.offer_per_kwh >= 0).all())


def hub_links_estimate(data: PeerData) -> tuple[int, int]:
    """(explicit p2p links, hub links, roughly) for choosing between the two models."""
    sellers, buyers = int(data.can_sell.sum()), int(data.can_buy.sum())
    groups = len(data.group_ids)
    return sellers * buyers, 3 * sellers + buyers + min(groups, sellers) ** 2


def build_hub_network(s: Scenario, data: PeerData) -> Network:
    """Nodes (peers, then hubs) and links of the hub model of the p2p design."""
    n = len(data.ids)
    T = s.periods
    sellers = np.flatnonzero(data.can_sell)
    buyers = np.flatnonzero(data.can_buy)
    links: list[tuple[IntArray, IntArray, FloatArray]] = []
    hubs: list[str] = []

    def hub(name: str) -> int:
        hubs.append(f"{HUB_PREFIX}{name}")
        return n + len(hubs) - 1

    def free(count: int) -> FloatArray:
        return np.zeros((count, T))

    if s.uniform_fee is not None:
        u = hub("uniform")
        fee = np.broadcast_to(series(s.uniform_fee, T), (sellers.size, T)).copy()
        links.append((sellers, np.full(sellers.size, u), fee))
        links.append((np.full(buyers.size, u), buyers, free(buyers.size)))
        return _network(data, hubs, links)

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
    # Between communities without a contract: seller -> out[c] -> to[d], at the seller's fee.
    for c in range(listed + 1):
        targets = [
            d
            for d in range(listed + 1)
            if deliver[d] >= 0
            and (d != c or c == listed)
            and not (c < listed and d < listed and contract[c, d])
        ]
        selling = sellers[group[sellers] == c]
        if not targets or selling.size == 0:
            continue
        h = hub(f"out:{names[c]}")
        links.append((selling, np.full(selling.size, h), data.export_fee[selling]))
        links.append((np.full(len(targets), h), deliver[targets], free(len(targets))))
    # Contracts: seller in c -> contract[c>d] -> to[d], at the pair fee.
    for c, d in zip(*np.nonzero(contract), strict=True):
        selling = sellers[group[sellers] == c]
        if selling.size == 0 or deliver[d] < 0 or c == d:
            continue
        h = hub(f"contract:{names[c]}>{names[d]}")
        fee = np.broadcast_to(data.pair_fee[c, d], (selling.size, T)).copy()
        links.append((selling, np.full(selling.size, h), fee))
        links.append((np.array([h]), np.array([deliver[d]]), free(1)))
    return _network(data, hubs, links)


def _network(
    data: PeerData, hubs: list[str], links: list[tuple[IntArray, IntArray, FloatArray]]
) -> Network:
    n = len(data.ids)
    seller = np.concatenate([p[0] for p in links]).astype(np.int64)
    buyer = np.concatenate([p[1] for p in links]).astype(np.int64)
    fee = np.concatenate([p[2] for p in links])
    route = np.where(seller < n, "peer-hub", np.where(buyer < n, "hub-peer", "hub-hub")).astype(str)
    nodes = pd.Index([*data.ids, *hubs], name="node")
    return Network(
        nodes=nodes,
        n_peers=n,
        seller=seller,
        buyer=buyer,
        fee_per_kwh=fee,
        route=route,
        kind="hubs",
    )
