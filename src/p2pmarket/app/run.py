"""Running a market: clear, settle, compute KPIs — the one way through for the command line,
the HTTP service and sweeps.

Settlement prices a `system-cost` clearing against a no-trading baseline, and runs no solver
itself; this layer decides which clearings it needs (the market; the market again under
`system-cost` when it was cleared under `paper`; the baseline) and clears each once
(`Clearings`, a cache a caller may share across runs, e.g. one baseline for many rules).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from p2pmarket.app.clearing import clear
from p2pmarket.core.kpis import Kpis, kpis
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.settlement import Settlement, baseline_scenario, settle
from p2pmarket.core.solve import CentralisedLP, Clearing, SolverOptions
from p2pmarket.errors import InfeasibleMarketError
from p2pmarket.runners import Background, LocalProcesses, Runner, runner_for, tell
from p2pmarket.types import Design, NodeKind, Objective, Rule, parse

__all__ = [
    "Clearings",
    "MarketRun",
    "OnClearingWindow",
    "billed_prices_note",
    "run_market",
    "settle_result",
]

OnClearingWindow = Callable[[str, int, int], None]
"""Told `(which clearing, windows done, windows in all)` after each window of a rolling
horizon; the clearing is named `"p2p system-cost"`, `"no-trading baseline"`, ..."""


@dataclass
class Clearings:
    """Clearings by (scenario, design, objective), each solved once; a baseline that cannot be
    cleared is remembered as its error. Not shared between threads. `method`: how the
    markets are cleared (`p2pmarket.clear`'s `method`; the baseline is always central)."""

    options: SolverOptions = field(default_factory=SolverOptions)
    runner: Runner | None = None
    on_window: OnClearingWindow | None = None
    method: Clearing | str | None = None
    _done: dict[tuple[Scenario, Design, Objective], ClearingResult] = field(
        default_factory=dict, init=False, repr=False
    )
    _baselines: dict[Scenario, ClearingResult | InfeasibleMarketError] = field(
        default_factory=dict, init=False, repr=False
    )

    def remember(self, result: ClearingResult) -> ClearingResult:
        self._done[(result.scenario, result.design, result.objective_kind)] = result
        return result

    def get(self, scenario: Scenario, design: Design, objective: Objective) -> ClearingResult:
        key = (scenario, design, objective)
        if key not in self._done:
            self._done[key] = clear(
                scenario,
                design,
                objective,
                self.options,
                method=self.method,
                runner=self.runner,
                on_window=self._told(f"{design} {objective}"),
            )
        return self._done[key]

    def priced(self, result: ClearingResult) -> ClearingResult:
        """The clearing whose duals price `result`: itself under `system-cost`, else the same
        market cleared under `system-cost`."""
        self.remember(result)
        return self.get(result.scenario, result.design, Objective.SYSTEM_COST)

    def baseline(self, scenario: Scenario) -> tuple[ClearingResult | None, str]:
        """The no-trading baseline of `scenario` and, when it is infeasible, why."""
        if scenario not in self._baselines:
            try:
                self._baselines[scenario] = clear_baseline(
                    scenario,
                    self.options,
                    runner=self.runner,
                    on_window=self._told("no-trading baseline"),
                )
            except InfeasibleMarketError as exc:
                self._baselines[scenario] = exc
        found = self._baselines[scenario]
        if isinstance(found, InfeasibleMarketError):
            return None, f"the no-trading baseline is infeasible: {found}"
        return found, ""

    def has_baseline(self, scenario: Scenario) -> bool:
        return scenario in self._baselines

    def receive_baseline(
        self, scenario: Scenario, pending: Background[ClearingResult | InfeasibleMarketError]
    ) -> None:
        """The baseline of `scenario` from a `Background` clearing, its windows told to
        `on_window` as they arrive."""
        self._baselines[scenario] = pending.result(self.relay_baseline)

    def relay_baseline(self, message: object) -> None:
        """A window of a `Background` baseline clearing, told to `on_window`."""
        told = self._told("no-trading baseline")
        if told is not None and isinstance(message, tuple):
            told(*message)

    def _told(self, which: str) -> Callable[[int, int], None] | None:
        on_window = self.on_window
        if on_window is None:
            return None
        return lambda done, total: on_window(which, done, total)

    def settle(self, result: ClearingResult, rule: Rule | str) -> Settlement:
        """Settle `result` under `rule`, clearing what settlement needs (once)."""
        baseline, note = self.baseline(result.scenario)
        return settle(self.priced(result), baseline, rule, baseline_note=note)


@dataclass(frozen=True)
class MarketRun:
    """A cleared, settled market: the `result` as cleared, the `settlement` (of its
    `system-cost` clearing), the `kpis`, and `priced`: the clearing whose prices the bills use
    (`result` itself unless it was cleared under the `paper` objective, whose duals are an
    accounting figure, not prices anyone pays)."""

    result: ClearingResult
    settlement: Settlement
    kpis: Kpis
    priced: ClearingResult | None = None

    @property
    def billed(self) -> ClearingResult:
        """The clearing the bills are computed from: the one to show prices of."""
        return self.priced if self.priced is not None else self.result


def run_market(
    scenario: Scenario,
    design: Design | str | None = None,
    objective: Objective | str | None = None,
    rule: Rule | str = Rule.MARGINAL,
    options: SolverOptions | None = None,
    *,
    reduce: bool | None = None,
    runner: Runner | None = None,
    clearings: Clearings | None = None,
    on_window: OnClearingWindow | None = None,
    method: Clearing | str | None = None,
) -> MarketRun:
    """Clear `scenario` (design and objective as in `clear`), settle it under `rule` and
    compute its KPIs. `clearings` may be shared to clear each market and baseline once;
    `on_window` is told of each window of a rolling horizon (`SolverOptions.window`);
    `method`: the clearing method or its name, as in `clear` (central by default)."""
    rule = parse(Rule, rule, "rule")
    options = options or SolverOptions()
    clearings = clearings or Clearings(options, runner, on_window, method)
    d = parse(Design, design or scenario.design, "design")
    o = parse(Objective, objective or scenario.objective, "objective")
    baseline = _baseline_beside(scenario, options, runner, clearings)
    market_told = clearings._told(f"{d} {o}")

    def on_market_window(done: int, total: int) -> None:
        if market_told is not None:
            market_told(done, total)
        if baseline is not None:  # the baseline's own windows, as they come
            for message in baseline.messages():
                clearings.relay_baseline(message)

    try:
        result = clear(
            scenario,
            design,
            objective,
            options,
            reduce,
            method=clearings.method,
            runner=runner,
            on_window=on_market_window,
        )
    except BaseException:
        if baseline is not None:
            baseline.close()
        raise
    if baseline is not None:
        clearings.receive_baseline(scenario, baseline)
    settlement = clearings.settle(result, rule)
    priced = clearings.priced(result)
    return MarketRun(result, settlement, kpis(result, settlement), priced)


def _baseline_beside(
    scenario: Scenario, options: SolverOptions, runner: Runner | None, clearings: Clearings
) -> Background[ClearingResult | InfeasibleMarketError] | None:
    """The no-trading baseline of a rolling horizon started in a process of its own, cleared
    while this one clears the market, where local processes are allowed (`options.workers`
    not 1, or a `LocalProcesses` runner) and there are cores for both; else None (it is then
    cleared after the market, as any baseline). A window-by-window market and its baseline
    are two long independent sequences, so they overlap; each runs slower beside the other
    (a 100-household year: 50-57 s together against 61 s one after the other)."""
    rolling = options.window is not None and options.window < scenario.periods
    local = runner if runner is not None else runner_for(options.workers)
    if not rolling or not isinstance(local, LocalProcesses) or local.cores < 2:
        return None
    if clearings.has_baseline(scenario):
        return None
    return Background(_clear_baseline, (scenario, options))


def clear_baseline(
    scenario: Scenario,
    options: SolverOptions,
    *,
    runner: Runner | None = None,
    on_window: Callable[[int, int], None] | None = None,
) -> ClearingResult:
    """The no-trading baseline of `scenario` cleared: each peer trading with the grid alone,
    under `system-cost` (`baseline_scenario`). It is settled at the grid's tariff, so its
    prices are the solver's duals as found (`CentralisedLP(priced=False)`)."""
    return clear(
        baseline_scenario(scenario),
        Design.P2P,
        Objective.SYSTEM_COST,
        options,
        method=CentralisedLP(priced=False),
        runner=runner,
        on_window=on_window,
    )


def _clear_baseline(job: tuple[Scenario, SolverOptions]) -> ClearingResult | InfeasibleMarketError:
    """The baseline's clearing in a `Background` process; each window told as it is done."""
    scenario, options = job
    try:
        return clear_baseline(
            scenario,
            dataclasses.replace(options, workers=1),
            on_window=lambda done, total: tell((done, total)),
        )
    except InfeasibleMarketError as exc:
        return InfeasibleMarketError(str(exc))


def settle_result(
    result: ClearingResult, rule: Rule | str = Rule.MARGINAL, options: SolverOptions | None = None
) -> Settlement:
    """Settle any cleared market under `rule`: clears its baseline and, for a `paper`
    clearing, its `system-cost` twin, then calls the pure `settle`."""
    return Clearings(options or SolverOptions()).settle(result, rule)


def billed_prices_note(result: ClearingResult, priced: ClearingResult) -> str:
    """The one sentence every place that shows a price says when its prices come from
    `priced` (the clearing the bills use), not from `result` as cleared under `paper`."""
    peers = result.prices[result.prices["kind"] != NodeKind.MANAGER]["price_per_kwh"]
    largest = (
        f" (up to {float(peers.max()):.4f} {result.scenario.currency}/kWh)"
        if peers.notna().any()
        else ""
    )
    return (
        f"Prices shown are the {priced.objective_kind} prices that the bills use. The paper's "
        "objective (Eq. 1), under which this market was cleared, counts the offer of each "
        f"traded kWh again on every link, so its duals{largest} are an accounting figure, not "
        "a price anyone pays."
    )
