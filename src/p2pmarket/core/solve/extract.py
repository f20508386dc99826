"""From a solved model to result tables: dispatch, trades, prices and duals."""

from __future__ import annotations

from typing import Any

import linopy
import numpy as np
import pandas as pd
import xarray as xr

from p2pmarket.core.designs import Network, PeerData
from p2pmarket.core.designs.hubs import bilateral_from_hubs
from p2pmarket.core.results import ClearingResult, Timings
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve.model import Layout
from p2pmarket.types import Design, Objective, Route, Status

__all__ = ["TOLERANCE_KW", "extract"]

TOLERANCE_KW = 1e-7
"""Flows below this are reported as zero (solver noise)."""


def extract(
    s: Scenario,
    data: PeerData,
    net: Network,
    model: linopy.Model,
    layout: Layout,
    design: Design,
    objective: Objective,
) -> ClearingResult:
    """The solved model as result tables; hub flows become bilateral trades between peers.

    Nodes are told apart by position and `NodeKind`, never by name (a peer may be called
    like a community, or `hub:x`)."""
    T = s.periods
    n = len(data.ids)
    dt = s.period_hours

    def per_peer(name: str, dim: str, owner: pd.Index) -> np.ndarray[Any, np.dtype[np.float64]]:
        out = np.zeros((n, T))
        if name in model.variables:
            values = model.variables[name].solution.transpose(dim, "period").values
            np.add.at(out, data.ids.get_indexer(owner), values)
        return _clean(out)

    generation = per_peer("generation", "peer", layout.generators)
    charge = per_peer("charge", "storage", layout.storage)
    discharge = per_peer("discharge", "storage", layout.storage)
    absorbed = per_peer("absorption", "absorber", layout.absorbers)
    flexible = per_peer("flexible-load", "block", pd.Index(layout.block_owner))
    soc = np.full((n, T), np.nan)
    if len(layout.storage):
        soc[data.ids.get_indexer(layout.storage)] = _clean(
            model.variables["soc"].solution.transpose("storage", "period").values
        )

    flow = model.variables["trade"].solution.transpose("link", "period").values
    flow = np.where(flow > TOLERANCE_KW, flow, 0.0)
    link, period = np.nonzero(flow)
    seller, buyer = net.seller[link], net.buyer[link]
    power = flow[link, period]
    fee = net.fee_per_kwh[link, period] * power * dt
    route = net.route[link]
    if net.hubs:
        period, seller, buyer, energy, fee = bilateral_from_hubs(
            period, seller, buyer, power * dt, fee, net.n_peers
        )
        power = energy / dt
        route = np.full(seller.size, str(Route.P2P))
        names, kinds = net.names[:n], net.node_kind[:n]
    else:
        names, kinds = net.names, net.node_kind
    trades = pd.DataFrame(
        {
            "period": period.astype(np.int64),
            "seller": names[seller],
            "seller_kind": kinds[seller].astype(str),
            "buyer": names[buyer],
            "buyer_kind": kinds[buyer].astype(str),
            "route": route,
            "power_kw": power,
            "energy_kwh": power * dt,
            "fee_per_kwh": fee / np.where(power > 0, power * dt, 1.0),
            "fee": fee,
        }
    )
    trades = trades.sort_values(["period", "seller", "buyer"], kind="stable", ignore_index=True)
    node_in = np.zeros((names.size, T))
    node_out = np.zeros((names.size, T))
    np.add.at(node_in, (buyer, period), power)
    np.add.at(node_out, (seller, period), power)

    duals = {name: model.constraints[name].dual.copy() for name in model.constraints}
    price = duals["peer-balance"].transpose("peer", "period").values / dt
    # A peer that can never buy has no marginal cost of serving it: its balance dual is an
    # arbitrary vertex of the dual polytope, not a price. Report no buying price there.
    buying_price = np.where(data.can_buy[:, None], price, np.nan)
    # A sale is valued at the balance price less the no-resale dual (<= 0), so that on every
    # trade with energy: buyer's price - seller's selling price = the link's cost (CS).
    sell_price = price.copy()
    if "no-resale" in duals:
        resale = duals["no-resale"].transpose("peer", "period")
        rows = data.ids.get_indexer(resale.indexes["peer"])
        sell_price[rows] -= resale.values / dt
    manager_price = (
        duals["manager-balance"].transpose("manager", "period").values / dt
        if "manager-balance" in duals and not net.hubs
        else np.zeros((0, T))
    )

    imports, exports = node_in[:n], node_out[:n]
    net_import = imports - exports
    role = np.where(net_import > 1e-6, "buyer", np.where(net_import < -1e-6, "seller", "neutral"))
    owner = s.community_of()
    periods = np.repeat(np.arange(T), n)
    dispatch = pd.DataFrame(
        {
            "period": periods,
            "peer": np.tile(np.asarray(data.ids), T),
            "community": np.tile(np.array([owner[i] for i in data.ids], dtype=object), T),
            "declared_role": np.tile(data.role, T),
            "role": _rows(role),
            "generation_kw": _rows(generation),
            "load_kw": _rows(data.load_kw),
            "flexible_load_kw": _rows(flexible),
            "absorbed_kw": _rows(absorbed),
            "charge_kw": _rows(charge),
            "discharge_kw": _rows(discharge),
            "soc_kwh": _rows(soc),
            "import_kw": _rows(imports),
            "export_kw": _rows(exports),
            "net_import_kw": _rows(net_import),
            "price_per_kwh": _rows(buying_price),
            "sell_price_per_kwh": _rows(sell_price),
        }
    )

    node_price = np.concatenate([buying_price, manager_price])
    node_sell_price = np.concatenate([sell_price, manager_price])
    prices = pd.DataFrame(
        {
            "period": np.repeat(np.arange(T), names.size),
            "node": np.tile(names, T),
            "kind": np.tile(kinds.astype(str), T),
            "price_per_kwh": node_price.T.ravel(),
            "sell_price_per_kwh": node_sell_price.T.ravel(),
        }
    )
    return ClearingResult(
        scenario=s,
        design=Design(design),
        objective_kind=Objective(objective),
        status=Status.OPTIMAL,
        termination=str(model.termination_condition),
        objective=float(model.objective.value or 0.0),
        dispatch=dispatch,
        trades=trades,
        prices=prices,
        duals={k: _plain(v) for k, v in duals.items()},
        n_variables=int(model.nvars),
        n_constraints=int(model.ncons),
        timings=Timings(build_seconds=0.0, solve_seconds=0.0),
        model=net.model,
    )


def _clean(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Solver noise (|x| below the tolerance, e.g. -1e-13 kWh) reported as exact zeros."""
    return np.where(np.abs(values) < TOLERANCE_KW, 0.0, values)


def _rows(values: Any) -> Any:
    """(peer, period) array -> one value per dispatch row, period-major."""
    return np.asarray(values).T.ravel()


def _plain(values: xr.DataArray) -> xr.DataArray:
    return values.rename(values.name or "dual")
