"""What the feeder did in a cleared market: voltages, branch flows, binding limits and the
decomposition of every peer's price into energy, congestion and voltage terms.

A pure function of a `ClearingResult` whose scenario has a feeder (`feeder_outcome`): the
peers' withdrawals are their net purchases (`dispatch.net_import_kw`), the duals those the
clearing reported.

Price decomposition (docs/feeder.md). With mu_k >= 0 the shadow price of limit row k
(currency per unit of the row per period) and a_kn the row's coefficient on peer n's
withdrawal, the feeder's part of n's price is sum_k mu_k a_kn / dt, split by family:

    congestion_n = sum_{k: branch rows} mu_k a_kn / dt,  voltage_n = sum_{k: voltage rows} ...
    energy_n = price_n - congestion_n - voltage_n

(currency/kWh). On every trade with energy the energy terms keep the relation of a market
without feeder (buyer's = seller's + the link's cost, KKT of the trade), so `energy` is the
price the peer would see if the feeder's limits cost nothing at its bus and `congestion` and
`voltage` are what they add (negative where drawing more relieves a limit, e.g. consuming
at a bus pushed over vmax by exports). LinDistFlow is lossless: no losses term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.designs import peer_data
from p2pmarket.core.feeder.lindistflow import (
    FeederModel,
    LimitRows,
    branch_flows,
    bus_voltages,
    feeder_model,
)
from p2pmarket.core.results import ClearingResult

__all__ = [
    "BRANCH_COLUMNS",
    "BUS_COLUMNS",
    "DECOMPOSITION_COLUMNS",
    "FeederOutcome",
    "feeder_outcome",
    "withdrawals",
]

FloatArray = npt.NDArray[np.float64]

BUS_COLUMNS = ("period", "bus", "vm_pu")
BRANCH_COLUMNS = (
    "period",
    "branch",
    "kind",
    "from_bus",
    "to_bus",
    "p_kw",
    "q_kvar",
    "s_kva",
    "rating_kva",
    "loading_percent",
)
DECOMPOSITION_COLUMNS = (
    "period",
    "peer",
    "bus",
    "price_per_kwh",
    "energy_per_kwh",
    "congestion_per_kwh",
    "voltage_per_kwh",
)
_BINDING = 1e-9
"""A limit row whose dual is larger than this (currency per unit) is reported as binding."""


@dataclass(frozen=True)
class FeederOutcome:
    """The feeder after clearing (module docstring). Tables, one row per period and bus,
    branch or peer: `buses` (LinDistFlow voltage, pu), `branches` (flows, kW, kvar, kVA, and
    loading, % of the rating), `prices` (the decomposition, currency/kWh; `price_per_kwh` is
    the peer's buying price, or its selling price where it can never buy), `binding` (the
    limit rows with a non-zero dual: family, bus or branch, period, shadow price)."""

    model: FeederModel
    withdrawal_kw: FloatArray
    """(attached peers, periods): each peer's net withdrawal from the feeder."""
    buses: pd.DataFrame
    branches: pd.DataFrame
    prices: pd.DataFrame
    binding: pd.DataFrame
    network_term: FloatArray
    """(peers, periods): the dual of the withdrawal definition / dt, which equals congestion +
    voltage (a check of the decomposition; NaN where the clearing kept no duals)."""


def withdrawals(result: ClearingResult, peers: pd.Index) -> FloatArray:
    """Each peer's net withdrawal from the feeder (kW), (peers, periods): its net purchase."""
    table = result.dispatch.pivot(index="peer", columns="period", values="net_import_kw")
    return np.asarray(table.reindex(peers).to_numpy(dtype=float))


