"""The horizon as windows: plan which periods are cleared together, cut a scenario into its
windows, and put their results back together. Pure: no solver, no processes.

The LP has no constraint across periods except the storage balance, so without storage the
optimum of the whole horizon is the optimum of each period, and one period's LP is much
cheaper to solve than all of them together (simplex time grows faster than linearly).
`plan(scenario, split)` says which windows to clear; a runner (`p2pmarket.runners`) clears
them, and `merge` joins the results. Rolling horizons, with storage carried from one window
to the next, build on the same three steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import xarray as xr

from p2pmarket.core.designs import peer_data
from p2pmarket.core.designs.hubs import hub_links_estimate
from p2pmarket.core.results import ClearingResult, Timings
from p2pmarket.core.scenario import Peer, Scenario, Series
from p2pmarket.errors import OptionError
from p2pmarket.types import PeriodsSolved

__all__ = ["SPLIT_MIN_LINK_PERIODS", "Window", "merge", "merge_periods", "period_slice", "plan"]

SPLIT_MIN_LINK_PERIODS = 400_000
"""Without storage, periods are solved one by one by default from this many trade variables
(links x periods): one period's LP is then much faster than the horizon's."""


@dataclass(frozen=True)
class Window:
    """Periods `start` (inclusive) to `stop` (exclusive) of a horizon, cleared as one LP."""

    start: int
    stop: int

    @property
    def periods(self) -> int:
        return self.stop - self.start


def plan(s: Scenario, split: bool | None = None) -> tuple[Window, ...]:
    """The windows to clear: the whole horizon, or (without storage, which couples periods)
    each period on its own. `split` True insists, False never, None decides by size."""
    whole = (Window(0, s.periods),)
    if s.periods == 1 or any(p.storage is not None for p in s.peers):
        if split:
            raise OptionError(
                "split_periods", "storage couples the periods: they cannot be solved one by one"
            )
        return whole
    if split is None:
        explicit, hubs = hub_links_estimate(peer_data(s))
        split = min(explicit, hubs) * s.periods >= SPLIT_MIN_LINK_PERIODS
    return tuple(Window(t, t + 1) for t in range(s.periods)) if split else whole


def period_slice(s: Scenario, t: int) -> Scenario:
    """The one-period scenario of period `t` (storage must be absent: it couples periods).

    Built by copying the validated scenario with each series replaced by its value at `t`
    (no second validation: slicing keeps every rule true), so cutting a large market into
    its periods costs little.
    """
    if any(p.storage is not None for p in s.peers):
        raise OptionError("split_periods", "a scenario with storage cannot be cut into periods")

    def at(value: Series | None) -> Series | None:
        return value[t] if isinstance(value, tuple) else value

    def peer(p: Peer) -> Peer:
        g = p.generation
        return p.model_copy(
            update={
                "load_kw": at(p.load_kw),
                "export_fee": at(p.export_fee),
                "buy_price_per_kwh": at(p.buy_price_per_kwh),
                "generation": None
                if g is None
                else g.model_copy(
                    update={
                        "min_kw": at(g.min_kw),
                        "max_kw": at(g.max_kw),
                        "offer_per_kwh": at(g.offer_per_kwh),
                    }
                ),
                "flexible_load": tuple(
                    b.model_copy(
                        update={"max_kw": at(b.max_kw), "price_per_kwh": at(b.price_per_kwh)}
                    )
                    for b in p.flexible_load
                ),
            }
        )

    return s.model_copy(
        update={
            "name": f"{s.name} (period {t})",
            "periods": 1,
            "uniform_fee": at(s.uniform_fee),
            "communities": tuple(
                c.model_copy(update={"intra_fee": at(c.intra_fee), "export_fee": at(c.export_fee)})
                for c in s.communities
            ),
            "community_fees": tuple(
                f.model_copy(update={"fee": at(f.fee)}) for f in s.community_fees
            ),
            "peers": tuple(peer(p) for p in s.peers),
        }
    )


def merge(parts: list[ClearingResult], scenario: Scenario, wall: float) -> ClearingResult:
    """One result for the whole horizon from the results of its one-period windows, in order."""
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
        periods_solved=PeriodsSolved.ONE_BY_ONE,
        method=first.method,
    )


merge_periods = merge
"""Old name of `merge`, kept for one release."""
