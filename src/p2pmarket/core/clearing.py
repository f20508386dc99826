"""`clear()`: build the LP, solve it with HiGHS, read the result back into tables.

The linopy model lives only inside `clear()`; the result holds tables, never the model.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import linopy
import numpy as np
import pandas as pd
import xarray as xr

from p2pmarket.core.flows import route_through
from p2pmarket.core.hubs import HUB_PREFIX, build_hub_network, hub_links_estimate, hubs_are_exact
from p2pmarket.core.model import Layout, build_model
from p2pmarket.core.network import Network, PeerData, build_network, peer_data
from p2pmarket.core.options import SolverOptions
from p2pmarket.core.periods import merge_periods, period_slice
from p2pmarket.core.results import ClearingResult, Status, Timings
from p2pmarket.core.scenario import DESIGNS, OBJECTIVES, Scenario
from p2pmarket.errors import InfeasibleMarketError, ScenarioError, SolverError

__all__ = ["SolverOptions", "clear"]

TOLERANCE_KW = 1e-7
"""Flows below this are reported as zero (solver noise)."""


def clear(
    scenario: Scenario,
    design: str | None = None,
    objective: str | None = None,
    options: SolverOptions | None = None,
    reduce: bool | None = None,
) -> ClearingResult:
    """Clear the market of `scenario` over its whole horizon as one linear program — or,
    where no storage couples the periods and the market is large, period by period, which has
    the same optimum (`SolverOptions.split_periods`, `p2pmarket.core.periods`).

    `design` ("p2p", "community", "hybrid") and `objective` ("system-cost", "paper")
    override the scenario's own settings. `reduce`: clear a p2p market with unrestricted
    links through fee hubs, an exact model whose size grows with peers rather than their
    square (`p2pmarket.core.hubs`); None decides by size, True insists, False never.
    Raises `InfeasibleMarketError` naming a peer and period that cannot be balanced, or
    `SolverError` if the solver stops early.
    """
    design = design or scenario.design
    objective = objective or scenario.objective
    if design not in DESIGNS:
        raise ScenarioError("design", f"{design!r} is not one of {', '.join(DESIGNS)}")
    if objective not in OBJECTIVES:
        raise ScenarioError("objective", f"{objective!r} is not one of {', '.join(OBJECTIVES)}")
    options = options or SolverOptions()
    if split_by_period(scenario, options):
        return clear_by_period(scenario, design, objective, options, reduce)
    return clear_whole(scenario, design, objective, options, reduce)


def clear_whole(
    scenario: Scenario,
    design: str,
    objective: str,
    options: SolverOptions,
    reduce: bool | None = None,
    first_period: int = 0,
) -> ClearingResult:
    """Clear every period of `scenario` as one LP (`first_period` numbers its periods in
    messages, for a scenario cut from a longer one)."""
    start = time.perf_counter()
    data = peer_data(scenario)
    net = _network(scenario, data, design, objective, reduce)
    _refuse_isolated_load(data, net, first_period)
    model, layout = build_model(scenario, data, net, objective)
    built = time.perf_counter()
    _solve(model, options)
    solved = time.perf_counter()

    termination = str(model.termination_condition)
    if termination != "optimal":
        if "infeasible" in termination:
            raise InfeasibleMarketError(
                _diagnose(scenario, data, net, objective, options, first_period)
            )
        if "time" in termination:
            raise SolverError(
                f"the solver reached its time limit ({options.time_limit_s} s) before proving "
                "the market's optimum; allow more time or a smaller market"
            )
        raise SolverError(f"the solver stopped with status {termination!r}")
    result = _extract(scenario, data, net, model, layout, design, objective)
    timings = Timings(
        build_seconds=built - start,
        solve_seconds=solved - built,
        solver_seconds=_solver_run_time(model),
        extract_seconds=time.perf_counter() - solved,
    )
    return dataclasses.replace(result, timings=timings)


SPLIT_MIN_LINK_PERIODS = 400_000
"""Without storage, periods are solved one by one by default from this many trade variables
(links x periods): one period's LP is then much faster than the horizon's."""


def split_by_period(scenario: Scenario, options: SolverOptions) -> bool:
    """Whether to solve the periods one by one: never with storage, which couples them."""
    if scenario.periods == 1 or any(p.storage is not None for p in scenario.peers):
        if options.split_periods:
            raise ScenarioError(
                "split_periods", "storage couples the periods: they cannot be solved one by one"
            )
        return False
    if options.split_periods is not None:
        return options.split_periods
    data = peer_data(scenario)
    explicit, hubs = hub_links_estimate(data)
    return min(explicit, hubs) * scenario.periods >= SPLIT_MIN_LINK_PERIODS


def clear_by_period(
    scenario: Scenario,
    design: str,
    objective: str,
    options: SolverOptions,
    reduce: bool | None = None,
) -> ClearingResult:
    """Clear each period on its own (in parallel processes where cores allow) and merge."""
    start = time.perf_counter()
    jobs = [
        (period_slice(scenario, t), design, objective, options, reduce, t)
        for t in range(scenario.periods)
    ]
    workers = min(options.workers or os.cpu_count() or 1, len(jobs))
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            parts = list(pool.map(_clear_job, jobs))
    else:
        parts = [_clear_job(job) for job in jobs]
    return merge_periods(parts, scenario, wall=time.perf_counter() - start)


def _clear_job(
    job: tuple[Scenario, str, str, SolverOptions, bool | None, int],
) -> ClearingResult:
    scenario, design, objective, options, reduce, t = job
    return clear_whole(scenario, design, objective, options, reduce, first_period=t)


def _solver_run_time(model: linopy.Model) -> float:
    """The solver's own run time when it reports one (HiGHS does), else 0."""
    run_time = getattr(getattr(model, "solver_model", None), "getRunTime", None)
    return float(run_time()) if callable(run_time) else 0.0