def feeder_outcome(result: ClearingResult) -> FeederOutcome:
    """The feeder's state and prices in `result` (its scenario must have a feeder)."""
    s = result.scenario
    model = feeder_model(s, peer_data(s))
    w = withdrawals(result, model.peers)
    T, dt = s.periods, s.period_hours
    topo = model.topology
    vm = bus_voltages(model, w)
    p, q = branch_flows(model, w)
    apparent = np.hypot(p, q)
    buses = pd.DataFrame(
        {
            "period": np.repeat(np.arange(T), len(topo.buses)),
            "bus": np.tile(np.asarray(topo.buses), T),
            "vm_pu": vm.T.ravel(),
        }
    )
    L = len(topo.branches)
    branches = pd.DataFrame(
        {
            "period": np.repeat(np.arange(T), L),
            "branch": np.tile(np.asarray(topo.branches), T),
            "kind": np.tile(topo.kind, T),
            "from_bus": np.tile(np.asarray(topo.buses[topo.parent]), T),
            "to_bus": np.tile(np.asarray(topo.buses[topo.child]), T),
            "p_kw": p.T.ravel(),
            "q_kvar": q.T.ravel(),
            "s_kva": apparent.T.ravel(),
            "rating_kva": np.tile(topo.rating_kva, T),
            "loading_percent": (100 * apparent / topo.rating_kva[:, None]).T.ravel(),
        }
    )
    terms = {f.name: _term(result, f, T) / dt for f in model.families}
    congestion = terms["feeder-branch-limit"]
    voltage = terms["feeder-voltage-max"] + terms["feeder-voltage-min"]
    price = _peer_price(result, model.peers)
    return FeederOutcome(
        model=model,
        withdrawal_kw=w,
        buses=buses,
        branches=branches,
        prices=pd.DataFrame(
            {
                "period": np.repeat(np.arange(T), len(model.peers)),
                "peer": np.tile(np.asarray(model.peers), T),
                "bus": np.tile(np.asarray(topo.buses[model.bus]), T),
                "price_per_kwh": price.T.ravel(),
                "energy_per_kwh": (price - congestion - voltage).T.ravel(),
                "congestion_per_kwh": congestion.T.ravel(),
                "voltage_per_kwh": voltage.T.ravel(),
            }
        ),
        binding=_binding(result, model),
        network_term=_definition_dual(result, model.peers, T) / dt,
    )


def _shadow(result: ClearingResult, family: LimitRows, T: int) -> FloatArray:
    """mu >= 0 of each row and period, (rows, periods): minus the solver's dual of a <= row
    (0 where the row was left out of a period)."""
    dual = result.duals.get(family.name)
    if dual is None or not len(family.index):
        return np.zeros((len(family.index), T))
    values = dual.reindex({family.index.name: family.index}).transpose(family.index.name, "period")
    values = values.reindex(period=np.arange(T))
    mu: FloatArray = np.nan_to_num(-np.asarray(values.values, dtype=float), nan=0.0)
    return mu


def _term(result: ClearingResult, family: LimitRows, T: int) -> FloatArray:
    """sum_k mu_k a_kn of one family, (peers, periods), in currency per kW and period."""
    return np.asarray(family.coef.T @ _shadow(result, family, T), dtype=float)


def _definition_dual(result: ClearingResult, peers: pd.Index, T: int) -> FloatArray:
    dual = result.duals.get("feeder-withdrawal-definition")
    if dual is None:
        return np.full((len(peers), T), np.nan)
    values = dual.reindex(peer=peers).transpose("peer", "period").reindex(period=np.arange(T))
    return np.asarray(values.values, dtype=float)


def _peer_price(result: ClearingResult, peers: pd.Index) -> FloatArray:
    """The buying price of each peer and period, its selling price where it has none."""
    d = result.dispatch.set_index(["peer", "period"])
    price = d["price_per_kwh"].fillna(d["sell_price_per_kwh"]).unstack("period")
    values: FloatArray = price.reindex(peers).to_numpy(dtype=float)
    return values


def _binding(result: ClearingResult, model: FeederModel) -> pd.DataFrame:
    """The limit rows with a non-zero shadow price, one row per row and period."""
    T = result.scenario.periods
    topo = model.topology
    parts = []
    for family in model.families:
        mu = _shadow(result, family, T)
        row, period = np.nonzero(mu > _BINDING)
        where = np.where(
            family.bus[row] >= 0,
            np.asarray(topo.buses)[np.maximum(family.bus[row], 0)],
            np.asarray(topo.branches)[np.maximum(family.branch[row], 0)],
        )
        parts.append(
            pd.DataFrame(
                {
                    "period": period.astype(np.int64),
                    "limit": family.name,
                    "element": where.astype(str),
                    "shadow_price": mu[row, period],
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["period", "limit", "element"], ignore_index=True)
