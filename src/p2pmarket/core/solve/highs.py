"""The array LP (`matrix.py`) solved by HiGHS through highspy, with no modelling layer between.

`HighsSession` keeps one HiGHS instance. When the next LP has the same matrix as the last
one — the windows of a rolling horizon do: the same peers, links and units over the same
number of periods, only loads, bounds, prices and the initial state of charge differ — its
bounds, costs and right-hand sides replace the old ones in place and HiGHS starts from the
last optimal basis instead of from scratch (on a 100-household window of 48 hours: about
1,500 simplex iterations instead of 13,000). The optimum is the LP's whatever the start;
only where it is not unique may the vertex found differ from a cold start's.
"""

from __future__ import annotations

from typing import Any

import highspy
import numpy as np
from linopy.constants import TerminationCondition

from p2pmarket.core.solve.crash import CRASH_MIN_COLUMNS, period_basis
from p2pmarket.core.solve.extract import Solved
from p2pmarket.core.solve.highs_model import changed, pass_model
from p2pmarket.core.solve.matrix import MatrixLP
from p2pmarket.core.solve.options import SolverOptions
from p2pmarket.errors import OptionError, SolverError
from p2pmarket.types import Algorithm

__all__ = ["HighsSession", "solved_arrays"]

_INTERRUPTIBLE = True

_STATUS = {
    "kOptimal": TerminationCondition.optimal,
    "kModelEmpty": TerminationCondition.optimal,
    "kInfeasible": TerminationCondition.infeasible,
    "kUnboundedOrInfeasible": TerminationCondition.infeasible_or_unbounded,
    "kUnbounded": TerminationCondition.unbounded,
    "kTimeLimit": TerminationCondition.time_limit,
    "kIterationLimit": TerminationCondition.iteration_limit,
    "kInterrupt": TerminationCondition.user_interrupt,
}


SHIFT_MIN_COLUMNS = 100_000
"""Moving a basis costs its copy and HiGHS's completion of it, about 35 ms at 23,000 columns
(a 100-household window of 48 hours), where it saves less in simplex time; at 360,000 (1,000
households) it saves seconds per window. Below this many columns the last basis is reused
as it is."""


class HighsSession:
    """Solves array LPs one after the other on one HiGHS instance (not thread-safe: one
    session per thread of work)."""

    def __init__(self) -> None:
        self._highs: Any = None
        self._last: MatrixLP | None = None
        self._first = 0
        self._run_time = 0.0

    def solve(
        self, lp: MatrixLP, options: SolverOptions, first_period: int = 0
    ) -> tuple[TerminationCondition, Solved]:
        """Solve `lp`, whose period 0 is period `first_period` of a longer horizon; the
        termination condition, and the solution where it is optimal (the solver's last point
        otherwise). When the last LP had the same matrix and began `s` periods earlier (0 < s
        < periods: the windows overlap), its basis is moved `s` periods on — what was
        optimal for a period is where that period starts again — and periods past its end
        start from the basis of the same position (`_shifted`)."""
        warm = self._highs is not None and self._last is not None and self._last.same_structure(lp)
        if not warm:
            self._highs = highspy.Highs()  # type: ignore[no-untyped-call]
            self._last = None
        h = self._highs
        _set_options(h, options)
        crash_time = 0.0  # HiGHS's time on the periods a cold solve starts from
        if warm:
            assert self._last is not None
            # Until this solve ends optimal, the instance holds no LP known to this session
            # (a failed or interrupted solve leaves the next one to start cold).
            last, self._last = self._last, None
            shift = first_period - self._first
            moving = 0 < shift < lp.periods and lp.a.shape[1] >= SHIFT_MIN_COLUMNS
            basis = h.getBasis() if moving else None
            # Only what differs from the last LP is handed over (HiGHS's cost of a change
            # grows with the entries changed).
            cols = changed(lp.lower, last.lower, lp.upper, last.upper)
            if cols.size:
                h.changeColsBounds(cols.size, cols, lp.lower[cols], lp.upper[cols])
            cols = changed(lp.c, last.c)
            if cols.size:
                h.changeColsCost(cols.size, cols, lp.c[cols])
            lower, upper = lp.row_lower, lp.row_upper
            rows = changed(lower, last.row_lower, upper, last.row_upper)
            if rows.size:
                h.changeRowsBounds(rows.size, rows, lower[rows], upper[rows])
            if basis is not None and basis.valid:
                h.setBasis(_shifted(lp, basis, shift))  # refused: HiGHS keeps the last one
        else:
            logged = options.log or options.log_file is not None
            pass_model(h, lp.a, lp.c, lp.lower, lp.upper, lp.row_lower, lp.row_upper, logged=logged)
            if _starts_from_periods(lp, options):
                start = period_basis(lp, options.threads)
                crash_time = start.solver_seconds
                if start.basis is not None:
                    h.setBasis(start.basis)  # refused: HiGHS starts cold
        self._first = first_period
        started = float(h.getRunTime())
        try:
            _run(h)
        finally:
            self._run_time = float(h.getRunTime()) - started + crash_time
            if options.log_file is not None:
                h.setOptionValue("log_file", "")  # HiGHS keeps it open while it lives
        condition = _STATUS.get(h.getModelStatus().name, TerminationCondition.unknown)
        self._last = lp if condition == TerminationCondition.optimal else None
        return condition, _solved(lp, h, condition)

    @property
    def run_time(self) -> float:
        """The solver's own time of the last solve, seconds (HiGHS's clock runs on from
        solve to solve), with that of the periods it started from (`crash.period_basis`)."""
        return self._run_time


