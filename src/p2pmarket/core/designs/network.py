"""The trade network of a design: nodes with their kind, and directed links with fees."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.designs.data import IntArray
from p2pmarket.core.scenario import FloatArray
from p2pmarket.types import ModelKind, NodeKind

__all__ = ["Network", "assemble"]


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


def assemble(
    peers: pd.Index,
    others: Sequence[str],
    kind: NodeKind | Sequence[NodeKind],
    parts: Sequence[tuple[IntArray, IntArray, FloatArray]],
    route: Callable[[IntArray, IntArray], npt.NDArray[np.str_]],
    model: ModelKind = ModelKind.EXPLICIT,
) -> Network:
    """A network of `peers` and then the pass-through nodes `others` (all of `kind`, or each
    of its own), with the
    links of every part `(seller, buyer, fee)` (node positions; fees (links, periods)) and the
    `route(seller, buyer)` of each link."""
    n = len(peers)
    kinds = [kind] * len(others) if isinstance(kind, NodeKind) else list(kind)
    seller = np.concatenate([p[0] for p in parts]).astype(np.int64)
    buyer = np.concatenate([p[1] for p in parts]).astype(np.int64)
    fee = np.concatenate([p[2] for p in parts])
    return Network(
        names=np.array([*peers, *others], dtype=object),
        node_kind=np.array([NodeKind.PEER] * n + kinds, dtype=object),
        n_peers=n,
        seller=seller,
        buyer=buyer,
        fee_per_kwh=fee,
        route=route(seller, buyer),
        model=model,
    )
