"""From a finished negotiation to a `ClearingResult` in the form of central clearing.

Dispatch is each agent's own last solution; a trade is the mean of its two copies. Where
the copies still differ, a node's trades no longer add up to what it decided: that
leftover is settled with the grid (a trade with the scenario's grid peer, at no fee, the
grid's generation moved by the net of them) and listed in `AdmmReport.imbalance` — never
hidden. Prices are each agent's own balance multiplier (its lambda), which at agreement are
the central duals. The `AdmmReport` (iterations, residual history, messages, what was not
agreed, the leftover) rides along as `ClearingResult.method_report`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from p2pmarket.core.designs import Network, PeerData
from p2pmarket.core.results import TRADE_COLUMNS, ClearingResult, Timings
from p2pmarket.core.scenario import FloatArray, Scenario, stacked
from p2pmarket.core.solve.admm.local import LocalProblems, VarKind
from p2pmarket.core.solve.admm.protocol import AdmmOptions, LinkState
from p2pmarket.core.solve.admm.records import AgentRecord
from p2pmarket.core.solve.extract import TOLERANCE_KW
from p2pmarket.core.solve.model import link_cost
from p2pmarket.errors import OptionError
from p2pmarket.types import Design, Objective, Route, Status

__all__ = [
    "AdmmReport",
    "History",
    "Negotiation",
    "RhoStats",
    "Solutions",
    "admm_report",
    "assemble",
    "solutions_of",
]


@dataclass
class History:
    """Per iteration: primal and dual residual norms (against the tolerances, so 1 is the
    stopping level), the agents' total cost, trades not yet agreed, the largest copy gap,
    and the links' penalties after the iteration's balancing (smallest, geometric mean,
    largest; currency/kWh per kW)."""

    primal: list[float]
    dual: list[float]
    cost: list[float]
    not_agreed: list[int]
    gap_kwh: list[float]
    rho_min: list[float]
    rho_mean: list[float]
    rho_max: list[float]

    @staticmethod
    def empty() -> History:
        return History([], [], [], [], [], [], [], [])

    def add(
        self,
        primal: float,
        dual: float,
        cost: float,
        not_agreed: int,
        gap_kwh: float,
        rho: RhoStats,
    ) -> None:
        self.primal.append(primal)
        self.dual.append(dual)
        self.cost.append(cost)
        self.not_agreed.append(not_agreed)
        self.gap_kwh.append(gap_kwh)
        self.rho_min.append(rho.low)
        self.rho_mean.append(math.exp(rho.log_sum / rho.count) if rho.count else math.nan)
        self.rho_max.append(rho.high)

    def frozen(self) -> pd.DataFrame:
        """The history as a table, one row per iteration (from 1)."""
        return pd.DataFrame(
            {
                "iteration": np.arange(1, len(self.primal) + 1),
                "primal_residual": self.primal,
                "dual_residual": self.dual,
                "cost": self.cost,
                "not_agreed": self.not_agreed,
                "max_gap_kwh": self.gap_kwh,
                "rho_min": self.rho_min,
                "rho_geomean": self.rho_mean,
                "rho_max": self.rho_max,
            }
        )


@dataclass(frozen=True)
class RhoStats:
    """What a set of links' penalties add up to, so that parts combine exactly: the
    smallest, the largest, the sum of their logarithms and how many there are."""

    low: float
    high: float
    log_sum: float
    count: int

    @staticmethod
    def of(rho: FloatArray) -> RhoStats:
        if not rho.size:
            return RhoStats(math.inf, -math.inf, 0.0, 0)
        return RhoStats(float(rho.min()), float(rho.max()), float(np.log(rho).sum()), int(rho.size))

    @staticmethod
    def combined(parts: list[RhoStats]) -> RhoStats:
        return RhoStats(
            min((p.low for p in parts), default=math.inf),
            max((p.high for p in parts), default=-math.inf),
            math.fsum(p.log_sum for p in parts),
            sum(p.count for p in parts),
        )


@dataclass(frozen=True)
class Solutions:
    """Every agent's last solution, (nodes, periods): its own decisions and multipliers."""

    generation: FloatArray
    charge: FloatArray
    discharge: FloatArray
    soc: FloatArray
    flexible: FloatArray
    absorbed: FloatArray
    flexible_value: FloatArray
    """What the served flexible demand is worth, currency per hour (sum of price x kW)."""
    balance_dual: FloatArray
    resale_dual: FloatArray
    """0 where the agent has no no-resale row."""
    has_resale: np.ndarray