HUB_MIN_SAVING = 4
"""The hub model is used by default when it has this many times fewer links..."""
HUB_MIN_LINKS = 5_000
"""...and the explicit model at least this many (below, both solve in a blink)."""


def _network(
    s: Scenario, data: PeerData, design: str, objective: str, reduce: bool | None
) -> Network:
    """The explicit links of `design`, or the hub model of a large p2p market."""
    exact = design == "p2p" and hubs_are_exact(s, data, objective)
    if reduce and not exact:
        raise ScenarioError(
            "reduce",
            "the hub model is exact only for the p2p design with unrestricted links "
            "(and non-negative offers under the paper objective)",
        )
    explicit, hubs = hub_links_estimate(data)
    large = explicit >= HUB_MIN_LINKS and explicit >= HUB_MIN_SAVING * hubs
    if exact and (reduce or (reduce is None and large)):
        return build_hub_network(s, data)
    return build_network(s, data, design)


def _refuse_isolated_load(data: PeerData, net: Network, first_period: int = 0) -> None:
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
            f"peer {data.ids[n]!r} cannot be balanced in period {first_period + t}: "
            f"{data.load_kw[n, t]:.6g} kW"
            f" of demand and no allowed link to any seller{more}"
        )


def _solve(model: linopy.Model, options: SolverOptions) -> None:
    try:
        model.solve(solver_name=options.solver, io_api="direct", **options.for_linopy())
    except Exception as exc:  # the solver library's own errors vary by solver
        raise SolverError(f"solver {options.solver!r} failed: {exc}") from exc


def _diagnose(
    s: Scenario,
    data: PeerData,
    net: Network,
    objective: str,
    options: SolverOptions,
    first_period: int = 0,
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
                f"peer {peer!r} cannot be balanced in period {first_period + period}: "
                f"{value:.6g} {why}"
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
    )
    if net.hubs:
        trades = _bilateral_from_hubs(trades, dt)
        nodes = nodes[:n]
    trades = trades.sort_values(["period", "seller", "buyer"], kind="stable", ignore_index=True)
    node_in = np.zeros((len(nodes), T))
    node_out = np.zeros((len(nodes), T))
    index = pd.Index(nodes)
    np.add.at(node_in, (index.get_indexer(trades["buyer"]), trades["period"]), trades["power_kw"])
    np.add.at(node_out, (index.get_indexer(trades["seller"]), trades["period"]), trades["power_kw"])

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
            "price_per_kwh": _rows(price),
            "sell_price_per_kwh": _rows(sell_price),
        }
    )

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
        model="hubs" if net.hubs else "explicit",
    )


def _bilateral_from_hubs(flows: pd.DataFrame, dt: float) -> pd.DataFrame:
    """The hub model's flows as the bilateral trades of the explicit model: decomposed in
    order through the hubs (p2pmarket.core.hubs), self-paths (cost-free) dropped."""
    pairs = route_through(flows, HUB_PREFIX, in_order=True)
    pairs = pairs[pairs["seller"] != pairs["buyer"]]
    energy = pairs["energy_kwh"].to_numpy()
    return pd.DataFrame(
        {
            "period": pairs["period"].to_numpy(),
            "seller": pairs["seller"].to_numpy(),
            "buyer": pairs["buyer"].to_numpy(),
            "route": "p2p",
            "power_kw": energy / dt,
            "energy_kwh": energy,
            "fee_per_kwh": pairs["fee"].to_numpy() / np.where(energy > 0, energy, 1.0),
            "fee": pairs["fee"].to_numpy(),
        }
    )


def _clean(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Solver noise (|x| below the tolerance, e.g. -1e-13 kWh) reported as exact zeros."""
    return np.where(np.abs(values) < TOLERANCE_KW, 0.0, values)


def _rows(values: Any) -> Any:
    """(peer, period) array -> one value per dispatch row, period-major."""
    return np.asarray(values).T.ravel()


def _plain(values: xr.DataArray) -> xr.DataArray:
    return values.rename(values.name or "dual")
