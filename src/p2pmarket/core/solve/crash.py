"""A starting basis for a storage-coupled LP from its periods solved one by one.

Storage is the only thing that couples the periods of the clearing LP. From a cold start,
HiGHS's dual simplex needs very many iterations on such an LP (about 2.5 per row: over
300,000 for a 10,000-peer market of 24 periods with batteries), and the cost of each grows
with the LP, so the time grows about with the square of its size. With the batteries idle
the LP falls apart into its periods, and each period's LP — a transport problem through the
fee hubs — is quick to solve and the same matrix from period to period, so one instance
solves them one after the other, each starting from the last one's basis.

`period_basis(lp)` joins those periods' optimal bases and completes them for storage: every
state-of-charge column basic, charge and discharge at their lower bound (0), every
storage-balance row nonbasic, every final-state row basic — as many basic variables as rows.
HiGHS is given that as an "alien" basis (it repairs what is singular) and the dual simplex
goes on from there: a 10,000-peer market with batteries solved in 16,000 + 20,000 iterations
instead of more than 300,000 (docs/performance.md, "A start from the periods").

Only the start changes: the optimum is the LP's, HiGHS ends at an optimal basis as before,
and where the optimum is not unique another vertex of the same cost may be found (as with
any warm start). Where a period cannot be balanced with the batteries idle, or the LP is not
of that shape, there is no such basis and the solve starts cold.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import highspy
import numpy as np
import scipy.sparse as sp

from p2pmarket.core.collector import collector_paused
from p2pmarket.core.solve.highs_model import changed, pass_model
from p2pmarket.core.solve.matrix import MatrixLP

__all__ = ["CRASH_MIN_COLUMNS", "PeriodSolution", "PeriodStart", "period_basis", "period_solution"]

CRASH_MIN_COLUMNS = 20_000
"""LPs with storage over several periods and at least this many columns start from
`period_basis`; a smaller one is solved from cold in well under a second anyway."""

BLOCK_COLUMNS = 8_000
"""Consecutive periods are solved together, as one LP of independent blocks (its optimal
basis is optimal for each period), up to this many columns: a 100-peer market of 322
columns a period is solved a day at a time (6 s instead of 14 s of calls over 8,760
periods); a 1,000-household window of 4,500 a period stays period by period (a day's block
took 3.9 s against 0.7 s for its 24 periods alone)."""

_STORAGE_ROWS = ("storage-balance", "final-soc")


@dataclasses.dataclass(frozen=True)
class PeriodStart:
    """What `period_basis` found: the basis (None where there is none) and the seconds
    HiGHS spent on the periods' own solves (solver time, counted with the solve's)."""

    basis: Any
    solver_seconds: float


_IDLE = ("charge", "discharge")
_B = highspy.HighsBasisStatus


def period_basis(lp: MatrixLP, threads: int | None = None) -> PeriodStart:
    """The alien starting basis of `lp` (a `highspy.HighsBasis`) from its periods solved one
    by one with the batteries idle (module docstring) — None where `lp` has no storage,
    one period, a column or row outside the period structure, or a period that cannot be
    solved with the batteries idle — and HiGHS's time on those periods."""
    seconds = [0.0]
    with collector_paused():  # the statuses HiGHS hands back are many objects
        basis = _period_basis(lp, threads, seconds)
    return PeriodStart(basis, seconds[0])


@dataclasses.dataclass(frozen=True)
class PeriodSolution:
    """The optimum of a storage-free LP from its periods (`period_solution`): every column's
    value `x` and row's dual `y`, and HiGHS's seconds on the periods."""

    x: np.ndarray[Any, np.dtype[np.float64]]
    y: np.ndarray[Any, np.dtype[np.float64]]
    solver_seconds: float


def period_solution(lp: MatrixLP, threads: int | None = None) -> PeriodSolution | None:
    """The optimum of `lp`, an LP over several periods without storage, from its periods
    solved one by one as blocks of the same matrix (`BLOCK_COLUMNS` a block) on one HiGHS
    instance, each block from the last one's basis. Without storage nothing joins two
    periods: the LP is block-diagonal, and the blocks' optimal solutions and duals together
    are an optimal solution and dual of the whole (each block's constraints and costs are its
    own). None where `lp` has storage or one period, or a block is not solved to optimality
    (the caller then solves the whole LP, which also names what cannot be balanced)."""
    T = lp.periods
    if T < 2 or any(len(lp.columns[name].index) for name in ("soc", *_IDLE) if name in lp.columns):
        return None
    periods = _periods_of(lp)
    if periods is None:
        return None
    col_period, row_period, _ = periods
    n_rows, n_cols = lp.a.shape
    seconds = [0.0]
    every_col, every_row = np.arange(n_cols), np.arange(n_rows)
    blocks = _solve_blocks(
        lp, every_col, col_period, every_row, row_period, lp.upper, threads, seconds, False
    )
    if blocks is None or blocks.entries != lp.a.nnz:  # an entry that joins two periods
        return None
    return PeriodSolution(blocks.x, blocks.y, seconds[0])