def solutions_of(p: LocalProblems, w: FloatArray) -> Solutions:
    """The agents' decisions and multipliers read out of a batch's solution."""
    A = p.n_agents
    T = p.records[0].periods if A else 1

    def family(kind: int) -> FloatArray:
        out = np.zeros((A, T))
        at = p.kind == kind
        np.add.at(out, (p.owner[at], p.period[at]), w[at])
        return out

    balance = np.stack([p.mu[rows] for rows in p.balance_row]) if A else np.zeros((0, T))
    resale = np.zeros((A, T))
    has = np.zeros(A, dtype=bool)
    for a, rows in enumerate(p.resale_row):
        if rows is not None:
            resale[a] = p.mu[rows]
            has[a] = True
    soc = family(VarKind.SOC)
    for a, r in enumerate(p.records):
        if r.storage is None:
            soc[a] = np.nan
    return Solutions(
        generation=family(VarKind.GENERATION),
        charge=family(VarKind.CHARGE),
        discharge=family(VarKind.DISCHARGE),
        soc=soc,
        flexible=family(VarKind.FLEXIBLE),
        absorbed=family(VarKind.ABSORPTION),
        flexible_value=_flexible_value(p, w, A, T),
        balance_dual=balance,
        resale_dual=resale,
        has_resale=has,
    )


def _flexible_value(p: LocalProblems, w: FloatArray, agents: int, periods: int) -> FloatArray:
    """Each agent's flexible demand valued at its blocks' prices (cost is -dt price)."""
    out = np.zeros((agents, periods))
    at = p.kind == VarKind.FLEXIBLE
    dt = np.array([r.period_hours for r in p.records])[p.owner[at]]
    np.add.at(out, (p.owner[at], p.period[at]), -p.cost[at] * w[at] / dt)
    return out


@dataclass(frozen=True)
class Negotiation:
    """A finished run of the protocol, whichever runner ran it."""

    iterations: int
    converged: bool
    period_hours: float
    state: LinkState
    xs: FloatArray
    xb: FloatArray
    gap_kwh: FloatArray
    price_move: FloatArray
    solutions: Solutions
    history: pd.DataFrame
    messages: int
    message_bytes: int
    control_messages: int
    control_bytes: int
    newton_steps: int
    variables: int
    constraints: int


@dataclass(frozen=True)
class AdmmReport:
    """How the decentralised market got there.

    - `iterations`, `converged` (every trade agreed before the cap), `runner`.
    - `history`: one row per iteration (`History.frozen`); `cost_gap` is added there when
      the central optimum was given.
    - `messages`, `message_bytes`: the copies exchanged between neighbours;
      `control_messages`, `control_bytes`: the agents' statuses to the stopping monitor
      and its answers.
    - `not_agreed`: the trades not agreed at the end (`period, seller, buyer, gap_kwh,
      price_move_per_kwh`), empty when converged.
    - `imbalance`: what each node's trades, taken as the mean of the copies, left
      unbalanced (`period, node, kind, shortfall_kwh`: > 0 short, < 0 surplus), how much of
      a surplus the peer settled itself by generating less (`curtailed_kwh`), and what was
      traded with the grid (`with_grid_kwh`: > 0 bought from it, < 0 sold to it);
      `unsettled_kwh`: what not even the grid could take.
    - `rho_final`: each link's last penalty; `newton_steps`: local Newton steps in all.
    """

    iterations: int
    converged: bool
    runner: str
    history: pd.DataFrame = field(repr=False)
    messages: int
    message_bytes: int
    control_messages: int
    control_bytes: int
    not_agreed: pd.DataFrame = field(repr=False)
    imbalance: pd.DataFrame = field(repr=False)
    unsettled_kwh: float
    rho_final: FloatArray = field(repr=False)
    newton_steps: int
    options: AdmmOptions

    @property
    def imbalance_kwh(self) -> float:
        """The leftover settled with the grid, kWh in all (absolute)."""
        return float(self.imbalance["shortfall_kwh"].abs().sum())


def admm_report(result: ClearingResult) -> AdmmReport:
    """The `AdmmReport` of a result cleared by ADMM (`OptionError` for any other)."""
    report = result.method_report
    if not isinstance(report, AdmmReport):
        raise OptionError("method", f"the result was cleared by {result.method!r}, not by ADMM")
    return report


