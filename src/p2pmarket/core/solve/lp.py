"""The centralised clearing method: the whole market as one linear program, solved by HiGHS.

`CentralisedLP().clear_window(scenario, design, objective, options)` builds the LP of SPEC
section 3 on the design's network (`p2pmarket.core.designs`), solves it, and reads the
solution back into a `ClearingResult`; the linopy model lives only inside the call.
Termination is read from linopy's `TerminationCondition`, never from its text. An infeasible
market is located by an elastic (phase-one) re-solve that names the peer, period and why.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time

import highspy
import linopy
import numpy as np
from linopy.constants import TerminationCondition

from p2pmarket.core.designs import Network, PeerData, design_network, peer_data
from p2pmarket.core.results import ClearingResult, Timings
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve.crash import period_solution
from p2pmarket.core.solve.extract import Solved, extract, from_linopy
from p2pmarket.core.solve.highs import HighsSession, solved_arrays
from p2pmarket.core.solve.matrix import build_matrix
from p2pmarket.core.solve.model import Layout, build_model
from p2pmarket.core.solve.options import SolverOptions
from p2pmarket.errors import InfeasibleMarketError, SolverError, TimeLimitError
from p2pmarket.types import Algorithm, Design, Objective, PeriodsSolved

__all__ = ["CentralisedLP"]

_INFEASIBLE = {
    TerminationCondition.infeasible,
    TerminationCondition.infeasible_or_unbounded,
}
_TIME_LIMIT = {TerminationCondition.time_limit}

# A library is silent unless asked: linopy's messages go to the application's logging
# configuration (a NullHandler keeps Python from printing them when there is none).
logging.getLogger("linopy").addHandler(logging.NullHandler())
_BANNER_SILENCED = False


def _silence_highs_banner() -> None:
    """HiGHS prints a banner straight to file descriptor 1 when its first instance in a
    process is created, before any option can turn it off: create that instance with the
    descriptor pointed at /dev/null (once per process; where descriptors cannot be moved,
    e.g. no real stdout, leave it)."""
    global _BANNER_SILENCED
    if _BANNER_SILENCED:
        return
    _BANNER_SILENCED = True
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclasses.dataclass(frozen=True)
class CentralisedLP:
    """Clear the horizon of a scenario as one LP (the `Clearing` protocol of
    `p2pmarket.core.solve`). `reduce`: use the exact hub model of a full p2p market (None:
    by size; see `p2pmarket.core.designs.hubs.use_hubs`).

    With HiGHS (the default solver) the LP is built as arrays (`matrix.py`) and handed to
    highspy; with any other solver it is built and solved through linopy (`model.py`), the
    same LP. `warm()` gives a clearing that keeps its HiGHS instance from window to window
    (`highs.HighsSession`), for the consecutive windows of a rolling horizon."""

    reduce: bool | None = None
    name: str = "centralised-lp"
    priced: bool = True
    """False: prices as the solver's duals, not moved to their defined point (`extract`)."""

    def clear_window(
        self,
        scenario: Scenario,
        design: Design,
        objective: Objective,
        options: SolverOptions,
        first_period: int = 0,
    ) -> ClearingResult:
        """Clear every period of `scenario` as one LP; `first_period` numbers its periods in
        messages, for a window cut from a longer horizon."""
        return self.clear_with(HighsSession(), scenario, design, objective, options, first_period)

    def clear_periods(
        self,
        scenario: Scenario,
        design: Design,
        objective: Objective,
        options: SolverOptions,
        first_period: int = 0,
    ) -> ClearingResult | None:
        """A storage-free `scenario` built as one LP over its horizon and solved period by
        period (`crash.period_solution`: blocks of periods on one HiGHS instance, each from
        the last one's basis) — the optimum of clearing its periods one by one, with one
        build and one extraction instead of one per period. None where this does not apply
        (another solver, a feeder, solver options of the user's that a period's solve would
        have to follow, storage, or a period not solved to optimality): the caller then
        clears the periods one by one (`p2pmarket.clear`), which also names what cannot be
        balanced."""
        if options.solver != "highs" or scenario.feeder is not None or not _plain(options):
            return None
        start = time.perf_counter()
        data, net = self._network(scenario, design, objective, first_period)
        lp = build_matrix(scenario, data, net, objective)
        built = time.perf_counter()
        if not options.log:
            _silence_highs_banner()
        found = period_solution(lp, options.threads)
        if found is None:
            return None
        solved = solved_arrays(lp, found.x, found.y, TerminationCondition.optimal)
        result = self._extracted(
            scenario,
            data,
            net,
            solved,
            lp.layout,
            design,
            objective,
            (start, built, time.perf_counter(), found.solver_seconds),
        )
        return dataclasses.replace(result, periods_solved=PeriodsSolved.ONE_BY_ONE)

    def warm(self) -> WarmLP:
        """This clearing with one HiGHS instance kept across its windows."""
        return WarmLP(self, HighsSession())

    def clear_with(
        self,
        session: HighsSession,
        scenario: Scenario,
        design: Design,
        objective: Objective,
        options: SolverOptions,
        first_period: int = 0,
    ) -> ClearingResult:
        """`clear_window` on `session`'s HiGHS instance (its last basis the start where the
        LP has the same matrix)."""
        start = time.perf_counter()
        data, net = self._network(scenario, design, objective, first_period)
        solved: Solved | None = None
        if options.solver == "highs" and scenario.feeder is None:  # a feeder: linopy (model.py)
            lp = build_matrix(scenario, data, net, objective)
            layout: Layout = lp.layout
            built = time.perf_counter()
            if not options.log:
                _silence_highs_banner()
            condition, solved = session.solve(lp, shaped(options, net, lp.periods), first_period)
            run_time = session.run_time
        else:
            model, layout = build_model(scenario, data, net, objective)
            built = time.perf_counter()
            _solve(model, options)
            condition = _termination(model)
            run_time = _solver_run_time(model)
        finished = time.perf_counter()
        if condition in _INFEASIBLE:
            raise _diagnose(scenario, data, net, objective, options, first_period)
        if condition in _TIME_LIMIT:
            raise TimeLimitError(options.time_limit_s)
        if condition != TerminationCondition.optimal:
            raise SolverError(
                f"the solver stopped with status {condition.value!r}", status=condition.value
            )
        if solved is None:
            solved = from_linopy(model, layout)
        return self._extracted(
            scenario,
            data,
            net,
            solved,
            layout,
            design,
            objective,
            (start, built, finished, run_time),
        )

    def _network(
        self, scenario: Scenario, design: Design, objective: Objective, first_period: int
    ) -> tuple[PeerData, Network]:
        """The scenario's arrays and the design's network, refused where a load has no
        seller it may buy from."""
        data = peer_data(scenario)
        net = design_network(scenario, data, design, objective, self.reduce)
        refuse_isolated_load(data, net, first_period)
        return data, net

    def _extracted(
        self,
        scenario: Scenario,
        data: PeerData,
        net: Network,
        solved: Solved,
        layout: Layout,
        design: Design,
        objective: Objective,
        clock: tuple[float, float, float, float],
    ) -> ClearingResult:
        """The result tables of `solved`, timed: `clock` is when the clearing started, when
        the LP was built, when it was solved, and the solver's own seconds."""
        start, built, finished, solver_seconds = clock
        result = extract(scenario, data, net, solved, layout, design, objective, priced=self.priced)
        timings = Timings(
            build_seconds=built - start,
            solve_seconds=finished - built,
            solver_seconds=solver_seconds,
            extract_seconds=time.perf_counter() - finished,
        )
        return dataclasses.replace(result, timings=timings, method=self.name)


