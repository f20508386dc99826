"""`clear()`: build the LP, solve it with HiGHS, read the result back into tables.

The linopy model lives only inside `clear()`; the result holds tables, never the model.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import linopy
import numpy as np
import pandas as pd
import xarray as xr

from p2pmarket.core.model import Layout, build_model
from p2pmarket.core.network import Network, PeerData, build_network, peer_data
from p2pmarket.core.results import ClearingResult, Status, Timings
from p2pmarket.core.scenario import DESIGNS, OBJECTIVES, Scenario
from p2pmarket.errors import InfeasibleMarketError, ScenarioError, SolverError

__all__ = ["SolverOptions", "clear"]

TOLERANCE_KW = 1e-7
"""Flows below this are reported as zero (solver noise)."""


@dataclass(frozen=True)
class SolverOptions:
    """Options handed to the solver. `extra` passes solver-specific options through."""

    solver: str = "highs"
    time_limit_s: float | None = None
    threads: int | None = None
    log: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def for_linopy(self) -> dict[str, Any]:
        options: dict[str, Any] = dict(self.extra)
        if self.solver == "highs":
            options.setdefault("output_flag", self.log)
            options.setdefault("log_to_console", self.log)
            if self.time_limit_s is not None:
                options["time_limit"] = float(self.time_limit_s)
            if self.threads is not None:
                options["threads"] = int(self.threads)
        return options


def clear(
    scenario: Scenario,
    design: str | None = None,
    objective: str | None = None,
    options: SolverOptions | None = None,
) -> ClearingResult:
    """Clear the market of `scenario` over its whole horizon as one linear program.

    `design` ("p2p", "community", "hybrid") and `objective` ("system-cost", "paper")
    override the scenario's own settings. Raises `InfeasibleMarketError` naming a peer and
    period that cannot be balanced, or `SolverError` if the solver stops early.
    """
    design = design or scenario.design
    objective = objective or scenario.objective
    if design not in DESIGNS:
        raise ScenarioError("design", f"{design!r} is not one of {', '.join(DESIGNS)}")
    if objective not in OBJECTIVES:
        raise ScenarioError("objective", f"{objective!r} is not one of {', '.join(OBJECTIVES)}")
    options = options or SolverOptions()

    start = time.perf_counter()
    data = peer_data(scenario)
    net = build_network(scenario, data, design)
    _refuse_isolated_load(data, net)
    model, layout = build_model(scenario, data, net, objective)
    built = time.perf_counter()
    _solve(model, options)
    solved = time.perf_counter()

    termination = str(model.termination_condition)
    if termination != "optimal":
        if "infeasible" in termination:
            raise InfeasibleMarketError(_diagnose(scenario, data, net, objective, options))
        raise SolverError(f"the solver stopped with status {termination!r}")
    result = _extract(scenario, data, net, model, layout, design, objective)
    timings = Timings(
        build_seconds=built - start,
        solve_seconds=solved - built,
        solver_seconds=_solver_run_time(model),
        extract_seconds=time.perf_counter() - solved,
    )
    return dataclasses.replace(result, timings=timings)


def _solver_run_time(model: linopy.Model) -> float:
    """The solver's own run time when it reports one (HiGHS does), else 0."""
    run_time = getattr(getattr(model, "solver_model", None), "getRunTime", None)
    return float(run_time()) if callable(run_time) else 0.0


def _refuse_isolated_load(data: PeerData, net: Network) -> None:
    """A peer with load that can neither generate, discharge nor trade over any link cannot be
    balanced. Its balance row may hold no variable at all, which the modelling layer would
    silently drop, so it is named here before solving."""
    linked = np.zeros(len(data.ids), dtype=bool)
    linked[net.buyer[net.buyer < net.n_peers]] = True
    linked[net.seller[net.seller < net.n_peers]] = True
    isolated = ~(linked | data.can_sell)
    stuck = np.argwhere(isolated[:, None] & (data.load_kw > 0))
    if stuck.size:
        n, t = stuck[0]
        more = f" (and {len(stuck) - 1} more)" if len(stuck) > 1 else ""
        raise InfeasibleMarketError(
            f"peer {data.ids[n]!r} cannot be balanced in period {t}: {data.load_kw[n, t]:.6g} kW"
            f" of demand and no allowed link to any seller{more}"
        )


