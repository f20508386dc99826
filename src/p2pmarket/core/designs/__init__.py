"""Market designs as trade networks (SPEC C2): which nodes exist and which links they trade on.

- `data`: the scenario as per-peer arrays (loads, bounds, offers, fees, community groups).
- `network`: the `Network` every design produces: nodes with their `NodeKind`, links, fees.
- `links`: the explicit links of `p2p`, `community` and `hybrid`.
- `hubs`: the exact reduced model of a full p2p (or hybrid) market (build, exactness, when
  to use it, and the way back from hub flows to bilateral trades), all in one place.

A new design adds its links in `links` (or a module beside it) and a branch in
`design_network`; nothing else needs to know.
"""

from p2pmarket.core.designs.data import PeerData, peer_data
from p2pmarket.core.designs.hubs import build_hub_network, use_hubs
from p2pmarket.core.designs.links import build_network
from p2pmarket.core.designs.network import Network
from p2pmarket.core.scenario import Scenario
from p2pmarket.types import Design, Objective

__all__ = ["Network", "PeerData", "build_network", "design_network", "peer_data"]


def design_network(
    s: Scenario, data: PeerData, design: Design, objective: Objective, reduce: bool | None
) -> Network:
    """The network to clear `design` on: the hub model of a large full p2p or hybrid market
    (where it is exact; `reduce` as in `p2pmarket.clear`), else the design's explicit
    links."""
    if use_hubs(s, data, design, objective, reduce):
        return build_hub_network(s, data, design)
    return build_network(s, data, design)
