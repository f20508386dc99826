"""A radial feeder as arrays: buses, branches oriented away from the root, impedances per kW
and the path matrix that LinDistFlow is written with.

Every branch (line or transformer) is oriented from its parent bus (nearer the root) to its
child bus. `path[b, l] = 1` where branch l lies on the way from the root to bus b; the power
a branch carries is then the sum of what is drawn at the buses below it (`path.T @ w`), and
the drop of squared voltage along the way to b is `path @ (2 (r P + x Q))` (docs/feeder.md).

Impedances are kept as squared-voltage drop per kW (`r_per_kw`, pu² of the branch's nominal
voltage per kW): r_ohm / (1000 * vn_kv²) for a line, vkr_percent / 100 / sn_kva for a
transformer (its short-circuit impedance referred to its own rating), so that a drop is
`2 * (r_per_kw * p_kw + x_per_kw * q_kvar)` whatever the voltage level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

from p2pmarket.core.scenario.feeder import FeederNetwork

__all__ = ["BranchKind", "Topology", "topology"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

BranchKind = str
"""`line` or `transformer`."""

_SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class Topology:
    """The feeder's tree as arrays (module docstring). Branch arrays have one entry per line,
    then one per transformer, in the feeder's order."""

    buses: pd.Index
    root: int
    vn_kv: FloatArray
    branches: pd.Index
    kind: npt.NDArray[np.str_]
    parent: IntArray
    """Bus at the root's side of each branch."""
    child: IntArray
    """Bus at the far side of each branch."""
    r_per_kw: FloatArray
    x_per_kw: FloatArray
    rating_kva: FloatArray
    """Apparent-power rating at nominal voltage (inf: unlimited): sqrt(3) * vn_kv * max_i_ka *
    1000 for a line, sn_kva for a transformer."""
    path: sp.csr_matrix
    """(buses, branches): 1 where the branch is on the way from the root to the bus."""
    depth: IntArray
    """Branches between each bus and the root."""

    def bus_positions(self, ids: Any) -> IntArray:
        """Positions of bus ids (all known: the scenario's rules checked them)."""
        return np.asarray(self.buses.get_indexer(pd.Index(ids)), dtype=np.int64)


def topology(net: FeederNetwork) -> Topology:
    """The arrays of a validated radial feeder (`FeederNetwork` checked it is one tree)."""
    buses = pd.Index(net.bus_ids(), name="bus")
    vn = np.array([b.vn_kv for b in net.buses], dtype=float)
    ends = [(ln.from_bus, ln.to_bus) for ln in net.lines]
    ends += [(t.hv_bus, t.lv_bus) for t in net.transformers]
    a = buses.get_indexer(pd.Index([e[0] for e in ends], dtype=object)).astype(np.int64)
    b = buses.get_indexer(pd.Index([e[1] for e in ends], dtype=object)).astype(np.int64)
    n = len(buses)
    root = int(buses.get_indexer(pd.Index([net.root], dtype=object))[0])
    order, predecessor = _bfs(n, a, b, root)
    child = np.where(predecessor[b] == a, b, a)
    parent = np.where(child == b, a, b)
    lines_vn = vn[b[: len(net.lines)]] if net.lines else np.zeros(0)
    r_line = np.array([ln.r_ohm for ln in net.lines], dtype=float) / (1000 * lines_vn**2)
    x_line = np.array([ln.x_ohm for ln in net.lines], dtype=float) / (1000 * lines_vn**2)
    amp = np.array(
        [ln.max_i_ka if ln.max_i_ka is not None else np.inf for ln in net.lines], dtype=float
    )
    sn = np.array([t.sn_kva for t in net.transformers], dtype=float)
    vk = np.array([t.vk_percent for t in net.transformers], dtype=float) / 100
    vkr = np.array([t.vkr_percent for t in net.transformers], dtype=float) / 100
    path, depth = _paths(n, order, predecessor, parent, child)
    return Topology(
        buses=buses,
        root=root,
        vn_kv=vn,
        branches=pd.Index(
            [ln.id for ln in net.lines] + [t.id for t in net.transformers], name="branch"
        ),
        kind=np.array(["line"] * len(net.lines) + ["transformer"] * len(net.transformers)),
        parent=parent,
        child=child,
        r_per_kw=np.concatenate([r_line, vkr / sn]),
        x_per_kw=np.concatenate([x_line, np.sqrt(np.maximum(vk**2 - vkr**2, 0.0)) / sn]),
        rating_kva=np.concatenate([_SQRT3 * lines_vn * amp * 1000, sn]),
        path=path,
        depth=depth,
    )


def _bfs(n: int, a: IntArray, b: IntArray, root: int) -> tuple[IntArray, IntArray]:
    """Buses in breadth-first order from the root, and each bus's predecessor (-9999 at the
    root, scipy's marker)."""
    if a.size == 0:
        return np.array([root], dtype=np.int64), np.full(n, -9999, dtype=np.int64)
    graph = sp.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n)).tocsr()
    order, predecessor = breadth_first_order(graph, root, directed=False)
    return order.astype(np.int64), predecessor.astype(np.int64)


def _paths(
    n: int, order: IntArray, predecessor: IntArray, parent: IntArray, child: IntArray
) -> tuple[sp.csr_matrix, IntArray]:
    """The path matrix, built once per feeder in breadth-first order (each bus's path is its
    parent's and the branch between them: one pass over the buses, not over periods)."""
    branch_to = np.full(n, -1, dtype=np.int64)
    branch_to[child] = np.arange(child.size)
    paths: list[list[int]] = [[] for _ in range(n)]
    for bus in order[1:]:
        paths[bus] = [*paths[predecessor[bus]], int(branch_to[bus])]
    rows = np.repeat(np.arange(n), [len(p) for p in paths])
    cols = np.array([c for p in paths for c in p], dtype=np.int64)
    path = sp.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(n, child.size))
    return path, np.array([len(p) for p in paths], dtype=np.int64)