def assemble(
    s: Scenario,
    data: PeerData,
    net: Network,
    records: tuple[AgentRecord, ...],
    outcome: Negotiation,
    design: Design,
    objective: Objective,
    options: AdmmOptions,
    runner: str,
    central_objective: float | None = None,
) -> ClearingResult:
    """The negotiation as a `ClearingResult` (module docstring)."""
    T, dt, n = s.periods, s.period_hours, net.n_peers
    sol = outcome.solutions
    flow = 0.5 * (outcome.xs + outcome.xb)
    flow = np.where(flow > TOLERANCE_KW, flow, 0.0)
    node_in = np.zeros((net.n_nodes, T))
    node_out = np.zeros((net.n_nodes, T))
    np.add.at(node_in, net.buyer, flow)
    np.add.at(node_out, net.seller, flow)
    own_in = np.zeros((net.n_nodes, T))
    own_out = np.zeros((net.n_nodes, T))
    np.add.at(own_in, net.buyer, outcome.xb)
    np.add.at(own_out, net.seller, outcome.xs)
    # What the node decided to receive, less what the mean trades give it.
    shortfall = (own_in - own_out) - (node_in - node_out)
    shortfall = np.where(np.abs(shortfall) > TOLERANCE_KW, shortfall, 0.0)
    generation, absorbed = sol.generation.copy(), sol.absorbed.copy()
    grid, extra, curtailed, unsettled = _settle_with_grid(s, data, shortfall, generation, absorbed)
    trades = _trade_table(net, flow, dt, extra, grid)
    imports = node_in + np.maximum(extra, 0.0)
    exports = node_out + np.maximum(-extra, 0.0)
    if grid >= 0:
        imports[grid] += np.maximum(-extra, 0.0).sum(axis=0)
        exports[grid] += np.maximum(extra, 0.0).sum(axis=0)
    price = sol.balance_dual / dt
    sell_price = np.where(sol.has_resale[:, None], (sol.balance_dual - sol.resale_dual) / dt, price)
    dispatch = _dispatch(
        s, data, sol, generation, absorbed, imports[:n], exports[:n], price[:n], sell_price[:n]
    )
    prices = _prices(net, data, price, sell_price)
    cost_by_period = _cost_by_period(
        data, net, objective, sol, generation, absorbed, flow, extra, s, dt
    )
    report = AdmmReport(
        iterations=outcome.iterations,
        converged=outcome.converged,
        runner=runner,
        history=_with_gap(outcome.history, central_objective),
        messages=outcome.messages,
        message_bytes=outcome.message_bytes,
        control_messages=outcome.control_messages,
        control_bytes=outcome.control_bytes,
        not_agreed=_not_agreed(net, outcome, options),
        imbalance=_imbalance_table(net, shortfall, curtailed, dt),
        unsettled_kwh=unsettled,
        rho_final=outcome.state.rho.copy(),
        newton_steps=outcome.newton_steps,
        options=options,
    )
    status = Status.OPTIMAL if outcome.converged else Status.TIME_LIMIT
    termination = (
        f"agreed after {outcome.iterations} iterations"
        if outcome.converged
        else f"iteration limit: {len(report.not_agreed)} trades not agreed after "
        f"{outcome.iterations} iterations"
    )
    return ClearingResult(
        scenario=s,
        design=Design(design),
        objective_kind=Objective(objective),
        status=status,
        termination=termination,
        objective=float(cost_by_period.sum()),
        dispatch=dispatch,
        trades=trades,
        prices=prices,
        duals=_duals(net, data, sol),
        n_variables=outcome.variables,
        n_constraints=outcome.constraints,
        timings=Timings(build_seconds=0.0, solve_seconds=0.0),
        model=net.model,
        method="admm",
        objective_by_period=cost_by_period,
        method_report=report,
    )


def _settle_with_grid(
    s: Scenario,
    data: PeerData,
    shortfall: FloatArray,
    generation: FloatArray,
    absorbed: FloatArray,
) -> tuple[int, FloatArray, FloatArray, float]:
    """Settle each node's leftover: a peer left with a surplus first generates less (its own
        decision, within its bounds); what remains is traded with the first grid peer, whose
        generation (then absorption, at its buy price or for nothing) moves by the net. Returns
    (the grid's node, what the grid
        delivers to each node (nodes, periods; < 0: takes from it), kW each peer curtailed,
        kWh nobody could take); without a grid peer only the curtailment settles anything."""
    n = data.load_kw.shape[0]
    rest = shortfall.copy()
    room = np.maximum(generation[:n] - data.min_kw, 0.0)
    curtailed = np.minimum(np.maximum(-rest[:n], 0.0), room)
    generation[:n] -= curtailed
    rest[:n] += curtailed
    extra = np.zeros_like(rest)
    grids = np.flatnonzero(data.role == "grid")
    if grids.size == 0:
        return -1, extra, curtailed, float(np.abs(rest).sum() * s.period_hours)
    g = int(grids[0])
    extra[:] = rest
    extra[g] = 0.0
    wanted = generation[g] + rest.sum(axis=0)  # the grid's own leftover included
    generation[g] = np.clip(wanted, data.min_kw[g], data.max_kw[g])
    left = wanted - generation[g]
    # A surplus below the grid's minimum is absorbed, at its buy price or, without one,
    # for nothing (a grid can always take a few Wh; it is listed, not valued).
    take = np.maximum(-left, 0.0)
    absorbed[g] += take
    left = left + take
    return g, extra, curtailed, float(np.abs(left).sum() * s.period_hours)