def _solve(model: linopy.Model, options: SolverOptions) -> None:
    try:
        model.solve(solver_name=options.solver, io_api="direct", **options.for_linopy())
    except Exception as exc:  # the solver library's own errors vary by solver
        raise SolverError(f"solver {options.solver!r} failed: {exc}") from exc


def _diagnose(
    s: Scenario, data: PeerData, net: Network, objective: str, options: SolverOptions
) -> str:
    """Solve the elastic model and say which peer and period cannot be balanced, and why."""
    model, layout = build_model(s, data, net, objective, elastic=True)
    _solve(model, options)
    if str(model.termination_condition) != "optimal":
        return f"the market is infeasible (solver status {model.termination_condition})"
    problems: list[str] = []
    for name, why in (
        ("slack-shortfall", "kW of demand that no allowed seller can supply"),
        ("slack-surplus", "kW of generation above what anyone can take (min_kw too high?)"),
    ):
        sol = model.variables[name].solution.to_pandas()
        hits = sol.stack()
        hits = hits[hits > 1e-6]
        for (peer, period), value in hits.sort_index(level=[1, 0]).items():
            problems.append(
                f"peer {peer!r} cannot be balanced in period {period}: {value:.6g} {why}"
            )
    if len(layout.storage):
        sol = model.variables["slack-final-soc"].solution.to_pandas()
        for unit, value in sol[sol > 1e-6].items():
            problems.append(
                f"storage of peer {unit!r} cannot reach its final_soc: {value:.6g} kWh short"
            )
    if not problems:
        return "the market is infeasible (the solver found no balance)"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def _extract(
    s: Scenario,
    data: PeerData,
    net: Network,
    model: linopy.Model,
    layout: Layout,
    design: str,
    objective: str,
) -> ClearingResult:
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
    node_in = np.zeros((len(net.nodes), T))
    node_out = np.zeros((len(net.nodes), T))
    np.add.at(node_in, net.buyer, flow)
    np.add.at(node_out, net.seller, flow)

    duals = {name: model.constraints[name].dual.copy() for name in model.constraints}
    price = duals["peer-balance"].transpose("peer", "period").values / dt
    # A sale is valued at the balance price less the no-resale dual (<= 0), so that on every
    # trade with energy: buyer's price - seller's selling price = the link's cost (CS).
    sell_price = price.copy()
    if "no-resale" in duals:
        resale = duals["no-resale"].transpose("peer", "period")
        rows = data.ids.get_indexer(resale.indexes["peer"])
        sell_price[rows] -= resale.values / dt
    manager_price = (
        duals["manager-balance"].transpose("manager", "period").values / dt
        if "manager-balance" in duals
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
            "price_per_kwh": _rows(price),
            "sell_price_per_kwh": _rows(sell_price),
        }
    )

    link, period = np.nonzero(flow)
    nodes = np.asarray(net.nodes)
    power = flow[link, period]
    fee = net.fee_per_kwh[link, period]
    trades = pd.DataFrame(
        {
            "period": period,
            "seller": nodes[net.seller[link]],
            "buyer": nodes[net.buyer[link]],
            "route": net.route[link],
            "power_kw": power,
            "energy_kwh": power * dt,
            "fee_per_kwh": fee,
            "fee": fee * power * dt,
        }
    ).sort_values(["period", "seller", "buyer"], kind="stable", ignore_index=True)

    node_price = np.concatenate([price, manager_price])
    node_sell_price = np.concatenate([sell_price, manager_price])
    prices = pd.DataFrame(
        {
            "period": np.repeat(np.arange(T), len(nodes)),
            "node": np.tile(nodes, T),
            "kind": np.tile(np.where(np.arange(len(nodes)) < n, "peer", "manager"), T),
            "price_per_kwh": node_price.T.ravel(),
            "sell_price_per_kwh": node_sell_price.T.ravel(),
        }
    )
    return ClearingResult(
        scenario=s,
        design=design,
        objective_kind=objective,
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
    )


def _clean(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Solver noise (|x| below the tolerance, e.g. -1e-13 kWh) reported as exact zeros."""
    return np.where(np.abs(values) < TOLERANCE_KW, 0.0, values)


def _rows(values: Any) -> Any:
    """(peer, period) array -> one value per dispatch row, period-major."""
    return np.asarray(values).T.ravel()


def _plain(values: xr.DataArray) -> xr.DataArray:
    return values.rename(values.name or "dual")
