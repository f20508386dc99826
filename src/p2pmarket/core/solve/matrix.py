"""The clearing LP of `p2pmarket.core.solve.model` built straight as sparse arrays.

`model.py` states the LP family by family in linopy, readable next to SPEC section 3 and the
paper; building it costs about 0.4 s of xarray alignment whatever the market's size, which is
most of a small market's clearing and most of a rolling horizon's windows. This module builds
the same LP — the same columns and rows in the same order, the same coefficients, bounds and
costs — as numpy/scipy arrays in milliseconds, for the HiGHS path (`highs.py`). The two are
kept one: `tests/test_matrix.py` builds both on every design, objective and shape of market
(storage, flexible demand, absorbing grid, contracts, hubs, empty rows) and compares them
entry by entry. A change to the LP is made in both, or the test fails.

Columns, family by family, each (elements x periods) in C order:
generation (generators), trade (links), charge, discharge, soc (storage units),
flexible-load (blocks), absorption (absorbers). Rows: storage-balance (units x periods),
final-soc (units), peer-balance (peers x periods), manager-balance (managers x periods),
no-resale (sellers x periods). A row with no entry (a peer with nothing to balance) is left
out, as linopy leaves it out; its position is -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from p2pmarket.core.designs import Network, PeerData
from p2pmarket.core.scenario import FloatArray, Scenario, series, stacked
from p2pmarket.core.solve.model import Layout, layout_of, link_cost
from p2pmarket.types import Objective

__all__ = ["COLUMNS", "ROWS", "Block", "MatrixLP", "build_matrix"]

IntArray = npt.NDArray[np.int64]

COLUMNS = (
    "generation",
    "trade",
    "charge",
    "discharge",
    "soc",
    "flexible-load",
    "absorption",
)
ROWS = ("storage-balance", "final-soc", "peer-balance", "manager-balance", "no-resale")


@dataclass(frozen=True)
class Block:
    """A family's place in the LP: `index` (its elements, e.g. the storage units), whether it
    has a period dimension, and its first position (columns, or rows before empty ones are
    dropped)."""

    index: pd.Index
    periods: bool
    start: int

    def size(self, T: int) -> int:
        return len(self.index) * (T if self.periods else 1)

    def positions(self, T: int) -> IntArray:
        """Positions (elements, periods) — or (elements,) without a period dimension."""
        n = len(self.index)
        at = self.start + np.arange(self.size(T), dtype=np.int64)
        return at.reshape(n, T) if self.periods else at


@dataclass(frozen=True)
class MatrixLP:
    """min c'x s.t. row_lower <= A x <= row_upper, lower <= x <= upper.

    `a` is CSC (rows x columns) over the kept rows; `row_of[r]` is the kept position of row
    r of the full row list (-1 where the row had no entry and was left out). `sense` is each
    kept row's `=`, `<` or `>`, and `b` its right-hand side, as in linopy's matrices."""

    layout: Layout
    periods: int
    columns: dict[str, Block]
    rows: dict[str, Block]
    a: sp.csc_matrix
    c: FloatArray
    lower: FloatArray
    upper: FloatArray
    sense: npt.NDArray[np.str_]
    b: FloatArray
    row_of: IntArray

    @property
    def row_lower(self) -> FloatArray:
        return np.where(self.sense == "<", -np.inf, self.b)

    @property
    def row_upper(self) -> FloatArray:
        return np.where(self.sense == ">", np.inf, self.b)

    def kept_rows(self, name: str) -> IntArray:
        """The kept positions of a row family, shaped like its block (-1 where left out)."""
        block = self.rows[name]
        return self.row_of[block.positions(self.periods)]

    def same_structure(self, other: MatrixLP) -> bool:
        """Whether `other` has this LP's matrix and row senses (only bounds, costs and
        right-hand sides may differ): a solver may then start from this one's basis."""
        return (
            self.a.shape == other.a.shape
            and np.array_equal(self.sense, other.sense)
            and np.array_equal(self.a.indptr, other.a.indptr)
            and np.array_equal(self.a.indices, other.a.indices)
            and np.array_equal(self.a.data, other.a.data)
        )


