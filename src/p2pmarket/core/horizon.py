"""The horizon as windows: plan which periods are cleared together, cut a scenario into its
windows, and put their results back together. Pure: no solver, no processes.

The LP has no constraint across periods except the storage balance, so without storage the
optimum of the whole horizon is the optimum of each period, and one period's LP is much
cheaper to solve than all of them together (simplex time grows faster than linearly).
`plan(scenario, split)` says which windows to clear; a runner (`p2pmarket.runners`) clears
them, and `merge` joins the results.

A rolling horizon (`rolling_plan`) clears consecutive windows of `window` periods, each
solved together with the `lookahead` periods after it: only the window's own periods are
kept (`cut`), and each storage unit's state of charge at the end of them is where the next
window starts (`window_slice(..., initial_soc=...)`); the look-ahead is solved again with the
next window. A window's end state is free (at least empty) unless it ends the horizon, where
the scenario's `final_soc` holds. When the look-ahead reaches the end of the horizon, the
rolling result's objective is the single LP's (the principle of optimality); with less,
it is a feasible schedule that knows the future only that far.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel

from p2pmarket.core.designs import peer_data
from p2pmarket.core.designs.data import remember_peer_data
from p2pmarket.core.designs.hubs import hub_links_estimate
from p2pmarket.core.results import ClearingResult, Timings
from p2pmarket.core.scenario import Peer, Scenario, Series
from p2pmarket.errors import OptionError
from p2pmarket.types import PeriodsSolved

__all__ = [
    "SPLIT_MIN_LINK_PERIODS",
    "Window",
    "cut",
    "end_soc",
    "merge",
    "merge_periods",
    "period_slice",
    "plan",
    "rolling_plan",
    "window_slice",
]

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


def rolling_plan(periods: int, window: int, lookahead: int) -> tuple[tuple[Window, Window], ...]:
    """The windows of a rolling horizon over `periods`: for each, (the periods solved, the
    periods kept), the kept ones `window` long (the last may be shorter), the solved ones
    with up to `lookahead` more."""
    if window < 1 or lookahead < 0:
        raise OptionError("window", "a rolling window is at least 1 period, its look-ahead 0")
    windows = []
    for start in range(0, periods, window):
        kept = Window(start, min(start + window, periods))
        windows.append((Window(start, min(kept.stop + lookahead, periods)), kept))
    return tuple(windows)


def window_slice(
    s: Scenario, w: Window, *, initial_soc: Mapping[str, float] | None = None
) -> Scenario:
    """The scenario of periods `w.start` to `w.stop` of `s`: each series cut to them; each
    storage unit starting at `initial_soc[peer]` (a share of its capacity; default the
    scenario's), and ending free (at least empty) unless the window ends the horizon.
    Built without a second validation, as `period_slice` is."""
    if w.start == 0 and w.stop == s.periods and initial_soc is None:
        return s
    ends = w.stop == s.periods

    def storage(p: Peer) -> dict[str, object]:
        st = p.storage
        if st is None:
            return {}
        start = st.initial_soc if initial_soc is None else initial_soc[p.id]
        soc = {
            "initial_soc": min(1.0, max(0.0, float(start))),
            "final_soc": st.final_soc if ends else 0.0,
        }
        return {"storage": st.model_copy(update=soc)}

    part = _sliced(
        s,
        lambda v: v[w.start : w.stop] if isinstance(v, tuple) else v,
        name=f"{s.name} (periods {w.start}-{w.stop - 1})",
        periods=w.periods,
        storage=storage,
    )
    remember_peer_data(part, peer_data(s).periods(w.start, w.stop))
    return part


def end_soc(result: ClearingResult, periods: int) -> dict[str, float]:
    """Each storage unit's state of charge after the first `periods` periods of `result`, as
    a share of its capacity (where the next window of a rolling horizon starts)."""
    units = {p.id: p.storage for p in result.scenario.peers if p.storage is not None}
    if not units:
        return {}
    d = result.dispatch
    last = d["period"].to_numpy() == periods - 1
    peers, socs = d["peer"].to_numpy()[last].tolist(), d["soc_kwh"].to_numpy()[last].tolist()
    return {
        str(peer): float(soc) / units[str(peer)].capacity_kwh
        for peer, soc in zip(peers, socs, strict=True)
        if peer in units
    }


def cut(result: ClearingResult, periods: int) -> ClearingResult:
    """`result` kept to its first `periods` periods: tables, duals and the objective (from
    `objective_by_period`, which a rolling horizon needs). Copies, not views: a view would
    keep the look-ahead's rows alive while the windows of a year wait to be merged."""
    if result.objective_by_period is None:
        raise OptionError(
            "window", f"the {result.method} clearing does not say its cost per period"
        )
    if periods >= result.scenario.periods:
        return result

    def first(table: pd.DataFrame) -> pd.DataFrame:
        period = table["period"].to_numpy()
        if period.size and bool(np.all(period[1:] >= period[:-1])):  # rows by period
            # `take`, not a slice: a slice of an Arrow string column shares its buffers
            return table.take(np.arange(int(np.searchsorted(period, periods))))
        return table[period < periods].reset_index(drop=True)

    return replace(
        result,
        objective=float(result.objective_by_period[:periods].sum()),
        objective_by_period=result.objective_by_period[:periods],
        dispatch=first(result.dispatch),
        trades=first(result.trades),
        prices=first(result.prices),
        duals={
            k: v.isel(period=slice(0, periods)).copy() if "period" in v.dims else v
            for k, v in result.duals.items()
        },
    )


def period_slice(s: Scenario, t: int) -> Scenario:
    """The one-period scenario of period `t` (storage must be absent: it couples periods).

    Built by copying the validated scenario with each series replaced by its value at `t`
    (no second validation: slicing keeps every rule true), so cutting a large market into
    its periods costs little.
    """
    if any(p.storage is not None for p in s.peers):
        raise OptionError("split_periods", "a scenario with storage cannot be cut into periods")
    if s.periods == 1 and t == 0:
        return s
    part = _sliced(
        s,
        lambda v: v[t] if isinstance(v, tuple) else v,
        name=f"{s.name} (period {t})",
        periods=1,
        storage=lambda p: {},
    )
    remember_peer_data(part, peer_data(s).periods(t, t + 1))  # the arrays cut, not re-read
    return part


def _sliced(
    s: Scenario,
    at: Callable[[Series | None], Series | None],
    *,
    name: str,
    periods: int,
    storage: Callable[[Peer], dict[str, object]],
) -> Scenario:
    """`s` with every series `at` a cut of its periods (`period_slice`, `window_slice`), and
    each peer's storage updated as `storage` says. No second validation: cutting keeps every
    rule true."""

    def peer(p: Peer) -> Peer:
        g = p.generation
        update: dict[str, object] = {
            "load_kw": at(p.load_kw),
            "export_fee": at(p.export_fee),
            "buy_price_per_kwh": at(p.buy_price_per_kwh),
            "generation": None
            if g is None
            else _replaced(
                g,
                {
                    "min_kw": at(g.min_kw),
                    "max_kw": at(g.max_kw),
                    "offer_per_kwh": at(g.offer_per_kwh),
                },
            ),
            "flexible_load": tuple(
                _replaced(b, {"max_kw": at(b.max_kw), "price_per_kwh": at(b.price_per_kwh)})
                for b in p.flexible_load
            ),
            **storage(p),
        }
        return _replaced(p, update)

    return s.model_copy(
        update={
            "name": name,
            "periods": periods,
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


_Model = TypeVar("_Model", bound=BaseModel)


def _replaced(model: _Model, update: dict[str, object]) -> _Model:
    """`model.model_copy(update=update)` (no validation either) without pydantic's generic
    copy, which was most of the cost of cutting a 10,000-peer market into its periods; the
    model itself where every value is the one it holds. For the frozen schema models, whose
    state is their fields (no private attributes, no extra fields)."""
    fields = model.__dict__
    changed = {k: v for k, v in update.items() if fields[k] is not v}
    if not changed:
        return model
    new = model.__class__.__new__(model.__class__)
    object.__setattr__(new, "__dict__", {**fields, **changed})
    object.__setattr__(new, "__pydantic_fields_set__", model.model_fields_set | changed.keys())
    object.__setattr__(new, "__pydantic_extra__", None)
    object.__setattr__(new, "__pydantic_private__", None)
    return new


def merge(
    parts: list[ClearingResult],
    scenario: Scenario,
    wall: float,
    *,
    starts: list[int] | None = None,
    periods_solved: PeriodsSolved = PeriodsSolved.ONE_BY_ONE,
    windows: tuple[tuple[int, int, int], ...] = (),
) -> ClearingResult:
    """One result for the whole horizon from the results of consecutive windows, in order;
    `starts` is each window's first period (default: one period each)."""
    first = parts[0]
    offsets = starts if starts is not None else list(range(len(parts)))
    # The horizon's status is its first window that did not finish (a decentralised window
    # stopped at its cap; a central one raises instead), named by where it starts.
    unfinished = [(r, t0) for r, t0 in zip(parts, offsets, strict=True) if r.status != "optimal"]
    status, termination = first.status, first.termination
    if unfinished:
        part, t0 = unfinished[0]
        status, termination = part.status, f"window from period {t0}: {part.termination}"

    def stack(name: str) -> pd.DataFrame:
        tables: list[pd.DataFrame] = [
            getattr(r, name).assign(period=getattr(r, name)["period"] + t0)
            for t0, r in zip(offsets, parts, strict=True)
        ]
        return pd.concat(tables, ignore_index=True)

    duals = {
        key: _joined([r.duals[key] for r in parts], offsets)
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
    by_period = [r.objective_by_period for r in parts]
    return ClearingResult(
        scenario=scenario,
        design=first.design,
        objective_kind=first.objective_kind,
        status=status,
        termination=termination,
        objective=float(sum(r.objective for r in parts)),
        dispatch=stack("dispatch"),
        trades=stack("trades"),
        prices=stack("prices"),
        duals=duals,
        n_variables=sum(r.n_variables for r in parts),
        n_constraints=sum(r.n_constraints for r in parts),
        timings=timings,
        model=first.model,
        periods_solved=periods_solved,
        method=first.method,
        objective_by_period=None
        if any(b is None for b in by_period)
        else np.concatenate([b for b in by_period if b is not None]),
        windows=windows,
    )


merge_periods = merge
"""Old name of `merge`, kept for one release."""


def _joined(duals: list[xr.DataArray], offsets: list[int]) -> xr.DataArray:
    """One row family's duals over the windows, each window's periods moved by its offset.
    Where every window has the same rows in the same order (the usual case) the values are
    stacked as they are; else aligned by row, NaN where a window has no such row (e.g. the
    sellers of a no-resale row differ by window)."""
    periods = np.concatenate(
        [np.asarray(d["period"].values) + t0 for d, t0 in zip(duals, offsets, strict=True)]
    )
    first = duals[0]
    if first.dims[-1] == "period" and all(
        d.dims == first.dims and all(d.indexes[k].equals(first.indexes[k]) for k in d.dims[:-1])
        for d in duals[1:]
    ):
        coords = {k: first.indexes[k] for k in first.dims[:-1]}
        values = np.concatenate([d.values for d in duals], axis=-1)
        return xr.DataArray(
            values, coords={**coords, "period": periods}, dims=first.dims, name=first.name
        )
    moved = [
        d.assign_coords(period=np.asarray(d["period"].values) + t0)
        for d, t0 in zip(duals, offsets, strict=True)
    ]
    return xr.concat(moved, dim="period", join="outer")