def _trade_table(
    net: Network, flow: FloatArray, dt: float, extra: FloatArray, grid_node: int
) -> pd.DataFrame:
    """Trades on the links, then the grid settlements (route p2p, no fee)."""
    link, period = np.nonzero(flow)
    seller, buyer = net.seller[link], net.buyer[link]
    power = flow[link, period]
    fee_per_kwh = net.fee_per_kwh[link, period]
    route = net.route[link].astype(str)
    node, p_extra = np.nonzero(extra)
    amount = extra[node, p_extra]
    if node.size:
        seller = np.concatenate([seller, np.where(amount > 0, grid_node, node)])
        buyer = np.concatenate([buyer, np.where(amount > 0, node, grid_node)])
        period = np.concatenate([period, p_extra])
        power = np.concatenate([power, np.abs(amount)])
        fee_per_kwh = np.concatenate([fee_per_kwh, np.zeros(node.size)])
        route = np.concatenate([route, np.full(node.size, str(Route.P2P))])
    trades = pd.DataFrame(
        {
            "period": period.astype(np.int64),
            "seller": net.names[seller],
            "seller_kind": net.node_kind[seller].astype(str),
            "buyer": net.names[buyer],
            "buyer_kind": net.node_kind[buyer].astype(str),
            "route": route,
            "power_kw": power,
            "energy_kwh": power * dt,
            "fee_per_kwh": fee_per_kwh,
            "fee": fee_per_kwh * power * dt,
        }
    )
    trades = trades.groupby(
        ["period", "seller", "seller_kind", "buyer", "buyer_kind", "route"], as_index=False
    ).agg(power_kw=("power_kw", "sum"), energy_kwh=("energy_kwh", "sum"), fee=("fee", "sum"))
    energy = trades["energy_kwh"].to_numpy()
    trades["fee_per_kwh"] = trades["fee"].to_numpy() / np.where(energy > 0, energy, 1.0)
    return trades[list(TRADE_COLUMNS)].sort_values(
        ["period", "seller", "buyer"], kind="stable", ignore_index=True
    )


def _dispatch(
    s: Scenario,
    data: PeerData,
    sol: Solutions,
    generation: FloatArray,
    absorbed: FloatArray,
    imports: FloatArray,
    exports: FloatArray,
    price: FloatArray,
    sell_price: FloatArray,
) -> pd.DataFrame:
    """One row per period and peer, in the columns of central clearing."""
    n, T = data.load_kw.shape
    net_import = imports - exports
    role = np.where(net_import > 1e-6, "buyer", np.where(net_import < -1e-6, "seller", "neutral"))
    owner = s.community_of()

    def rows(values: FloatArray | np.ndarray) -> np.ndarray:
        return np.asarray(values).T.ravel()

    def clean(values: FloatArray) -> FloatArray:
        return np.where(np.abs(values) < TOLERANCE_KW, 0.0, values)

    return pd.DataFrame(
        {
            "period": np.repeat(np.arange(T), n),
            "peer": np.tile(np.asarray(data.ids), T),
            "community": np.tile(np.array([owner[i] for i in data.ids], dtype=object), T),
            "declared_role": np.tile(data.role, T),
            "role": rows(role),
            "generation_kw": rows(clean(generation[:n])),
            "load_kw": rows(data.load_kw),
            "flexible_load_kw": rows(clean(sol.flexible[:n])),
            "absorbed_kw": rows(clean(absorbed[:n])),
            "charge_kw": rows(clean(sol.charge[:n])),
            "discharge_kw": rows(clean(sol.discharge[:n])),
            "soc_kwh": rows(sol.soc[:n]),
            "import_kw": rows(imports),
            "export_kw": rows(exports),
            "net_import_kw": rows(net_import),
            "price_per_kwh": rows(np.where(data.can_buy[:, None], price, np.nan)),
            "sell_price_per_kwh": rows(sell_price),
        }
    )


