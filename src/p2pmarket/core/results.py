"""Typed, frozen results of a clearing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from p2pmarket.core.scenario import Scenario
from p2pmarket.types import Design, ModelKind, NodeKind, Objective, PeriodsSolved, Status

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "DISPATCH_COLUMNS",
    "PRICE_COLUMNS",
    "TRADE_COLUMNS",
    "ClearingResult",
    "Status",
    "Summary",
    "Timings",
    "link_energy_kwh",
    "plain_fields",
    "traded_energy_kwh",
]


DISPATCH_COLUMNS = (
    "period",
    "peer",
    "community",
    "declared_role",
    "role",
    "generation_kw",
    "load_kw",
    "flexible_load_kw",
    "absorbed_kw",
    "charge_kw",
    "discharge_kw",
    "soc_kwh",
    "import_kw",
    "export_kw",
    "net_import_kw",
    "price_per_kwh",
    "sell_price_per_kwh",
)
"""Columns of `ClearingResult.dispatch`: one row per period and peer."""

TRADE_COLUMNS = (
    "period",
    "seller",
    "seller_kind",
    "buyer",
    "buyer_kind",
    "route",
    "power_kw",
    "energy_kwh",
    "fee_per_kwh",
    "fee",
)
"""Columns of `ClearingResult.trades`: one row per trade with positive energy and period.
`seller_kind` and `buyer_kind` are `NodeKind` values (`peer`, `manager`): a manager is named by
its community's id, and only the kind tells it from a peer of the same name."""

PRICE_COLUMNS = (
    "period",
    "node",
    "kind",
    "price_per_kwh",
    "sell_price_per_kwh",
    "price_low_per_kwh",
    "price_high_per_kwh",
    "sell_price_low_per_kwh",
    "sell_price_high_per_kwh",
)
"""Columns of `ClearingResult.prices`: one row per node (peers, then managers) and period.
`price_per_kwh` is the cost of serving one more kWh at the node (the balance dual), empty
(NaN) for a peer that can never buy; `sell_price_per_kwh` what one more kWh sold from there
is worth (balance dual less the no-resale dual). Where a dual is not unique the price is the
upper end of its interval `*_low_per_kwh`..`*_high_per_kwh` (docs/prices.md)."""


def traded_energy_kwh(trades: pd.DataFrame) -> float:
    """Energy delivered between peers (kWh): each kWh counted once, from its seller to its
    final buyer, however many community managers it passed through on the way.

    Every kWh a peer buys arrives on exactly one trade whose buyer is a peer (`buyer_kind`;
    managers pass on all they receive), so this is the energy of those trades. It equals the
    total of the bilateral trades (`p2pmarket.core.flows.bilateral_trades`) and the KPIs'
    `traded_kwh["total"]`. See docs/quantities.md."""
    to_peers = trades["buyer_kind"] == NodeKind.PEER
    return float(trades.loc[to_peers, "energy_kwh"].sum())


def link_energy_kwh(trades: pd.DataFrame) -> float:
    """Energy over trade links, counted per hop (kWh): the sum over every row of `trades`, so
    a kWh routed through a community manager counts once into the manager and once out of
    it (and once more per manager-to-manager link). Equal to `traded_energy_kwh` when no
    energy passes through a manager. See docs/quantities.md."""
    return float(trades["energy_kwh"].sum())


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of one clearing.

    `build_seconds`: scenario to linopy model; `solve_seconds`: the whole solve call (hand-over
    to the solver, the solver, reading the solution back); `solver_seconds`: the solver's own
    run time as it reports it; `extract_seconds`: solution to result tables.
    """

    build_seconds: float
    solve_seconds: float
    solver_seconds: float = 0.0
    extract_seconds: float = 0.0
    wall_seconds: float | None = None
    """Elapsed time when periods were solved separately (the parts may overlap in time)."""

    @property
    def total_seconds(self) -> float:
        return self.build_seconds + self.solve_seconds + self.extract_seconds

    @property
    def outside_solver_seconds(self) -> float:
        """Everything but the solver's own run time: our overhead."""
        return self.total_seconds - self.solver_seconds


