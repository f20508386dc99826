"""Market KPIs: pure functions of a cleared result and its settlement (SPEC C4).

Definitions (energy in kWh over the horizon; grid peers are not members of any community's
balance and are left out of the shares; docs/quantities.md lists every quantity shown):

* `total_cost`: generation cost + fees - value of served flexible demand - value of energy
  the grid absorbs (the `system-cost` objective, whatever objective was cleared).
* `social_welfare`: -total_cost (inflexible load has no stated value, so welfare counts the
  value of flexible demand and of absorbed energy against every cost).
* `traded_kwh`: the energy delivered between peers, each kWh counted once from its seller to
  its final buyer (energy through community managers traced back to its sellers,
  `p2pmarket.core.flows.bilateral_trades`; a manager's pass-through is not counted again),
  split into `inside` one community, `between` communities and `with_grid`; the three add up
  to `total`, which is `Summary.traded_energy_kwh` of the same result.
* self-sufficiency of a community: 1 - energy its members buy from outside it / their demand
  (load, flexible demand and storage charging); self-consumption: 1 - energy they sell outside
  it / their generation and discharge. Both lie in [0, 1] by the no-resale rule. The market's
  own figures treat every grid peer as the outside.
* fairness of savings among non-grid peers: Jain's index (sum s)^2 / (n sum s^2), in (0, 1]
  for non-negative savings, and the Gini coefficient sum |s_i - s_j| / (2 n^2 mean s); both
  are reported as NaN when savings are not all non-negative or all zero.

Energy KPIs (traded energy, grid import and export, self-sufficiency, self-consumption)
describe the market as cleared, `result`. Money KPIs (total cost, fees, savings and their
fairness) are the settlement's, and a `paper` clearing is settled on its `system-cost`
clearing (`p2pmarket.app.settle_result`), whose trades may differ: the energy KPIs never mix
the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.flows import bilateral_trades
from p2pmarket.core.results import ClearingResult, plain_fields
from p2pmarket.core.settlement import Settlement
from p2pmarket.types import Objective, Rule

__all__ = ["Kpis", "community_shares", "gini", "jain_index", "kpis", "traded_volume"]


def jain_index(values: np.ndarray) -> float:
    """Jain's fairness index of non-negative values (1 = all equal); NaN if undefined."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or (v < -1e-9).any() or not (v > 1e-12).any():
        return math.nan
    return float(v.sum() ** 2 / (v.size * (v**2).sum()))


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = all equal); NaN if undefined."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or (v < -1e-9).any() or not (v > 1e-12).any():
        return math.nan
    return float(np.abs(v[:, None] - v[None, :]).sum() / (2 * v.size**2 * v.mean()))


def _delivered(result: ClearingResult, settlement: Settlement | None) -> pd.DataFrame:
    """The bilateral trades of `result` (seller to final buyer, managers resolved): those of
    `settlement` when it settled this very clearing, else computed from `result.trades` (a
    `paper` clearing is settled on its `system-cost` twin, whose trades may differ)."""
    if settlement is not None and settlement.cleared_with == result.objective_kind:
        return settlement.trades
    return bilateral_trades(result)


def traded_volume(result: ClearingResult, settlement: Settlement | None = None) -> dict[str, float]:
    """Energy delivered between peers (each kWh once, module docstring) inside communities,
    between them and with the grid, and in `total` (kWh), in the market as cleared.
    `settlement`, when it is this clearing's, saves tracing the trades again."""
    return _volume(result, _delivered(result, settlement))


def _volume(result: ClearingResult, t: pd.DataFrame) -> dict[str, float]:
    _, code = _group_codes(result)
    grids = set(result.scenario.grid_ids)
    with_grid = (t["seller"].isin(grids) | t["buyer"].isin(grids)).to_numpy()
    seller_c, buyer_c = _coded(t["seller"], code, -1), _coded(t["buyer"], code, -2)
    inside = ~with_grid & (seller_c == buyer_c)
    energy = t["energy_kwh"].to_numpy()
    return {
        "inside": float(energy[inside].sum()),
        "between": float(energy[~with_grid & ~inside].sum()),
        "with_grid": float(energy[with_grid].sum()),
        "total": float(energy.sum()),
    }


def community_shares(result: ClearingResult, settlement: Settlement | None = None) -> pd.DataFrame:
    """Self-sufficiency and self-consumption per community and for the whole market, in the
    market as cleared (`settlement` as in `traded_volume`)."""
    return _community_shares(result, _delivered(result, settlement))


def _community_shares(result: ClearingResult, t: pd.DataFrame) -> pd.DataFrame:
    s = result.scenario
    dt = s.period_hours
    keys, code = _group_codes(result)
    grids = set(s.grid_ids)
    outside = len(keys)  # the grid's side of a trade: no community's
    d = result.dispatch
    members = d[~d["peer"].isin(grids)]
    group = _coded(members["peer"], code, outside)
    size = outside + 1
    load = members["load_kw"] + members["flexible_load_kw"] + members["charge_kw"]
    demand = np.bincount(group, weights=load.to_numpy() * dt, minlength=size)
    produced = members["generation_kw"] + members["discharge_kw"]
    supply = np.bincount(group, weights=produced.to_numpy() * dt, minlength=size)

    seller_c, buyer_c = _coded(t["seller"], code, outside), _coded(t["buyer"], code, outside)
    crossing = seller_c != buyer_c
    energy = t["energy_kwh"].to_numpy()
    bought_outside = np.bincount(buyer_c[crossing], weights=energy[crossing], minlength=size)
    sold_outside = np.bincount(seller_c[crossing], weights=energy[crossing], minlength=size)
    rows = []
    for g in dict.fromkeys(group.tolist()):  # in the order the communities first appear
        rows.append(_shares(keys[g][1], demand[g], supply[g], bought_outside[g], sold_outside[g]))
    from_grid = t.loc[t["seller"].isin(grids) & ~t["buyer"].isin(grids), "energy_kwh"].sum()
    to_grid = t.loc[t["buyer"].isin(grids) & ~t["seller"].isin(grids), "energy_kwh"].sum()
    rows.append(_shares("market", demand.sum(), supply.sum(), from_grid, to_grid))
    return pd.DataFrame(rows)


