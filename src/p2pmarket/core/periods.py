"""Periods that no storage unit couples are independent markets: cut a scenario into single
periods and put the results back together.

The LP has no constraint across periods except the storage balance, so without storage the
optimum of the whole horizon is the optimum of each period, and one period's LP is much
cheaper to solve than all of them together (simplex time grows faster than linearly).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import xarray as xr

from p2pmarket.core.results import ClearingResult, Timings
from p2pmarket.core.scenario import Scenario

__all__ = ["merge_periods", "period_slice"]

_SERIES_KEYS = {"load_kw", "export_fee", "buy_price_per_kwh", "min_kw", "max_kw",
                "offer_per_kwh", "price_per_kwh", "intra_fee", "fee", "uniform_fee"}  # fmt: skip
"""Fields of the scenario file that hold a series (scalar or one value per period)."""


def period_slice(s: Scenario, t: int) -> Scenario:
    """The one-period scenario of period `t` (storage must be absent: it couples periods)."""
    if any(p.storage is not None for p in s.peers):
        raise ValueError("a scenario with storage cannot be cut into periods")
    data = _pick(s.to_dict(), t)
    data["periods"] = 1
    data["name"] = f"{s.name} (period {t})"
    return Scenario.from_dict(data)


def _pick(value: Any, t: int, key: str = "") -> Any:
    """Replace every per-period list below `value` with its element `t`."""
    if isinstance(value, dict):
        # `max_kw` also names a flexible block's size, which is a series too.
        return {k: _pick(v, t, k) for k, v in value.items()}
    if isinstance(value, list):
        if key in _SERIES_KEYS:
            return value[t]
        return [_pick(v, t) for v in value]
    return value


def merge_periods(parts: list[ClearingResult], scenario: Scenario, wall: float) -> ClearingResult:
    """One result for the whole horizon from the results of its periods, in order."""
    first = parts[0]

    def stack(name: str) -> pd.DataFrame:
        tables: list[pd.DataFrame] = [
            getattr(r, name).assign(period=t) for t, r in enumerate(parts)
        ]
        return pd.concat(tables, ignore_index=True)

    duals = {
        key: xr.concat(
            [r.duals[key].assign_coords(period=[t]) for t, r in enumerate(parts)],
            dim="period",
            join="outer",  # rows (e.g. the sellers of a no-resale row) differ by period
        )
        for key in first.duals
        if all(key in r.duals for r in parts) and "period" in first.duals[key].dims
    }
    timings = Timings(
        build_seconds=sum(r.timings.build_seconds for r in parts),
        solve_seconds=sum(r.timings.solve_seconds for r in parts),
        solver_seconds=sum(r.timings.solver_seconds for r in parts),
        extract_seconds=sum(r.timings.extract_seconds for r in parts),
        wall_seconds=wall,
    )
    return ClearingResult(
        scenario=scenario,
        design=first.design,
        objective_kind=first.objective_kind,
        status=first.status,
        termination=first.termination,
        objective=float(sum(r.objective for r in parts)),
        dispatch=stack("dispatch"),
        trades=stack("trades"),
        prices=stack("prices"),
        duals=duals,
        n_variables=sum(r.n_variables for r in parts),
        n_constraints=sum(r.n_constraints for r in parts),
        timings=timings,
        model=first.model,
        periods_solved="one by one",
    )