def _plain(options: SolverOptions) -> bool:
    """Whether `options` leave HiGHS's choices to p2pmarket (no algorithm, time limit,
    tolerance, log or extra option of the user's), as the period blocks of
    `CentralisedLP.clear_periods` are solved."""
    return (
        options.algorithm == Algorithm.CHOOSE
        and options.time_limit_s is None
        and options.primal_tolerance is None
        and options.dual_tolerance is None
        and not options.log
        and options.log_file is None
        and not options.extra
    )


PRIMAL_MIN_LINKS = 5_000
"""A single-period hub model with at least this many links is solved by primal simplex."""


def shaped(options: SolverOptions, net: Network, periods: int) -> SolverOptions:
    """`options` with HiGHS's algorithm chosen for the model's shape where the user left it
    to HiGHS (`choose`, no `simplex_strategy` of their own): a single-period hub model (a
    transport problem through fee hubs, p2p or hybrid, as solved period by period) of
    `PRIMAL_MIN_LINKS` links or more goes to primal simplex, 2.5-4x faster there than the
    dual simplex HiGHS picks (docs/performance.md, "Solver options"); every other shape, e.g.
    the 24-period or storage-coupled LPs where dual simplex is faster, is left alone."""
    if (
        options.algorithm != "choose"
        or "simplex_strategy" in options.extra
        or not net.hubs
        or periods != 1
        or net.n_links < PRIMAL_MIN_LINKS
    ):
        return options
    extra = {**options.extra, "simplex_strategy": 4}
    return dataclasses.replace(options, algorithm=Algorithm.SIMPLEX, extra=extra)