def _group_codes(result: ClearingResult) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The groups of `_groups` in a list, and each peer's position in it."""
    owner = _groups(result)
    keys = list(dict.fromkeys(owner.values()))
    position = {key: i for i, key in enumerate(keys)}
    return keys, {peer: position[key] for peer, key in owner.items()}


def _coded(values: pd.Series, code: dict[str, int], missing: int) -> npt.NDArray[np.int64]:
    """`code` of each value (`missing` for a value it does not know), each distinct value
    looked up once."""
    at, distinct = pd.factorize(values)
    table = np.array([*(code.get(v, missing) for v in distinct), missing], dtype=np.int64)
    coded: npt.NDArray[np.int64] = table[at]
    return coded


def _groups(result: ClearingResult) -> dict[str, tuple[str, str]]:
    """Peer id -> its community as a key that no id can collide with: ("community", id) for a
    listed community, ("alone", peer id) for a peer listed in none."""
    owner = result.scenario.community_of()
    return {p: ("community", c) if c is not None else ("alone", p) for p, c in owner.items()}


def _shares(name: str, demand: float, supply: float, bought: float, sold: float) -> dict[str, Any]:
    return {
        "community": name,
        "demand_kwh": float(demand),
        "generation_kwh": float(supply),
        "bought_outside_kwh": float(bought),
        "sold_outside_kwh": float(sold),
        # Clipped only against rounding (1 - 1.0000000000000004); the rule keeps them in range.
        "self_sufficiency": min(max(1 - bought / demand, 0.0), 1.0) if demand > 1e-9 else math.nan,
        "self_consumption": min(max(1 - sold / supply, 0.0), 1.0) if supply > 1e-9 else math.nan,
    }


@dataclass(frozen=True)
class Kpis:
    """The market's KPIs (module docstring for the definitions); `to_dict()` is what
    `kpis.json` holds (NaN as null)."""

    rule: Rule
    currency: str
    objective: float
    objective_kind: Objective
    total_cost: float
    social_welfare: float
    fees_collected: float
    fee_collector: str
    traded_kwh: dict[str, float]
    """Energy delivered between peers, each kWh once: `inside`, `between`, `with_grid` and
    `total` (= `Summary.traded_energy_kwh`)."""
    grid_import_kwh: float
    grid_export_kwh: float
    self_sufficiency: float | None
    self_consumption: float | None
    communities: dict[str, dict[str, float | None]] = field(repr=False)
    savings_total: float
    savings_jain_index: float | None
    savings_gini: float | None
    baseline_note: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, in field order (enums as their text)."""
        return plain_fields(self)


def kpis(result: ClearingResult, settlement: Settlement) -> Kpis:
    """The market's KPIs: a pure function of a cleared result and its settlement."""
    lines = settlement.lines
    total_cost = float(
        lines["generation_cost"].sum()
        + settlement.fees_collected
        - lines["flexible_value"].sum()
        - lines["absorbed_value"].sum()
    )
    delivered = _delivered(result, settlement)
    volume = _volume(result, delivered)
    shares = _community_shares(result, delivered)
    market = shares.iloc[-1]  # the market's own row comes last
    grids = set(result.scenario.grid_ids)
    bills = settlement.bills[~settlement.bills["peer"].isin(grids)]
    savings = bills["savings"].to_numpy()
    return Kpis(
        rule=settlement.rule,
        currency=settlement.currency,
        objective=result.objective,
        objective_kind=result.objective_kind,
        total_cost=total_cost,
        social_welfare=-total_cost,
        fees_collected=settlement.fees_collected,
        fee_collector=settlement.fee_collector,
        traded_kwh=volume,
        grid_import_kwh=float(market["bought_outside_kwh"]),
        grid_export_kwh=float(market["sold_outside_kwh"]),
        self_sufficiency=_plain(market["self_sufficiency"]),
        self_consumption=_plain(market["self_consumption"]),
        communities={
            row["community"]: {
                "self_sufficiency": _plain(row["self_sufficiency"]),
                "self_consumption": _plain(row["self_consumption"]),
            }
            for row in shares.iloc[:-1].to_dict("records")
        },
        savings_total=float(np.nansum(savings)),
        savings_jain_index=_plain(jain_index(savings)),
        savings_gini=_plain(gini(savings)),
        baseline_note=settlement.baseline_note,
    )


def _plain(value: float) -> float | None:
    """NaN -> None, so that the KPIs serialise as JSON null."""
    return None if value is None or math.isnan(float(value)) else float(value)