class _Entries:
    """Coordinates of the matrix, appended family by family."""

    def __init__(self) -> None:
        self.rows: list[IntArray] = []
        self.cols: list[IntArray] = []
        self.vals: list[FloatArray] = []

    def add(self, rows: Any, cols: Any, vals: Any) -> None:
        rows, cols = np.broadcast_arrays(np.asarray(rows), np.asarray(cols))
        self.rows.append(rows.ravel())
        self.cols.append(cols.ravel())
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), rows.shape).ravel())

    def matrix(self, shape: tuple[int, int]) -> sp.coo_matrix:
        if not self.rows:
            return sp.coo_matrix(shape)
        return sp.coo_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=shape,
        )


def build_matrix(s: Scenario, data: PeerData, net: Network, objective: Objective) -> MatrixLP:
    """The clearing LP of `build_model(s, data, net, objective)` as arrays (not elastic)."""
    layout = layout_of(s, data, net, elastic=False)
    T = s.periods
    dt = s.period_hours
    units = [p.storage for p in s.peers if p.storage is not None]

    sizes = {
        "generation": layout.generators,
        "trade": layout.links,
        "charge": layout.storage,
        "discharge": layout.storage,
        "soc": layout.storage,
        "flexible-load": layout.blocks,
        "absorption": layout.absorbers,
    }
    columns: dict[str, Block] = {}
    at = 0
    for name in COLUMNS:
        columns[name] = Block(sizes[name], True, at)
        at += columns[name].size(T)
    n_cols = at
    row_index = {
        "storage-balance": (layout.storage, True),
        "final-soc": (layout.storage, False),
        "peer-balance": (layout.peers, True),
        "manager-balance": (layout.managers, True),
        "no-resale": (layout.sellers, True),
    }
    rows: dict[str, Block] = {}
    at = 0
    for name in ROWS:
        index, periods = row_index[name]
        rows[name] = Block(index, periods, at)
        at += rows[name].size(T)
    n_rows = at

    lower = np.zeros(n_cols)
    upper = np.full(n_cols, np.inf)
    cost = np.zeros(n_cols)
    b = np.zeros(n_rows)
    sense = np.full(n_rows, "=", dtype="<U1")
    entries = _Entries()
    col = {name: block.positions(T) for name, block in columns.items()}
    row = {name: block.positions(T) for name, block in rows.items()}

    # Bounds (Eq. 2, 7, flexible blocks) and costs (Eq. 1).
    gen_rows = data.ids.get_indexer(layout.generators)
    lower[col["generation"]] = data.min_kw[gen_rows]
    upper[col["generation"]] = data.max_kw[gen_rows]
    cost[col["generation"]] = dt * data.offer_per_kwh[gen_rows]
    cost[col["trade"]] = dt * link_cost(data, net, objective)
    if units:
        power = np.array([u.power_kw for u in units], dtype=float)[:, None]
        capacity = np.array([u.capacity_kwh for u in units], dtype=float)[:, None]
        for name in ("charge", "discharge"):
            upper[col[name]] = power
        upper[col["soc"]] = capacity
    if len(layout.blocks):
        blocks = [blk for p in s.peers for blk in p.flexible_load]
        upper[col["flexible-load"]] = stacked([blk.max_kw for blk in blocks], T)
        price = stacked([blk.price_per_kwh for blk in blocks], T)
        cost[col["flexible-load"]] = -dt * price
    if len(layout.absorbers):
        buy = [series(p.buy_price_per_kwh, T) for p in s.peers if p.buy_price_per_kwh is not None]
        cost[col["absorption"]] = -dt * np.stack(buy)

    # Storage balance: soc[t] - soc[t-1] - dt eta_ch charge[t] + dt / eta_dis discharge[t]
    # = initial at t = 0 (else 0); final soc >= final_soc * capacity.
    if units:
        eta_ch = np.array([u.charge_efficiency for u in units], dtype=float)[:, None]
        eta_dis = np.array([u.discharge_efficiency for u in units], dtype=float)[:, None]
        balance = row["storage-balance"]
        entries.add(balance, col["soc"], 1.0)
        entries.add(balance[:, 1:], col["soc"][:, :-1], -1.0)
        entries.add(balance, col["charge"], -dt * eta_ch)
        entries.add(balance, col["discharge"], dt / eta_dis)
        initial = np.array([u.capacity_kwh * u.initial_soc for u in units], dtype=float)
        b[balance[:, 0]] = initial
        final = row["final-soc"]
        entries.add(final, col["soc"][:, -1], 1.0)
        b[final] = [u.capacity_kwh * u.final_soc for u in units]
        sense[final] = ">"

    # Peer balance (Eq. 8): inflow - outflow + generation + discharge - charge - flexible
    # - absorption = load.
    peer_row = row["peer-balance"]
    peers = layout.peers
    trade = col["trade"]
    to_peer = np.flatnonzero(net.buyer < net.n_peers)
    from_peer = np.flatnonzero(net.seller < net.n_peers)
    buyer_at, seller_at = net.buyer[to_peer], net.seller[from_peer]  # peers come first
    entries.add(peer_row[buyer_at], trade[to_peer], 1.0)
    entries.add(peer_row[seller_at], trade[from_peer], -1.0)
    entries.add(peer_row[gen_rows], col["generation"], 1.0)
    if units:
        owner = peers.get_indexer(layout.storage)
        entries.add(peer_row[owner], col["discharge"], 1.0)
        entries.add(peer_row[owner], col["charge"], -1.0)
    if len(layout.blocks):
        entries.add(
            peer_row[peers.get_indexer(pd.Index(layout.block_owner))], col["flexible-load"], -1.0
        )
    if len(layout.absorbers):
        entries.add(peer_row[peers.get_indexer(layout.absorbers)], col["absorption"], -1.0)
    b[peer_row] = data.load_kw

    # Manager balance: inflow - outflow = 0.
    if len(layout.managers):
        manager_row = row["manager-balance"]
        into = np.flatnonzero(net.buyer >= net.n_peers)
        out_of = np.flatnonzero(net.seller >= net.n_peers)
        entries.add(manager_row[net.buyer[into] - net.n_peers], trade[into], 1.0)
        entries.add(manager_row[net.seller[out_of] - net.n_peers], trade[out_of], -1.0)

    # No resale: sales - generation - discharge <= 0, for every peer with outgoing links.
    if len(layout.sellers):
        sellers = layout.sellers
        resale = row["no-resale"]
        sense[resale] = "<"
        selling_peers = np.unique(seller_at)  # the positions of layout.sellers
        entries.add(resale[np.searchsorted(selling_peers, seller_at)], trade[from_peer], 1.0)
        gen_at = sellers.get_indexer(layout.generators)
        selling = gen_at >= 0
        entries.add(resale[gen_at[selling]], col["generation"][selling], -1.0)
        if units:
            unit_at = sellers.get_indexer(layout.storage)
            selling = unit_at >= 0
            entries.add(resale[unit_at[selling]], col["discharge"][selling], -1.0)

    # Column-major from the start (HiGHS takes columns): each column has a few entries, so
    # summing duplicates sorts short runs, where a hub's row has thousands.
    full = entries.matrix((n_rows, n_cols)).tocsc()
    full.sum_duplicates()
    full.eliminate_zeros()
    keep = np.bincount(full.indices, minlength=n_rows) > 0  # rows without entries left out
    row_of = np.full(n_rows, -1, dtype=np.int64)
    row_of[keep] = np.arange(int(keep.sum()))
    a = sp.csc_matrix(
        (full.data, row_of[full.indices].astype(full.indices.dtype), full.indptr),
        shape=(int(keep.sum()), n_cols),
    )
    return MatrixLP(
        layout=layout,
        periods=T,
        columns=columns,
        rows=rows,
        a=a,
        c=cost,
        lower=lower,
        upper=upper,
        sense=sense[keep],
        b=b[keep],
        row_of=row_of,
    )