def _prices(
    net: Network, data: PeerData, price: FloatArray, sell_price: FloatArray
) -> pd.DataFrame:
    """One row per node and period; ADMM gives one point per price, so each interval is that
    point."""
    T = price.shape[1]
    n = net.n_peers
    buying = price.copy()
    buying[:n] = np.where(data.can_buy[:, None], price[:n], np.nan)
    flat_buy, flat_sell = buying.T.ravel(), sell_price.T.ravel()
    return pd.DataFrame(
        {
            "period": np.repeat(np.arange(T), net.n_nodes),
            "node": np.tile(net.names, T),
            "kind": np.tile(net.node_kind.astype(str), T),
            "price_per_kwh": flat_buy,
            "sell_price_per_kwh": flat_sell,
            "price_low_per_kwh": flat_buy,
            "price_high_per_kwh": flat_buy,
            "sell_price_low_per_kwh": flat_sell,
            "sell_price_high_per_kwh": flat_sell,
        }
    )


def _cost_by_period(
    data: PeerData,
    net: Network,
    objective: Objective,
    sol: Solutions,
    generation: FloatArray,
    absorbed: FloatArray,
    flow: FloatArray,
    extra: FloatArray,
    s: Scenario,
    dt: float,
) -> FloatArray:
    """The objective of SPEC section 3 per period, on the dispatch and trades reported (the
    grid settlements at no fee; under `paper` at the grid's offer, as any sale)."""
    n = net.n_peers
    buy = stacked([p.buy_price_per_kwh for p in s.peers], s.periods)
    cost = (data.offer_per_kwh * generation[:n]).sum(axis=0)
    cost = cost + (link_cost(data, net, objective) * flow).sum(axis=0)
    cost = cost - (buy * absorbed[:n]).sum(axis=0) - sol.flexible_value.sum(axis=0)
    grids = np.flatnonzero(data.role == "grid")
    if objective == Objective.PAPER and grids.size:
        cost = cost + data.offer_per_kwh[grids[0]] * np.maximum(extra, 0.0).sum(axis=0)
    return np.asarray(cost * dt, dtype=float)


def _with_gap(history: pd.DataFrame, central: float | None) -> pd.DataFrame:
    """The history with the relative cost gap to the central optimum, when it is known."""
    if central is None:
        return history
    gap = (history["cost"] - central).abs() / max(abs(central), 1e-12)
    return history.assign(cost_gap=gap)


def _not_agreed(net: Network, outcome: Negotiation, options: AdmmOptions) -> pd.DataFrame:
    """The trades (link, period) not agreed at the end."""
    link, period = np.nonzero(outcome.state.agreed_for < options.agreed_after)
    gap = np.abs(outcome.xs - outcome.xb)[link, period] * outcome.period_hours
    return pd.DataFrame(
        {
            "period": period.astype(np.int64),
            "seller": net.names[net.seller[link]],
            "buyer": net.names[net.buyer[link]],
            "gap_kwh": gap,
            "price_per_kwh": outcome.state.price[link, period],
        }
    )


def _imbalance_table(
    net: Network, shortfall: FloatArray, curtailed: FloatArray, dt: float
) -> pd.DataFrame:
    """Each node's leftover per period (kWh; > 0 short, < 0 surplus), what the peer settled
    itself by generating less, and what the grid settled."""
    node, period = np.nonzero(shortfall)
    own = np.zeros_like(shortfall)
    own[: curtailed.shape[0]] = curtailed
    return pd.DataFrame(
        {
            "period": period.astype(np.int64),
            "node": net.names[node],
            "kind": net.node_kind[node].astype(str),
            "shortfall_kwh": shortfall[node, period] * dt,
            "curtailed_kwh": own[node, period] * dt,
            "with_grid_kwh": (shortfall + own)[node, period] * dt,
        }
    )


def _duals(net: Network, data: PeerData, sol: Solutions) -> dict[str, xr.DataArray]:
    """The agents' multipliers in the layout of central clearing's duals (currency per kW
    of the row over one period): `peer-balance`, `no-resale`, `manager-balance`."""
    T = sol.balance_dual.shape[1]
    periods = pd.RangeIndex(T, name="period")
    n = net.n_peers
    out = {
        "peer-balance": xr.DataArray(sol.balance_dual[:n], coords=[data.ids, periods], name="dual"),
        "no-resale": xr.DataArray(
            np.where(sol.has_resale[:n, None], sol.resale_dual[:n], np.nan),
            coords=[data.ids, periods],
            name="dual",
        ),
    }
    if net.n_nodes > n:
        managers = pd.RangeIndex(n, net.n_nodes, name="manager")
        out["manager-balance"] = xr.DataArray(
            sol.balance_dual[n:], coords=[managers, periods], name="dual"
        )
    return out