@dataclass(frozen=True)
class ClearingResult:
    """The cleared market.

    `dispatch`, `trades` and `prices` are tables with units in their column names; `duals`
    holds the raw dual values of each constraint family (objective currency per kW of the
    constraint's right-hand side), keyed by constraint name.
    """

    scenario: Scenario
    design: Design
    objective_kind: Objective
    status: Status
    termination: str
    objective: float
    dispatch: pd.DataFrame
    trades: pd.DataFrame
    prices: pd.DataFrame
    duals: dict[str, xr.DataArray] = field(repr=False)
    n_variables: int
    n_constraints: int
    timings: Timings
    model: ModelKind = ModelKind.EXPLICIT
    """`explicit` (a variable per allowed link) or `hubs` (the exact reduced p2p model)."""
    periods_solved: PeriodsSolved = PeriodsSolved.TOGETHER
    """`together` (one LP for the horizon) or `one by one` (no storage couples them)."""
    method: str = "centralised-lp"
    """The clearing method (`p2pmarket.core.solve.Clearing`) that produced the result."""
    objective_by_period: npt.NDArray[np.float64] | None = field(
        default=None, repr=False, compare=False
    )
    """What each period contributes to `objective` (None where the method does not say)."""
    windows: tuple[tuple[int, int, int], ...] = ()
    """For a rolling horizon: each window as (first period, committed periods, periods
    solved); empty otherwise."""
    method_report: object | None = field(default=None, repr=False, compare=False)
    """What the clearing method says of how it got there, when it says more than the
    tables (the decentralised method: an `AdmmReport`); None for central clearing."""

    def summary(self) -> Summary:
        """The headline figures (`Summary.to_dict()` is what `summary.json` holds)."""
        d = self.dispatch
        hours = self.scenario.period_hours
        return Summary(
            scenario=self.scenario.name,
            status=self.status,
            termination=self.termination,
            design=self.design,
            objective=self.objective,
            objective_kind=self.objective_kind,
            currency=self.scenario.currency,
            periods=self.scenario.periods,
            period_hours=hours,
            peers=len(self.scenario.peers),
            trades=len(self.trades),
            traded_energy_kwh=traded_energy_kwh(self.trades),
            link_energy_kwh=link_energy_kwh(self.trades),
            generation_kwh=float(d["generation_kw"].sum() * hours),
            load_kwh=float((d["load_kw"] + d["flexible_load_kw"]).sum() * hours),
            variables=self.n_variables,
            constraints=self.n_constraints,
            model=self.model,
            periods_solved=self.periods_solved,
            build_seconds=self.timings.build_seconds,
            solve_seconds=self.timings.solve_seconds,
            solver_seconds=self.timings.solver_seconds,
            extract_seconds=self.timings.extract_seconds,
        )


@dataclass(frozen=True)
class Summary:
    """The headline figures of a clearing; `to_dict()` gives plain JSON values."""

    scenario: str
    status: Status
    termination: str
    design: Design
    objective: float
    objective_kind: Objective
    currency: str
    periods: int
    period_hours: float
    peers: int
    trades: int
    traded_energy_kwh: float
    """Energy delivered between peers, each kWh once (`traded_energy_kwh()`)."""
    link_energy_kwh: float
    """Energy over trade links counted per hop (`link_energy_kwh()`): through a manager a kWh
    counts twice or more."""
    generation_kwh: float
    load_kwh: float
    variables: int
    constraints: int
    model: ModelKind
    periods_solved: PeriodsSolved
    build_seconds: float
    solve_seconds: float
    solver_seconds: float
    extract_seconds: float

    def to_dict(self) -> dict[str, object]:
        """Plain values (enums as their text), in field order: what `summary.json` holds."""
        return plain_fields(self)


def plain_fields(record: DataclassInstance) -> dict[str, Any]:
    """The fields of a dataclass instance as plain JSON values, in field order: enums (all
    `StrEnum`s) as their text."""
    return {k: str(v) if isinstance(v, str) else v for k, v in asdict(record).items()}