@dataclasses.dataclass(frozen=True)
class WarmLP:
    """A `CentralisedLP` whose windows share one HiGHS instance (`CentralisedLP.warm`)."""

    lp: CentralisedLP
    session: HighsSession

    @property
    def name(self) -> str:
        return self.lp.name

    def clear_window(
        self,
        scenario: Scenario,
        design: Design,
        objective: Objective,
        options: SolverOptions,
        first_period: int = 0,
    ) -> ClearingResult:
        return self.lp.clear_with(self.session, scenario, design, objective, options, first_period)


def _termination(model: linopy.Model) -> TerminationCondition:
    condition = model.termination_condition
    try:
        return TerminationCondition(str(condition))
    except ValueError:
        return TerminationCondition.unknown


def _solver_run_time(model: linopy.Model) -> float:
    """The solver's own run time when it reports one (HiGHS does), else 0."""
    run_time = getattr(getattr(model, "solver_model", None), "getRunTime", None)
    return float(run_time()) if callable(run_time) else 0.0


def refuse_isolated_load(data: PeerData, net: Network, first_period: int = 0) -> None:
    """A peer with load that can neither generate, discharge nor trade over any link cannot be
    balanced. Its balance row may hold no variable at all, which the modelling layer would
    silently drop, so it is named here before solving."""
    linked = np.zeros(len(data.ids), dtype=bool)
    linked[net.buyer[net.buyer < net.n_peers]] = True
    linked[net.seller[net.seller < net.n_peers]] = True
    isolated = ~(linked | data.can_sell)
    stuck = np.argwhere(isolated[:, None] & (data.load_kw > 0))
    if stuck.size:
        n, t = (int(i) for i in stuck[0])
        more = f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""
        peer, period = str(data.ids[n]), first_period + t
        reason = f"{data.load_kw[n, t]:.6g} kW of demand and no allowed link to any seller"
        raise InfeasibleMarketError(
            f"peer {peer!r} cannot be balanced in period {period}: {reason}{more}",
            peer=peer,
            period=period,
            reason=reason,
        )


def _solve(model: linopy.Model, options: SolverOptions) -> None:
    if options.solver == "highs" and not options.log:
        _silence_highs_banner()
    try:
        model.solve(solver_name=options.solver, io_api="direct", **options.for_linopy())
    except Exception as exc:  # the solver library's own errors vary by solver
        raise SolverError(f"solver {options.solver!r} failed: {exc}") from exc
    finally:
        if options.solver == "highs" and options.log_file is not None:
            _close_log(model)