def _starts_from_periods(lp: MatrixLP, options: SolverOptions) -> bool:
    """Whether a cold solve of `lp` starts from its periods' bases (`crash.period_basis`):
    a simplex solve (HiGHS's choice or the user's) of at least `CRASH_MIN_COLUMNS` columns
    over several periods, with no simplex strategy of the user's."""
    return (
        lp.periods > 1
        and lp.a.shape[1] >= CRASH_MIN_COLUMNS
        and options.algorithm in (Algorithm.CHOOSE, Algorithm.SIMPLEX)
        and "simplex_strategy" not in options.extra
        and "solver" not in options.extra
    )


def _set_options(h: Any, options: SolverOptions) -> None:
    for name, value in options.for_linopy().items():
        status = h.setOptionValue(name, value)
        if status != highspy.HighsStatus.kOk:
            raise OptionError("extra", f"HiGHS refuses the option {name}={value!r}")


def _shifted(lp: MatrixLP, basis: Any, shift: int) -> Any:
    """`basis` of the last LP moved `shift` periods on: each column and row of a family with
    periods takes the status of the same element `shift` periods later, and the last `shift`
    periods keep their own. Marked alien: HiGHS completes it into a basis (the counts of
    basic columns per period need not add up)."""
    T = lp.periods
    t = np.arange(T)
    source = np.where(t < T - shift, t + shift, t)
    cols = np.arange(lp.a.shape[1], dtype=np.int64)
    for block in lp.columns.values():
        at = block.positions(T)
        if at.size:
            cols[at.ravel()] = at[:, source].ravel()
    full = np.arange(lp.row_of.size, dtype=np.int64)
    for block in lp.rows.values():
        at = block.positions(T)
        if at.size and block.periods:
            full[at.ravel()] = at[:, source].ravel()
    kept = lp.row_of >= 0
    rows = lp.row_of[full[kept]]
    moved = highspy.HighsBasis()
    moved.col_status = np.asarray(basis.col_status, dtype=object)[cols].tolist()
    moved.row_status = np.asarray(basis.row_status, dtype=object)[rows].tolist()
    moved.alien = True
    moved.valid = False
    return moved


def _run(h: Any) -> None:
    """Solve, with Ctrl-C cancelling the solve (highspy runs HiGHS in a thread of its own
    for that) and raised here as `KeyboardInterrupt`."""
    h.HandleKeyboardInterrupt = _INTERRUPTIBLE
    try:
        h.solve()
    except Exception as exc:  # highspy's own errors
        raise SolverError(f"solver 'highs' failed: {exc}") from exc
    if h.getModelStatus() == highspy.HighsModelStatus.kInterrupt:
        raise KeyboardInterrupt


def _solved(lp: MatrixLP, h: Any, condition: TerminationCondition) -> Solved:
    solution = h.getSolution()
    x = np.asarray(solution.col_value, dtype=float)
    y = np.asarray(solution.row_dual, dtype=float)
    return solved_arrays(lp, x, y, condition)


def solved_arrays(
    lp: MatrixLP,
    x: np.ndarray[Any, np.dtype[np.float64]],
    y: np.ndarray[Any, np.dtype[np.float64]],
    condition: TerminationCondition,
) -> Solved:
    """The solution of `lp` given as column values `x` and row duals `y` (NaN where the
    solver gave none), ready for extraction."""
    T = lp.periods
    n_cols = lp.a.shape[1]
    if x.size != n_cols:  # no solution (e.g. stopped in presolve)
        x = np.full(n_cols, np.nan)
    if y.size != lp.a.shape[0]:
        y = np.full(lp.a.shape[0], np.nan)
    values = {}
    cost = np.zeros(T)
    for name, block in lp.columns.items():
        if len(block.index):
            at = block.positions(T)
            values[name] = x[at]
            cost += (lp.c[at] * x[at]).sum(axis=0)
    rows = {name: lp.kept_rows(name) for name, block in lp.rows.items() if len(block.index)}
    index = {name: lp.rows[name].index for name in rows}
    return Solved(
        values=values,
        rows=rows,
        row_index=index,
        a=lp.a,
        b=lp.b,
        sense=lp.sense,
        c=lp.c,
        lower=lp.lower,
        upper=lp.upper,
        x=x,
        y=y,
        objective=float(lp.c @ x) if condition == TerminationCondition.optimal else np.nan,
        cost_by_period=cost,
        termination=str(condition.value),
    )