def _periods_of(
    lp: MatrixLP,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """Each column's and row's period, and which rows are storage rows (period -1); None
    where a column, or a row other than a storage row, has no period."""
    T = lp.periods
    n_rows, n_cols = lp.a.shape
    col_period = np.full(n_cols, -1, dtype=np.int64)
    for block in lp.columns.values():
        if len(block.index):
            if not block.periods:
                return None
            col_period[block.positions(T)] = np.arange(T)
    row_period = np.full(n_rows, -1, dtype=np.int64)
    storage_row = np.zeros(n_rows, dtype=bool)
    for name, block in lp.rows.items():
        if not len(block.index):
            continue
        kept = lp.kept_rows(name)
        if name in _STORAGE_ROWS:
            storage_row[kept[kept >= 0]] = True
        elif block.periods:
            at = kept >= 0
            row_period[kept[at]] = np.broadcast_to(np.arange(T), kept.shape)[at]
        else:
            return None
    if (col_period < 0).any() or (~storage_row & (row_period < 0)).any():
        return None
    return col_period, row_period, storage_row


def _period_basis(lp: MatrixLP, threads: int | None, seconds: list[float]) -> Any:
    T = lp.periods
    n_cols = lp.a.shape[1]
    if T < 2 or "soc" not in lp.columns or not len(lp.columns["soc"].index):
        return None
    periods = _periods_of(lp)
    if periods is None:
        return None
    col_period, row_period, storage_row = periods
    soc = np.zeros(n_cols, dtype=bool)
    soc[lp.columns["soc"].positions(T).ravel()] = True
    idle = np.zeros(n_cols, dtype=bool)
    for name in _IDLE:
        if name in lp.columns and len(lp.columns[name].index):
            idle[lp.columns[name].positions(T).ravel()] = True
    cols, rows = np.flatnonzero(~soc), np.flatnonzero(row_period >= 0)
    upper = np.where(idle, 0.0, lp.upper)
    blocks = _solve_blocks(lp, cols, col_period, rows, row_period, upper, threads, seconds)
    if blocks is None:
        return None
    if int(storage_row[lp.a.indices].sum()) + blocks.entries != lp.a.nnz:  # (column-major)
        return None  # an entry joins two periods outside the storage rows
    col_status, row_status = blocks.col_status, blocks.row_status
    assert col_status is not None and row_status is not None
    col_status[soc] = _B.kBasic
    col_status[idle] = _B.kLower
    for name in _STORAGE_ROWS:
        if name in lp.rows and len(lp.rows[name].index):
            kept = lp.kept_rows(name).ravel()
            row_status[kept[kept >= 0]] = _B.kLower if name == "storage-balance" else _B.kBasic
    start = highspy.HighsBasis()
    start.col_status = col_status.tolist()
    start.row_status = row_status.tolist()
    start.alien = True
    start.valid = False
    return start


class _Blocks(NamedTuple):
    """The period blocks of an LP solved (`_solve_blocks`), each value at its position in
    the LP; `entries`: the matrix entries the blocks hold."""

    col_status: np.ndarray[Any, Any] | None
    row_status: np.ndarray[Any, Any] | None
    x: np.ndarray[Any, np.dtype[np.float64]]
    y: np.ndarray[Any, np.dtype[np.float64]]
    entries: int


def _solve_blocks(
    lp: MatrixLP,
    cols: np.ndarray[Any, Any],
    col_period: np.ndarray[Any, Any],
    rows: np.ndarray[Any, Any],
    row_period: np.ndarray[Any, Any],
    upper: np.ndarray[Any, Any],
    threads: int | None,
    seconds: list[float],
    statuses: bool = True,
) -> _Blocks | None:
    """The columns `cols` and rows `rows` of `lp` (with column bounds up to `upper`) solved
    block by block of consecutive periods (column and row statuses only where `statuses`
    asks for them), or None where an entry joins two blocks or a block is not solved to
    optimality. HiGHS's time is added to `seconds[0]`."""
    T = lp.periods
    n_rows, n_cols = lp.a.shape
    # Rows and columns ordered by period (stable: each period's in their own order), so that
    # each period's block is a slice: indexing the whole matrix per period would cost
    # periods x columns (a minute at 8,760 periods).
    k = max(1, BLOCK_COLUMNS * T // max(n_cols, 1))  # periods a block
    B = -(-T // k)
    cols_of, col_at = _by_period(cols, col_period // k, B)
    rows_of, row_at = _by_period(rows, row_period // k, B)
    # One column-major matrix of the blocks in order: block t is the column run
    # col_at[t]:col_at[t + 1], its entries in the row run row_at[t]:row_at[t + 1] where no
    # entry joins two blocks.
    blocks = _reordered(lp.a, cols_of, rows_of)
    lower, upper, cost = lp.lower[cols_of], upper[cols_of], lp.c[cols_of]
    row_lower, row_upper = lp.row_lower[rows_of], lp.row_upper[rows_of]
    col_status = np.full(n_cols, _B.kLower, dtype=object) if statuses else None
    row_status = np.full(n_rows, _B.kBasic, dtype=object) if statuses else None
    x, y = np.zeros(n_cols), np.zeros(n_rows)
    h: Any = None
    last: tuple[slice, slice, sp.csc_matrix] | None = None
    entries = 0
    for t in range(B):
        cs, rs = slice(col_at[t], col_at[t + 1]), slice(row_at[t], row_at[t + 1])
        sub = _block(blocks, cs, rs)
        if sub is None:
            return None  # an entry joins two blocks
        entries += int(sub.nnz)
        if last is None or not _same_matrix(sub, last[2]):
            h = _instance(threads)
            pass_model(h, sub, cost[cs], lower[cs], upper[cs], row_lower[rs], row_upper[rs])
        else:
            # Only what differs from the last block is handed over.
            lc, lr, _ = last
            at = changed(lower[cs], lower[lc], upper[cs], upper[lc])
            if at.size:
                h.changeColsBounds(at.size, at, lower[cs][at], upper[cs][at])
            at = changed(cost[cs], cost[lc])
            if at.size:
                h.changeColsCost(at.size, at, cost[cs][at])
            at = changed(row_lower[rs], row_lower[lr], row_upper[rs], row_upper[lr])
            if at.size:
                h.changeRowsBounds(at.size, at, row_lower[rs][at], row_upper[rs][at])
        last = (cs, rs, sub)
        started = float(h.getRunTime())
        h.run()
        seconds[0] += float(h.getRunTime()) - started
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        c, r = cols_of[cs], rows_of[rs]
        if col_status is not None and row_status is not None:
            basis = h.getBasis()
            col_status[c] = basis.col_status
            row_status[r] = basis.row_status
        solution = h.getSolution()
        x[c] = solution.col_value
        y[r] = solution.row_dual
    return _Blocks(col_status, row_status, x, y, entries)


def _by_period(
    at: np.ndarray[Any, np.dtype[np.int64]], period: np.ndarray[Any, np.dtype[np.int64]], T: int
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.intp]]]:
    """The positions `at` ordered by their `period` (stably), and where each period's run
    of them starts (T + 1 offsets)."""
    ordered = at[np.argsort(period[at], kind="stable")]
    return ordered, np.searchsorted(period[ordered], np.arange(T + 1))


def _reordered(
    a: sp.csc_matrix, cols: np.ndarray[Any, Any], rows: np.ndarray[Any, Any]
) -> sp.csc_matrix:
    """The columns `cols` and rows `rows` of the column-major `a`, in that order: the columns
    taken by their pointers, the rows by renumbering each entry's row (entries in rows not
    taken are dropped), with no search through the matrix."""
    a = a.tocsc()
    taken = a[:, cols]
    renumbered = np.full(a.shape[0], -1, dtype=np.int64)
    renumbered[rows] = np.arange(rows.size)
    row = renumbered[taken.indices]
    if rows.size == a.shape[0]:  # every row taken (no storage rows left out): in place
        taken.indices = row.astype(taken.indices.dtype)
        taken.has_sorted_indices = False
        taken.sort_indices()
        return taken
    kept = row >= 0
    column = np.repeat(np.arange(cols.size), np.diff(taken.indptr))
    per_column = np.bincount(column[kept], minlength=cols.size)
    indptr = np.concatenate([[0], np.cumsum(per_column)])
    out = sp.csc_matrix((taken.data[kept], row[kept], indptr), shape=(rows.size, cols.size))
    out.sort_indices()
    return out


def _block(blocks: sp.csc_matrix, cols: slice, rows: slice) -> sp.csc_matrix | None:
    """The block of columns `cols` and rows `rows` of the column-major `blocks`, taken by
    its column pointers (no search); None where one of its columns has an entry in another
    block's rows."""
    first, last = blocks.indptr[cols.start], blocks.indptr[cols.stop]
    indices = blocks.indices[first:last]
    if indices.size and (indices.min() < rows.start or indices.max() >= rows.stop):
        return None
    return sp.csc_matrix(
        (
            blocks.data[first:last],
            indices - rows.start,
            blocks.indptr[cols.start : cols.stop + 1] - first,
        ),
        shape=(rows.stop - rows.start, cols.stop - cols.start),
    )


def _same_matrix(a: sp.csc_matrix, b: sp.csc_matrix) -> bool:
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    )


def _instance(threads: int | None) -> Any:
    """A silent HiGHS instance for the periods: primal simplex (faster than dual on these
    transport problems through hubs)."""
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("solver", "simplex")
    h.setOptionValue("simplex_strategy", 4)
    if threads is not None:
        h.setOptionValue("threads", threads)
    return h
