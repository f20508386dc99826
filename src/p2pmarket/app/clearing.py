"""`clear()`: the one way to clear a market, for the library, the command line, the service and
sweeps. It checks the choices, plans the horizon's windows (`p2pmarket.core.horizon`), hands
them to a runner (`p2pmarket.runners`) and a clearing method (`p2pmarket.core.solve`), and
merges the results."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import replace

from p2pmarket.core import horizon
from p2pmarket.core.collector import collector_paused
from p2pmarket.core.designs import peer_data
from p2pmarket.core.designs.hubs import hub_links_estimate
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve import CentralisedLP, Clearing, SolverOptions
from p2pmarket.core.solve.admm import ADMM
from p2pmarket.errors import OptionError
from p2pmarket.runners import InProcess, LocalProcesses, Runner, runner_for
from p2pmarket.types import Design, Objective, PeriodsSolved, parse

__all__ = ["METHODS", "OnWindow", "clear", "clearing_method"]

METHODS: tuple[str, ...] = ("central", "admm")
"""Clearing methods by name: `central` (`CentralisedLP`), `admm` (`ADMM`, SPEC C9)."""


def clearing_method(method: Clearing | str | None, reduce: bool | None = None) -> Clearing:
    """The clearing method `method` names (`METHODS`), or `method` itself; None: central."""
    if method is None or method == "central":
        return CentralisedLP(reduce=reduce)
    if method == "admm":
        return ADMM()
    if isinstance(method, str):
        raise OptionError("method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    return method


OnWindow = Callable[[int, int], None]
"""Told `(windows done, windows in all)` after each window of a rolling horizon."""


def clear(
    scenario: Scenario,
    design: Design | str | None = None,
    objective: Objective | str | None = None,
    options: SolverOptions | None = None,
    reduce: bool | None = None,
    *,
    method: Clearing | str | None = None,
    runner: Runner | None = None,
    on_window: OnWindow | None = None,
) -> ClearingResult:
    """Clear the market of `scenario` over its whole horizon as one linear program — or,
    where no storage couples the periods and the market is large, period by period, which has
    the same optimum (`SolverOptions.split_periods`, `p2pmarket.core.horizon`).

    `design` (`Design` or its value) and `objective` (`Objective`) override the scenario's
    own settings. `reduce`: clear a p2p market with unrestricted links through fee hubs, an
    exact model whose size grows with peers rather than their square
    (`p2pmarket.core.designs.hubs`); None decides by size, True insists, False never.
    `method`: the clearing method, or its name (`METHODS`: `central`, the default
    `CentralisedLP`, or `admm`, the decentralised `ADMM`, which clears the horizon as one
    negotiation unless `split_periods` insists); `runner`: where the windows are
    cleared (default: as `options.workers` asks, in this process for 1).
    With `options.window` shorter than the horizon, the market is cleared as a rolling
    horizon (`p2pmarket.core.horizon`: windows with a look-ahead, storage carried), one window
    after the other, `on_window` told after each; the result says so (`periods_solved`,
    `windows`).
    Raises `OptionError` for an unknown design or objective, `InfeasibleMarketError` naming a
    peer and period that cannot be balanced, or `SolverError` if the solver stops early.
    """
    design = parse(Design, design or scenario.design, "design")
    objective = parse(Objective, objective or scenario.objective, "objective")
    options = options or SolverOptions()
    method = clearing_method(method, reduce)
    if scenario.feeder is not None and isinstance(method, ADMM):
        raise OptionError(
            "method", "a scenario with a feeder is cleared by the central LP only (docs/feeder.md)"
        )
    if options.window is not None and options.window < scenario.periods:
        return _rolling(scenario, design, objective, options, method, on_window)
    split = options.split_periods
    if split is None and isinstance(method, ADMM):
        split = False  # the periods' sizes decide for the LP; ADMM negotiates them together
    windows = horizon.plan(scenario, split)
    if len(windows) == 1:
        return method.clear_window(scenario, design, objective, options)
    start = time.perf_counter()
    runner = runner or runner_for(options.workers)
    if isinstance(runner, InProcess) and isinstance(method, CentralisedLP):
        # In this process the horizon is built in runs of many periods, each as one LP
        # whose periods are solved one by one: no cut, build and extraction per period.
        runs = _runs(scenario.periods, -(-scenario.periods // _periods_a_run(scenario)))
        parts = []
        for run in runs:
            cut = horizon.window_slice(scenario, run)
            part = method.clear_periods(cut, design, objective, options, run.start)
            if part is None:
                break  # options of the user's, or a period to diagnose: period by period
            parts.append(replace(part, scenario=scenario))
        else:
            wall = time.perf_counter() - start
            starts = [run.start for run in runs]
            return horizon.merge(parts, scenario, wall=wall, starts=starts)
    jobs = [
        (method, horizon.window_slice(scenario, run), run.start, design, objective, options)
        for run in _runs(scenario.periods, _chunks(runner, len(windows)))
    ]
    parts = [part for done in runner.map(_clear_periods, jobs) for part in done]
    starts = [w.start for w in windows]
    return horizon.merge(parts, scenario, wall=time.perf_counter() - start, starts=starts)


def _chunks(runner: Runner, periods: int) -> int:
    """Into how many runs of consecutive periods a period-by-period clearing is cut: one
    per process a local runner keeps busy (one in this process), else one per period (a
    cluster's runner balances them itself)."""
    if isinstance(runner, InProcess):
        return 1
    if isinstance(runner, LocalProcesses):
        return min(periods, runner.cores)
    return periods


RUN_LINK_PERIODS = 2_000_000
"""Periods solved one by one in this process are built as one LP of at most this many trade
variables (links x periods) at a time: a 10,000-peer market's day is one LP, its year is
many, so that memory stays bounded whatever the horizon."""


def _periods_a_run(scenario: Scenario) -> int:
    explicit, hubs = hub_links_estimate(peer_data(scenario))
    return max(1, RUN_LINK_PERIODS // max(1, min(explicit, hubs)))


def _runs(periods: int, n: int) -> list[horizon.Window]:
    """The horizon's `periods` cut into `n` runs of consecutive ones, as even as can be."""
    edges = [periods * i // n for i in range(n + 1)]
    return [horizon.Window(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _rolling(
    scenario: Scenario,
    design: Design,
    objective: Objective,
    options: SolverOptions,
    method: Clearing,
    on_window: OnWindow | None,
) -> ClearingResult:
    """A rolling horizon: each window solved with its look-ahead, kept to its own periods,
    its storage's end state the next window's start."""
    assert options.window is not None
    lookahead = options.window if options.lookahead is None else options.lookahead
    plan = horizon.rolling_plan(scenario.periods, options.window, lookahead)
    start = time.perf_counter()
    # Consecutive windows have the same LP but for its data: one solver instance, warm.
    method = method.warm() if isinstance(method, CentralisedLP) else method
    parts: list[ClearingResult] = []
    soc: dict[str, float] | None = None
    for i, (solved, kept) in enumerate(plan):
        window = horizon.window_slice(scenario, solved, initial_soc=soc)
        result = method.clear_window(window, design, objective, options, solved.start)
        part = horizon.cut(result, kept.periods)
        soc = horizon.end_soc(part, kept.periods)
        # Not the window's own scenario: its series as Python floats are megabytes a window
        # at 1,000 households, and `merge` needs only the tables.
        parts.append(replace(part, scenario=scenario))
        if on_window is not None:
            on_window(i + 1, len(plan))
    return horizon.merge(
        parts,
        scenario,
        wall=time.perf_counter() - start,
        starts=[kept.start for _, kept in plan],
        periods_solved=PeriodsSolved.ROLLING,
        windows=tuple((kept.start, kept.periods, solved.periods) for solved, kept in plan),
    )


_Periods = tuple[Clearing, Scenario, int, Design, Objective, SolverOptions]


def _clear_periods(job: _Periods) -> list[ClearingResult]:
    """A run of consecutive periods (its scenario, cut once from the horizon's, starting at
    period `first` of it), each period cut and cleared on its own, one after the other on one
    HiGHS instance: consecutive periods have the same LP but for its data, so each starts
    from the last one's basis."""
    method, scenario, first, design, objective, options = job
    method = method.warm() if isinstance(method, CentralisedLP) else method
    parts = []
    with collector_paused():
        for t in range(scenario.periods):
            cut = horizon.period_slice(scenario, t)
            part = method.clear_window(cut, design, objective, options, first + t)
            # Not the period's own scenario, which `merge` does not need.
            parts.append(replace(part, scenario=scenario))
    return parts
