"""The clearing LP of SPEC section 3 written as a plain Pyomo model, the way researchers do.

This is the baseline the benchmark suite compares `p2pmarket.clear` against: a
`ConcreteModel` with one trade variable per ordered pair of peers (and per community route)
and period, constraints built by rules that loop over peers and periods in Python, solved by
the same HiGHS through Pyomo's persistent HiGHS interface (`appsi_highs` by default, or the
newer `highs`). It is written from SPEC section 3 and the scenario format of section 5 only
(it reads the validated `Scenario` object and nothing else of p2pmarket), so agreement of the
two objectives is a cross-check as well as a fair race.

Where it is deliberately *not* naive: in- and out-links of each node are precomputed once
(a rule that writes `sum(m.x[k, n, t] for k in m.N if k != n)` costs peers**3), and data
are immutable Params. Where the specification is silent it makes the choices p2pmarket
documents, which change no optimum:

* `links="tradable"` (default): a link m -> n exists only when m can sell (has generation
  or storage) and n can buy (load, flexible demand, storage, or the grid's buy price) -- a
  trade on any other link is forced to zero by the no-resale rule or n's balance.
  `links="all"` keeps every ordered pair of distinct peers, as the most literal model does.
* A peer listed in no community is a community of its own; a community of one member is its
  own manager node under the `community` and `hybrid` designs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyomo.environ as pyo

from p2pmarket import Scenario

__all__ = ["PyomoRun", "build_pyomo_model", "clear_with_pyomo", "solve_pyomo_model"]

MANAGER = "manager:"

Link = tuple[str, str, str]
"""(seller node, buyer node, route): route `p2p` or `community` (parallel links stay apart)."""


def _series(value: Any, periods: int, default: float = 0.0) -> list[float]:
    """A scalar or per-period value (SPEC section 5) as one float per period."""
    if value is None:
        return [default] * periods
    if isinstance(value, list | tuple):
        return [float(v) for v in value]
    return [float(value)] * periods


@dataclass
class _Market:
    """The scenario as plain Python dicts and lists, one entry per peer, node and link."""

    periods: list[int]
    dt: float
    peers: list[str]
    load: dict[str, list[float]]
    gen_min: dict[str, list[float]]
    gen_max: dict[str, list[float]]
    offer: dict[str, list[float]]
    storage: dict[str, Any]
    blocks: dict[tuple[str, int], tuple[list[float], list[float]]]
    buy_price: dict[str, list[float]]
    managers: list[str]
    links: list[Link]
    fee: dict[Link, list[float]]


def _market(s: Scenario, design: str, links: str) -> _Market:
    """Read the scenario peer by peer and lay out the nodes and links of `design`."""
    T = s.periods
    periods = list(range(T))
    peers = [p.id for p in s.peers]
    load = {p.id: _series(p.load_kw, T) for p in s.peers}
    gen_min = {p.id: _series(p.generation.min_kw, T) for p in s.peers if p.generation}
    gen_max = {p.id: _series(p.generation.max_kw, T) for p in s.peers if p.generation}
    offer = {p.id: _series(p.generation and p.generation.offer_per_kwh, T) for p in s.peers}
    export_fee = {p.id: _series(p.export_fee, T) for p in s.peers}
    storage = {p.id: p.storage for p in s.peers if p.storage is not None}
    blocks = {
        (p.id, b): (_series(blk.max_kw, T), _series(blk.price_per_kwh, T))
        for p in s.peers
        for b, blk in enumerate(p.flexible_load)
    }
    buy_price = {
        p.id: _series(p.buy_price_per_kwh, T) for p in s.peers if p.buy_price_per_kwh is not None
    }
    can_sell = {n: max(gen_max.get(n, [0.0])) > 0 or n in storage for n in peers}
    can_buy = {
        p.id: max(load[p.id]) > 0 or bool(p.flexible_load) or p.id in storage or p.id in buy_price
        for p in s.peers
    }
    if links == "all":
        can_sell = can_buy = dict.fromkeys(peers, True)

    # Communities: listed ones, then one of its own for every peer listed nowhere.
    community = {n: n for n in peers}
    members: dict[str, list[str]] = {n: [n] for n in peers}
    intra = {n: [0.0] * T for n in peers}
    community_export: dict[str, list[float] | None] = dict.fromkeys(peers)
    for c in s.communities:
        for n in c.members:
            del members[n], intra[n], community_export[n]
        for n in c.members:
            community[n] = c.id
        members[c.id] = list(c.members)
        intra[c.id] = _series(c.intra_fee, T)
        community_export[c.id] = None if c.export_fee is None else _series(c.export_fee, T)
    contract = {(cf.from_, cf.to): _series(cf.fee, T) for cf in s.community_fees}
    uniform = None if s.uniform_fee is None else _series(s.uniform_fee, T)

    fee: dict[Link, list[float]] = {}
    if design in ("p2p", "hybrid"):
        if s.links is None:
            pairs = [(m, n) for m in peers for n in peers]
        else:
            pairs = list(dict.fromkeys((m, n) for m, n in s.links))
        for m, n in pairs:
            if m == n or not (can_sell[m] and can_buy[n]):
                continue
            cm, cn = community[m], community[n]
            if uniform is not None:
                f = uniform
            elif cm == cn:
                f = intra[cm]
            elif (cm, cn) in contract:
                f = contract[(cm, cn)]
            else:
                f = export_fee[m]
            fee[(m, n, "p2p")] = f

    managers: list[str] = []
    if design in ("community", "hybrid"):
        node: dict[str, str] = {}  # community -> the node that acts as its manager
        for c, ms in members.items():
            if len(ms) == 1:
                node[c] = ms[0]
                continue
            node[c] = MANAGER + c
            managers.append(node[c])
            for n in ms:
                if can_sell[n]:
                    fee[(n, node[c], "community")] = intra[c] if uniform is None else uniform
                if can_buy[n]:
                    fee[(node[c], n, "community")] = [0.0] * T
        for a in members:
            for b in members:
                if a == b:
                    continue
                if len(members[a]) == 1 and not can_sell[node[a]]:
                    continue
                if len(members[b]) == 1 and not can_buy[node[b]]:
                    continue
                if uniform is not None:
                    f = uniform
                elif (a, b) in contract:
                    f = contract[(a, b)]
                elif community_export[a] is not None:
                    f = community_export[a]  # type: ignore[assignment]
                elif len(members[a]) == 1:
                    f = export_fee[node[a]]
                else:
                    f = [0.0] * T
                fee[(node[a], node[b], "community")] = f

    return _Market(
        periods=periods,
        dt=s.period_hours,
        peers=peers,
        load=load,
        gen_min=gen_min,
        gen_max=gen_max,
        offer=offer,
        storage=storage,
        blocks=blocks,
        buy_price=buy_price,
        managers=managers,
        links=list(fee),
        fee=fee,
    )


def build_pyomo_model(
    s: Scenario, design: str = "p2p", objective: str = "system-cost", links: str = "tradable"
) -> pyo.ConcreteModel:
    """The clearing LP of SPEC section 3 as a Pyomo `ConcreteModel` (duals imported)."""
    mk = _market(s, design, links)
    peer_set = set(mk.peers)
    outbound: dict[str, list[Link]] = defaultdict(list)
    inbound: dict[str, list[Link]] = defaultdict(list)
    for link in mk.links:
        outbound[link[0]].append(link)
        inbound[link[1]].append(link)
    blocks_of: dict[str, list[int]] = defaultdict(list)
    for n, b in mk.blocks:
        blocks_of[n].append(b)

    m = pyo.ConcreteModel(name=s.name)
    m.T = pyo.Set(initialize=mk.periods, ordered=True)
    m.N = pyo.Set(initialize=mk.peers, ordered=True)
    m.G = pyo.Set(initialize=list(mk.gen_max), ordered=True)
    m.S = pyo.Set(initialize=list(mk.storage), ordered=True)
    m.B = pyo.Set(dimen=2, initialize=list(mk.blocks), ordered=True)
    m.A = pyo.Set(initialize=list(mk.buy_price), ordered=True)
    m.M = pyo.Set(initialize=mk.managers, ordered=True)
    m.L = pyo.Set(dimen=3, initialize=mk.links, ordered=True)

    m.load_kw = pyo.Param(m.N, m.T, initialize=lambda m, n, t: mk.load[n][t])
    m.offer = pyo.Param(m.N, m.T, initialize=lambda m, n, t: mk.offer[n][t])
    m.fee = pyo.Param(m.L, m.T, initialize=lambda m, i, j, r, t: mk.fee[(i, j, r)][t])

    # Variables (SPEC section 3): generation within its bounds (Eq. 2), trades, storage,
    # flexible demand, grid absorption; all in kW over one period.
    m.p = pyo.Var(m.G, m.T, bounds=lambda m, n, t: (mk.gen_min[n][t], mk.gen_max[n][t]))
    m.x = pyo.Var(m.L, m.T, within=pyo.NonNegativeReals)
    m.ch = pyo.Var(m.S, m.T, bounds=lambda m, n, t: (0, mk.storage[n].power_kw))
    m.dis = pyo.Var(m.S, m.T, bounds=lambda m, n, t: (0, mk.storage[n].power_kw))
    m.soc = pyo.Var(m.S, m.T, bounds=lambda m, n, t: (0, mk.storage[n].capacity_kwh))
    m.d = pyo.Var(m.B, m.T, bounds=lambda m, n, b, t: (0, mk.blocks[(n, b)][0][t]))
    m.a = pyo.Var(m.A, m.T, within=pyo.NonNegativeReals)

    def supply(m: Any, n: str, t: int) -> Any:
        """What peer n generates and discharges in period t."""
        own = m.p[n, t] if n in mk.gen_max else 0
        if n in mk.storage:
            own = own + m.dis[n, t]
        return own

    def balance(m: Any, n: str, t: int) -> Any:
        """Eq. 8: p + dis - ch + sum_m x[m,n] - sum_m x[n,m] = load + sum_b d[b] (+ a)."""
        lhs = supply(m, n, t)
        lhs += sum(m.x[link, t] for link in inbound[n])
        lhs -= sum(m.x[link, t] for link in outbound[n])
        if n in mk.storage:
            lhs -= m.ch[n, t]
        rhs = m.load_kw[n, t] + sum(m.d[n, b, t] for b in blocks_of[n])
        if n in mk.buy_price:
            rhs += m.a[n, t]
        if isinstance(lhs, int | float) and isinstance(rhs, int | float):
            if lhs != rhs:  # nothing can serve this load: p2pmarket refuses such markets too
                raise ValueError(f"peer {n!r} cannot be balanced in period {t}")
            return pyo.Constraint.Skip
        return lhs == rhs

    m.balance = pyo.Constraint(m.N, m.T, rule=balance)

    def manager_balance(m: Any, c: str, t: int) -> Any:
        """A manager node has no generation or load: inflow = outflow."""
        return sum(m.x[link, t] for link in inbound[c]) == sum(m.x[link, t] for link in outbound[c])

    m.manager_balance = pyo.Constraint(m.M, m.T, rule=manager_balance)

    def no_resale(m: Any, n: str, t: int) -> Any:
        """A peer sells only what it generates or discharges: sum_k x[n,k,t] <= p + dis."""
        if not outbound[n]:
            return pyo.Constraint.Skip
        return sum(m.x[link, t] for link in outbound[n]) <= supply(m, n, t)

    m.no_resale = pyo.Constraint(m.N, m.T, rule=no_resale)

    def storage_balance(m: Any, n: str, t: int) -> Any:
        """Eq. 7: soc[t] = soc[t-1] + dt * (eta_ch * ch - dis / eta_dis)."""
        st = mk.storage[n]
        before = m.soc[n, t - 1] if t > 0 else st.initial_soc * st.capacity_kwh
        change = st.charge_efficiency * m.ch[n, t] - m.dis[n, t] / st.discharge_efficiency
        return m.soc[n, t] == before + mk.dt * change

    m.storage_balance = pyo.Constraint(m.S, m.T, rule=storage_balance)
    last = mk.periods[-1]
    m.final_soc = pyo.Constraint(
        m.S,
        rule=lambda m, n: m.soc[n, last] >= mk.storage[n].final_soc * mk.storage[n].capacity_kwh,
    )

    def trade_cost(m: Any, i: str, j: str, r: str, t: int) -> Any:
        seller_offer = m.offer[i, t] if objective == "paper" and i in peer_set else 0
        return (seller_offer + m.fee[i, j, r, t]) * m.x[i, j, r, t]

    m.cost = pyo.Objective(
        expr=mk.dt
        * (
            sum(m.offer[n, t] * m.p[n, t] for n in m.G for t in m.T)
            + sum(trade_cost(m, i, j, r, t) for (i, j, r) in m.L for t in m.T)
            - sum(mk.blocks[(n, b)][1][t] * m.d[n, b, t] for (n, b) in m.B for t in m.T)
            - sum(mk.buy_price[n][t] * m.a[n, t] for n in m.A for t in m.T)
        ),
        sense=pyo.minimize,
    )
    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    return m


@dataclass(frozen=True)
class PyomoRun:
    """One Pyomo clearing: objective, size and wall-clock seconds of each step."""

    objective: float
    termination: str
    n_variables: int
    n_constraints: int
    build_seconds: float
    solve_seconds: float
    """The whole `solver.solve(model)` call: hand-over to HiGHS, HiGHS, loading results."""
    solver_seconds: float
    """HiGHS's own run time (`Highs.getRunTime()`)."""
    extract_seconds: float
    """Reading the objective, trades and prices (balance duals) back."""
    trades: pd.DataFrame
    prices: pd.DataFrame