def _close_log(model: linopy.Model) -> None:
    """HiGHS keeps its log file open as long as its instance lives (linopy holds it): close
    it now, so that a long-running process leaks no file handle."""
    solver = getattr(model, "solver_model", None)
    if isinstance(solver, highspy.Highs):
        solver.setOptionValue("log_file", "")


def feeder_problem(model: linopy.Model, first_period: int = 0) -> InfeasibleMarketError | None:
    """The feeder limit the elastic model had to break the most (its `slack-feeder-...`
    variables), named by bus or branch row and period; None when it broke none. (Breaking
    one limit can ease another, e.g. exports raising every voltage to lift the lowest: the
    largest break is the limit that cannot hold, the others follow from it.)"""
    why = {
        "slack-feeder-voltage-max": (
            "the voltage at bus {0!r} cannot be kept under vmax_pu",
            "pu²",
        ),
        "slack-feeder-voltage-min": (
            "the voltage at bus {0!r} cannot be kept above vmin_pu",
            "pu²",
        ),
        "slack-feeder-branch-limit": ("feeder branch limit row {0} cannot be respected", "kVA"),
    }
    worst: tuple[float, str, str, object, int] | None = None
    for name, (text, unit) in why.items():
        if name not in model.variables:
            continue
        hits = model.variables[name].solution.to_pandas().stack()
        hits = hits[hits > 1e-9]
        if len(hits):
            (where, period), value = max(hits.items(), key=lambda item: item[1])
            if worst is None or value > worst[0]:
                worst = (float(value), text, unit, where, int(period))
    if worst is None:
        return None
    value, text, unit, where, period = worst
    reason = text.format(where) + f" (short by {value:.3g} {unit})"
    period = first_period + period
    return InfeasibleMarketError(
        f"the feeder cannot carry the market in period {period}: {reason}; the loads"
        " are fixed, so no trade can fix it (widen the band or the ratings)",
        period=period,
        reason=reason,
    )


def _diagnose(
    s: Scenario,
    data: PeerData,
    net: Network,
    objective: Objective,
    options: SolverOptions,
    first_period: int = 0,
) -> InfeasibleMarketError:
    """Solve the elastic model and say which peer and period cannot be balanced, and why."""
    model, layout = build_model(s, data, net, objective, elastic=True)
    _solve(model, options)
    if _termination(model) != TerminationCondition.optimal:
        return InfeasibleMarketError(
            f"the market is infeasible (solver status {model.termination_condition})"
        )
    problems: list[tuple[str, int | None, str]] = []
    for name, why in (
        ("slack-shortfall", "kW of demand that no allowed seller can supply"),
        ("slack-surplus", "kW of generation above what anyone can take (min_kw too high?)"),
    ):
        hits = model.variables[name].solution.to_pandas().stack()
        hits = hits[hits > 1e-6]
        for (peer, period), value in hits.sort_index(level=[1, 0]).items():
            problems.append((str(peer), first_period + int(period), f"{value:.6g} {why}"))
    if len(layout.storage):
        sol = model.variables["slack-final-soc"].solution.to_pandas()
        for unit, value in sol[sol > 1e-6].items():
            problems.append((str(unit), None, f"{value:.6g} kWh short"))
    if not problems and s.feeder is not None:
        feeder = feeder_problem(model, first_period)
        if feeder is not None:
            return feeder
    if not problems:
        return InfeasibleMarketError("the market is infeasible (the solver found no balance)")
    peer, period, reason = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if period is None:
        message = f"storage of peer {peer!r} cannot reach its final_soc: {reason}{more}"
    else:
        message = f"peer {peer!r} cannot be balanced in period {period}: {reason}{more}"
    return InfeasibleMarketError(message, peer=peer, period=period, reason=reason)
