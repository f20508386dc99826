"""The feeder of a run (SPEC C12): what it did to the market, checked by AC power flow.

`feeder_run(market)` gathers, for a market whose scenario has a feeder: the feeder's outcome
in the clearing the bills use (voltages, flows, binding limits, price decomposition), the
same market cleared without the feeder (to show what the feeder changed), and the AC
validation of LinDistFlow on the cleared withdrawals (pandapower; None with a note when
pandapower is not installed). The command line and reports call this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from p2pmarket.app.clearing import clear
from p2pmarket.app.run import MarketRun
from p2pmarket.core.feeder import FeederOutcome, feeder_outcome
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve import SolverOptions
from p2pmarket.errors import MissingExtraError

__all__ = ["FeederRun", "feeder_run", "without_feeder"]


@dataclass(frozen=True)
class FeederRun:
    """A run's feeder: `outcome` (of the billed clearing), `unconstrained` (the same market
    cleared without the feeder), `validation` (`feeder_validation.csv`'s table, or None) and
    `note` (why there is no validation, else empty)."""

    outcome: FeederOutcome
    constrained: ClearingResult
    unconstrained: ClearingResult
    validation: pd.DataFrame | None
    note: str = ""


def without_feeder(scenario: Scenario) -> Scenario:
    """`scenario` with its `feeder` section removed: the market on a copper plate."""
    data = scenario.to_dict()
    data.pop("feeder", None)
    return Scenario.from_dict(data)


def feeder_run(market: MarketRun, options: SolverOptions | None = None) -> FeederRun:
    """The feeder of `market` (its scenario must have one): module docstring."""
    from p2pmarket.io.pandapower_feeder import validate_feeder

    billed = market.billed
    outcome = feeder_outcome(billed)
    free = clear(without_feeder(billed.scenario), billed.design, billed.objective_kind, options)
    try:
        validation: pd.DataFrame | None = validate_feeder(outcome)
        note = ""
    except MissingExtraError as exc:
        validation, note = None, f"no AC validation: {exc}"
    return FeederRun(outcome, billed, free, validation, note)