def solve_pyomo_model(
    m: pyo.ConcreteModel, solver: str = "appsi_highs"
) -> tuple[str, float, float]:
    """Solve with Pyomo's HiGHS interface, loading the solution and duals into the model.

    Returns (termination condition, seconds of the `solve` call, HiGHS's own run time).
    """
    opt = pyo.SolverFactory(solver)
    start = time.perf_counter()
    results = opt.solve(m, load_solutions=True)
    solve_seconds = time.perf_counter() - start
    highs = getattr(opt, "_solver_model", None)
    solver_seconds = float(highs.getRunTime()) if highs is not None else float("nan")
    return str(results.solver.termination_condition), solve_seconds, solver_seconds


def _extract(m: pyo.ConcreteModel, dt: float) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    """Objective, trades with energy and every peer's price (balance dual / dt), read back
    the way a researcher does (`pyo.value` evaluates the objective expression in Python)."""
    objective = float(pyo.value(m.cost))
    trades = [
        (t, i, j, r, value)
        for (i, j, r, t), var in m.x.items()
        if (value := var.value or 0.0) > 1e-7
    ]
    prices = [(t, n, m.dual.get(con, float("nan")) / dt) for (n, t), con in m.balance.items()]
    return (
        objective,
        pd.DataFrame(trades, columns=["period", "seller", "buyer", "route", "power_kw"]),
        pd.DataFrame(prices, columns=["period", "peer", "price_per_kwh"]),
    )


def clear_with_pyomo(
    s: Scenario,
    design: str = "p2p",
    objective: str = "system-cost",
    solver: str = "appsi_highs",
    links: str = "tradable",
) -> PyomoRun:
    """Build, solve and read back the market with Pyomo, timing each step."""
    start = time.perf_counter()
    m = build_pyomo_model(s, design, objective, links)
    built = time.perf_counter()
    termination, solve_seconds, solver_seconds = solve_pyomo_model(m, solver)
    solved = time.perf_counter()
    value, trades, prices = _extract(m, s.period_hours)
    extract_seconds = time.perf_counter() - solved
    return PyomoRun(
        objective=value,
        termination=termination,
        n_variables=m.nvariables(),
        n_constraints=m.nconstraints(),
        build_seconds=built - start,
        solve_seconds=solve_seconds,
        solver_seconds=solver_seconds,
        extract_seconds=extract_seconds,
        trades=trades,
        prices=prices,
    )
