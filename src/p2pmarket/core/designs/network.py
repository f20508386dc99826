"""The trade network of a design: nodes with their kind, and directed links with fees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from p2pmarket.core.designs.data import IntArray
from p2pmarket.core.scenario import FloatArray
from p2pmarket.types import ModelKind, NodeKind

__all__ = ["Network"]


@dataclass(frozen=True)
class Network:
    """Nodes (peers first, then pass-through nodes) and directed trade links with their fees.

    A node is told apart by `node_kind`, never by its name: `names` are for people (a
    manager is named by its community's id, which may equal a peer's id) and every lookup
    goes through node positions.
    """

    names: npt.NDArray[np.object_]
    node_kind: npt.NDArray[np.object_]
    """`NodeKind` of each node: peers, then managers (community design) or hubs."""
    n_peers: int
    seller: IntArray
    buyer: IntArray
    fee_per_kwh: FloatArray
    """(links, periods)."""
    route: npt.NDArray[np.str_]
    """The `Route` of each link."""
    model: ModelKind = ModelKind.EXPLICIT
    """`explicit` (the design's own links) or `hubs` (`p2pmarket.core.designs.hubs`)."""

    @property
    def hubs(self) -> bool:
        """Whether the pass-through nodes are the fee hubs of the reduced p2p model."""
        return self.model == ModelKind.HUBS

    @property
    def n_nodes(self) -> int:
        return int(self.names.size)

    @property
    def n_links(self) -> int:
        return int(self.seller.size)

    @property
    def pass_through(self) -> npt.NDArray[np.object_]:
        """Names of the nodes after the peers (managers or hubs)."""
        return self.names[self.n_peers :]


def node_kinds(n_peers: int, others: int, kind: NodeKind) -> npt.NDArray[np.object_]:
    """`peer` for the first `n_peers` nodes, `kind` for the `others` after them."""
    return np.array([NodeKind.PEER] * n_peers + [kind] * others, dtype=object)
