"""From a solved LP to result tables: dispatch, trades, prices and duals.

The solved LP arrives as `Solved` arrays, whichever way it was built and solved: from the
array builder and HiGHS (`highs.py`), or from a linopy model (`from_linopy`, for other
solvers and the elastic model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import linopy
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from p2pmarket.core.designs import Network, PeerData
from p2pmarket.core.designs.hubs import bilateral_from_hubs
from p2pmarket.core.results import ClearingResult, Timings
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve.model import Layout
from p2pmarket.types import Design, NodeKind, Objective, Route, Status

__all__ = ["TOLERANCE_KW", "DefinedPrices", "Solved", "defined_prices", "extract", "from_linopy"]

TOLERANCE_KW = 1e-7
"""Flows below this are reported as zero (solver noise)."""
TOLERANCE_PER_KWH = 1e-9
"""Two prices closer than this are one: a dual interval this narrow is a unique price."""


FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Solved:
    """A solved clearing LP as arrays: min c'x s.t. A x (sense) b, lower <= x <= upper.

    `values`: each column family's solution, (elements, periods) in the `Layout`'s element
    order (absent: the family has no element). `rows`: each row family's position in `a`,
    shaped (elements, periods) or (elements,), -1 where the row was left out (it had no
    entry); `row_index`: the family's elements. `y`: the row duals (HiGHS's sign: the
    reduced costs are c - A'y). `cost_by_period`: the objective per period."""

    values: Mapping[str, FloatArray]
    rows: Mapping[str, IntArray]
    row_index: Mapping[str, pd.Index]
    a: sp.csr_matrix
    b: FloatArray
    sense: npt.NDArray[np.str_]
    c: FloatArray
    lower: FloatArray
    upper: FloatArray
    x: FloatArray
    y: FloatArray
    objective: float
    cost_by_period: FloatArray | None
    termination: str

    def duals(self, periods: pd.Index) -> dict[str, xr.DataArray]:
        """Each row family's duals with its coordinates (NaN where a row was left out)."""
        out = {}
        for name, at in self.rows.items():
            index = self.row_index[name]
            coords = [index, periods] if at.ndim == 2 else [index]
            values = np.where(at >= 0, self.y[np.maximum(at, 0)], np.nan)
            dims = tuple(c.name for c in coords)
            if None in dims:
                out[name] = xr.DataArray(values, coords=coords, name="dual")
            else:  # the same, with the dimensions named: several times faster to build
                by_dim = dict(zip(dims, coords, strict=True))
                out[name] = xr.DataArray(values, dims=dims, coords=by_dim, name="dual")
        return out


def from_linopy(model: linopy.Model, layout: Layout) -> Solved:
    """The arrays of a solved linopy model (its families as `model.py` names them)."""
    mat = model.matrices
    to_row = model.constraints.label_index.label_to_pos
    values = {}
    for name, variable in model.variables.items():
        sol = variable.solution
        dims = [d for d in sol.dims if d != "period"]
        values[name] = np.asarray(sol.transpose(*dims, "period").values, dtype=float)
    rows: dict[str, IntArray] = {}
    row_index: dict[str, pd.Index] = {}
    for name, constraint in model.constraints.items():
        labels = constraint.labels
        dims = [d for d in labels.dims if d != "period"]
        order = (*dims, "period") if "period" in labels.dims else tuple(dims)
        labels = labels.transpose(*order)
        row_index[name] = labels.indexes[dims[0]]
        found = labels.values
        rows[name] = np.where(found >= 0, to_row[np.maximum(found, 0)], -1)
    cost = layout.cost
    return Solved(
        values=values,
        rows=rows,
        row_index=row_index,
        a=mat.A,
        b=mat.b,
        sense=np.asarray(mat.sense),
        c=mat.c,
        lower=mat.lb,
        upper=mat.ub,
        x=mat.sol,
        y=mat.dual.astype(float),
        objective=float(model.objective.value or 0.0),
        cost_by_period=(
            None if cost is None else np.asarray(cost.solution.values, dtype=float).reshape(-1)
        ),
        termination=str(model.termination_condition),
    )


def extract(
    s: Scenario,
    data: PeerData,
    net: Network,
    solved: Solved,
    layout: Layout,
    design: Design,
    objective: Objective,
    *,
    priced: bool = True,
) -> ClearingResult:
    """The solved model as result tables; hub flows become bilateral trades between peers.
    `priced` False: the prices are the solver's duals as found, without the move to the
    defined point of docs/prices.md, and their intervals NaN — for a clearing whose prices
    nobody reads (the no-trading baseline, settled at the tariff).

    Nodes are told apart by position and `NodeKind`, never by name (a peer may be called
    like a community, or `hub:x`)."""
    T = s.periods
    n = len(data.ids)
    dt = s.period_hours

    def per_peer(name: str, owner: pd.Index) -> FloatArray:
        out = np.zeros((n, T))
        if len(owner) and name in solved.values:
            np.add.at(out, data.ids.get_indexer(owner), solved.values[name])
        return _clean(out)

    generation = per_peer("generation", layout.generators)
    charge = per_peer("charge", layout.storage)
    discharge = per_peer("discharge", layout.storage)
    absorbed = per_peer("absorption", layout.absorbers)
    flexible = per_peer("flexible-load", pd.Index(layout.block_owner))
    soc = np.full((n, T), np.nan)
    if len(layout.storage):
        soc[data.ids.get_indexer(layout.storage)] = _clean(solved.values["soc"])

    flow = solved.values["trade"] if len(layout.links) else np.zeros((0, T))
    flow = np.where(flow > TOLERANCE_KW, flow, 0.0)
    link, period = np.nonzero(flow)
    seller, buyer = net.seller[link], net.buyer[link]
    power = flow[link, period]
    fee = net.fee_per_kwh[link, period] * power * dt
    route = net.route[link]
    # Nodes reported: peers and managers (the hub model's hubs are not market participants).
    shown = net.node_kind != NodeKind.HUB
    names, kinds = net.names[shown], net.node_kind[shown]
    if net.hubs:
        # Hub flows become bilateral p2p trades; a hybrid market's manager routes stay.
        via = np.isin(route, [Route.PEER_HUB, Route.HUB_PEER, Route.HUB_HUB])
        p, s_, b, energy, f = bilateral_from_hubs(
            period[via], seller[via], buyer[via], power[via] * dt, fee[via], net.n_peers
        )
        period = np.concatenate([period[~via], p])
        seller = np.concatenate([seller[~via], s_])
        buyer = np.concatenate([buyer[~via], b])
        fee = np.concatenate([fee[~via], f])
        route = np.concatenate([route[~via], np.full(s_.size, str(Route.P2P))])
        power = np.concatenate([power[~via], energy / dt])
    # Rows by period, then seller and buyer by name (the order of their text), ties as found.
    rank = _ranks(names)
    order = np.lexsort((rank[buyer], rank[seller], period))
    period, seller, buyer = period[order], seller[order], buyer[order]
    route, power, fee = np.asarray(route)[order], power[order], fee[order]
    name_text, kind_text = _text(names), _text(kinds.astype(str))
    trades = pd.DataFrame(
        {
            "period": period.astype(np.int64),
            "seller": name_text.take(seller),
            "seller_kind": kind_text.take(seller),
            "buyer": name_text.take(buyer),
            "buyer_kind": kind_text.take(buyer),
            "route": _text(route),
            "power_kw": power,
            "energy_kwh": power * dt,
            "fee_per_kwh": fee / np.where(power > 0, power * dt, 1.0),
            "fee": fee,
        }
    )
    node_in = np.zeros((names.size, T))
    node_out = np.zeros((names.size, T))
    np.add.at(node_in, (buyer, period), power)
    np.add.at(node_out, (seller, period), power)

    duals = solved.duals(layout.periods)
    defined = defined_prices(solved, data, dt) if priced else solver_prices(solved, data, dt)
    price = defined.price
    # A peer that can never buy has no marginal cost of serving it: its balance dual is an
    # arbitrary vertex of the dual polytope, not a price. Report no buying price there.
    can_buy = data.can_buy[:, None]
    buying_price = np.where(can_buy, price, np.nan)
    price_low = np.where(can_buy, defined.price_low, np.nan)
    price_high = np.where(can_buy, defined.price_high, np.nan)
    # A sale is valued at the balance price less the no-resale dual (<= 0), so that on every
    # trade with energy: buyer's price - seller's selling price = the link's cost (CS).
    sell_price = defined.sell_price
    managers = shown[n:]  # the pass-through nodes that are managers (not hubs)
    manager_price = np.zeros((0, T))
    if "manager-balance" in duals:
        balance = duals["manager-balance"].transpose("manager", "period").values
        manager_price = balance[managers] / dt

    imports, exports = node_in[:n], node_out[:n]
    net_import = imports - exports
    role = np.where(net_import > 1e-6, 0, np.where(net_import < -1e-6, 1, 2))
    # Each peer's community (`Scenario.community_of`) from its group: the listed
    # communities are the first groups, a peer listed nowhere is a group of its own.
    community = np.array(data.group_ids, dtype=object)[data.group]
    community[data.group >= len(s.communities)] = None
    periods = np.repeat(np.arange(T), n)
    each = np.tile(np.arange(n), T)  # the peer of each dispatch row
    dispatch = pd.DataFrame(
        {
            "period": periods,
            "peer": name_text.take(each),
            "community": _text_or_none(community, each),
            "declared_role": _text(data.role).take(each),
            "role": _ROLES.take(_rows(role)),
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
    manager_low, manager_high = (
        (defined.manager_low[managers], defined.manager_high[managers])
        if manager_price.size
        else (manager_price, manager_price)
    )
    node_low = np.concatenate([price_low, manager_low])
    node_high = np.concatenate([price_high, manager_high])
    sell_low = np.concatenate([defined.sell_price_low, manager_low])
    sell_high = np.concatenate([defined.sell_price_high, manager_high])
    prices = pd.DataFrame(
        {
            "period": np.repeat(np.arange(T), names.size),
            "node": name_text.take(np.tile(np.arange(names.size), T)),
            "kind": kind_text.take(np.tile(np.arange(names.size), T)),
            "price_per_kwh": node_price.T.ravel(),
            "sell_price_per_kwh": node_sell_price.T.ravel(),
            "price_low_per_kwh": node_low.T.ravel(),
            "price_high_per_kwh": node_high.T.ravel(),
            "sell_price_low_per_kwh": sell_low.T.ravel(),
            "sell_price_high_per_kwh": sell_high.T.ravel(),
        }
    )
    return ClearingResult(
        scenario=s,
        design=Design(design),
        objective_kind=Objective(objective),
        status=Status.OPTIMAL,
        termination=solved.termination,
        objective=solved.objective,
        dispatch=dispatch,
        trades=trades,
        prices=prices,
        duals=duals,
        n_variables=int(solved.a.shape[1]),
        n_constraints=int(solved.a.shape[0]),
        timings=Timings(build_seconds=0.0, solve_seconds=0.0),
        model=net.model,
        objective_by_period=solved.cost_by_period,
    )


_ROLES = pd.array(["buyer", "seller", "neutral"], dtype="str")
"""A peer's role in a period, by its code in `extract`."""


def _text(values: Any) -> Any:
    """Text values as a pandas text array (cells taken from it by position with `.take`,
    with no conversion of each cell)."""
    return pd.array(np.asarray(values, dtype=object), dtype="str")


def _text_or_none(values: npt.NDArray[np.object_], at: IntArray) -> Any:
    """`values` taken at `at` as text, or as objects where one is None (as pandas types a
    column of text and None)."""
    if any(v is None for v in values.tolist()):
        return values[at]
    return _text(values).take(at)


def _ranks(names: npt.NDArray[np.object_]) -> IntArray:
    """Each name's position in the names sorted as text (equal names, equal ranks)."""
    position = {name: i for i, name in enumerate(sorted(set(names.tolist())))}
    return np.fromiter((position[name] for name in names.tolist()), np.int64, names.size)


def _clean(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Solver noise (|x| below the tolerance, e.g. -1e-13 kWh) reported as exact zeros."""
    return np.where(np.abs(values) < TOLERANCE_KW, 0.0, values)


def _rows(values: Any) -> Any:
    """(peer, period) array -> one value per dispatch row, period-major."""
    return np.asarray(values).T.ravel()


@dataclass(frozen=True)
class DefinedPrices:
    """A price for every peer and period (currency/kWh, arrays (peers, periods)) that is one
    optimal dual solution, with the interval each one may move in, the others held where
    they are, and the clearing still optimal (docs/prices.md).

    `price`: the balance dual lambda / dt. `sell_price`: (lambda - nu) / dt, nu the dual of
    the peer's no-resale row (the price itself for a peer with no such row). Where an
    interval is wider than a point, the price is its upper end (the cost of one more kWh at
    the node; for the selling price, the price at which the peer would sell one more kWh),
    its lower end where it has no upper end. `manager_*`: the interval of each manager's
    balance dual / dt (managers, periods); managers keep the solver's dual.
    """

    price: FloatArray
    price_low: FloatArray
    price_high: FloatArray
    sell_price: FloatArray
    sell_price_low: FloatArray
    sell_price_high: FloatArray
    manager_low: FloatArray
    manager_high: FloatArray


def defined_prices(solved: Solved, data: PeerData, dt: float) -> DefinedPrices:
    """The solver's duals moved, where they are not unique, to the defined point of
    docs/prices.md, read from the LP's reduced costs (no re-solve).

    With the other duals fixed, the duals of one peer and period that keep the solution
    optimal form an interval, read from the reduced cost r_j = c_j - A_j' y of every column
    j it touches: r_j = 0 for a column strictly between its bounds, r_j >= 0 at its lower
    bound, <= 0 at its upper one, nothing for a fixed one; and nu <= 0, nu = 0 where the
    no-resale row is slack. Coordinates: the buying price lambda and the selling price
    sigma = lambda - nu. On their own rows every peer's sigma touches only its sales,
    generation and discharge (and the lambda of its buyers), every lambda only its
    purchases, absorption, flexible demand and charge (and the sigma of its sellers), so

    1. every sigma moves to the upper end of its interval, all lambda fixed, then
    2. every lambda moves to the upper end of its interval, all sigma fixed;

    each step moves peers that share no column, so the result is one optimal dual
    solution. A price pinned by a trade with energy stays the solver's: bills under the
    `marginal` rule, which price those trades, do not change.
    """
    a: Any = sp.csc_matrix(solved.a)  # (constraints, variables), column-major as solved
    x, lower, upper, c = solved.x, solved.lower, solved.upper, solved.c
    y = solved.y.astype(float).copy()
    n, T = data.load_kw.shape

    def rows_of(name: str, index: pd.Index) -> IntArray:
        out = np.full((len(index), T), -1, dtype=np.int64)
        if name in solved.rows:
            where = index.get_indexer(solved.row_index[name])
            out[where] = solved.rows[name]
        return out

    balance = rows_of("peer-balance", data.ids)
    resale = rows_of("no-resale", data.ids)
    managers = solved.row_index.get("manager-balance", pd.Index([], dtype=np.int64))
    manager = rows_of("manager-balance", managers)

    fixed = upper - lower <= TOLERANCE_KW
    at_lower = ~fixed & np.isclose(x, lower, rtol=1e-9, atol=TOLERANCE_KW)
    at_upper = ~fixed & np.isclose(x, upper, rtol=1e-9, atol=TOLERANCE_KW)
    status = _Columns(inner=~(fixed | at_lower | at_upper), lower=at_lower, upper=at_upper)
    le = np.asarray(solved.sense) == "<"
    rows = _Rows(le=le, slack=le & (a @ x - solved.b < -TOLERANCE_KW))
    eps = TOLERANCE_PER_KWH * dt

    has_row: npt.NDArray[np.bool_] = resale >= 0
    # 1. sigma = lambda - nu up: nu down (direction -e_nu), lambda held.
    sell = _Directions(rows=resale[has_row], other=None, sign=-1.0)
    lo, hi = _interval(a, c - a.T @ y, status, y, rows, sell)
    step = _pick(lo, hi, eps)
    y[sell.rows] -= step
    # 2. lambda up with sigma held: lambda and nu together (+e_lambda + e_nu).
    buy = _Directions(rows=balance.ravel(), other=resale.ravel(), sign=1.0)
    lo_b, hi_b = _interval(a, c - a.T @ y, status, y, rows, buy)
    step_b = _pick(lo_b, hi_b, eps)
    for moved in (balance.ravel(), resale.ravel()):
        y[moved[moved >= 0]] += step_b[moved >= 0]
    # 3. the interval of every sigma at the final point (each step keeps its own end).
    reduced = c - a.T @ y
    lo_s, hi_s = _interval(a, reduced, status, y, rows, sell)
    lo_m, hi_m = _interval(a, reduced, status, y, rows, _Directions(manager.ravel(), None, 1.0))

    lam = np.where(balance >= 0, y[balance], np.nan) / dt
    price_low = lam + (lo_b - step_b).reshape(n, T) / dt
    price_high = lam + (hi_b - step_b).reshape(n, T) / dt
    sell_price, sell_low, sell_high = lam.copy(), price_low.copy(), price_high.copy()
    sigma = (y[balance] - y[np.maximum(resale, 0)])[has_row] / dt
    sell_price[has_row] = sigma
    sell_low[has_row] = sigma + lo_s / dt
    sell_high[has_row] = sigma + hi_s / dt
    mu = y[manager] / dt if manager.size else np.zeros((0, T))
    return DefinedPrices(
        price=lam,
        price_low=price_low,
        price_high=price_high,
        sell_price=sell_price,
        sell_price_low=sell_low,
        sell_price_high=sell_high,
        manager_low=mu + lo_m.reshape(mu.shape) / dt,
        manager_high=mu + hi_m.reshape(mu.shape) / dt,
    )


def solver_prices(solved: Solved, data: PeerData, dt: float) -> DefinedPrices:
    """The solver's balance and no-resale duals as prices (`DefinedPrices`' fields), not
    moved to the defined point; every interval NaN."""
    n, T = data.load_kw.shape

    def dual(name: str, index: pd.Index) -> FloatArray:
        out = np.full((len(index), T), np.nan)
        if name in solved.rows:
            at = solved.rows[name]
            where = index.get_indexer(solved.row_index[name])
            out[where] = np.where(at >= 0, solved.y[np.maximum(at, 0)], np.nan)
        return out

    lam = dual("peer-balance", data.ids) / dt
    nu = np.nan_to_num(dual("no-resale", data.ids))
    managers = solved.row_index.get("manager-balance", pd.Index([], dtype=np.int64))
    unknown, unknown_m = np.full((n, T), np.nan), np.full((len(managers), T), np.nan)
    return DefinedPrices(
        price=lam,
        price_low=unknown,
        price_high=unknown,
        sell_price=lam - nu / dt,
        sell_price_low=unknown,
        sell_price_high=unknown,
        manager_low=unknown_m,
        manager_high=unknown_m,
    )


@dataclass(frozen=True)
class _Columns:
    """Where each column of the LP sits: strictly inside its bounds, at its lower bound, at
    its upper one (a fixed column is none of them)."""

    inner: npt.NDArray[np.bool_]
    lower: npt.NDArray[np.bool_]
    upper: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class _Rows:
    """Rows of the LP whose dual must stay <= 0 (`le`), and those slack at the solution,
    whose dual must stay 0."""

    le: npt.NDArray[np.bool_]
    slack: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class _Directions:
    """Directions in dual space, one per entry: +sign on row `rows[k]` and, where given and
    >= 0, +sign on row `other[k]`."""

    rows: npt.NDArray[np.int64]
    other: npt.NDArray[np.int64] | None
    sign: float


def _interval(
    a: Any,
    reduced: FloatArray,
    columns: _Columns,
    y: FloatArray,
    rows: _Rows,
    d: _Directions,
) -> tuple[FloatArray, FloatArray]:
    """[lo, hi] of the step t along each direction that keeps every reduced cost of the
    right sign (`defined_prices`), the duals of <= rows <= 0 and those of slack rows at 0.
    Always lo <= 0 <= hi (the solver's point is optimal); +-inf where unbounded."""
    k = d.rows.size
    row, which = d.rows, np.arange(k)
    if d.other is not None:
        both = d.other >= 0
        row = np.concatenate([row, d.other[both]])
        which = np.concatenate([which, np.flatnonzero(both)])
    keep = row >= 0
    row, which = row[keep], which[keep]
    # The reduced costs move by -t * (A' d)_j: the rows of A along d, one per direction
    # (the product of the directions, as a sparse matrix, with A sums each column's entries).
    # As A' D (a column-major A's transpose is row-major, no copy): one entry per touched
    # column and direction.
    along = sp.csc_matrix((np.full(row.size, d.sign), (row, which)), shape=(a.shape[0], k))
    g = (a.T @ along).tocoo()
    touched = np.abs(g.data) > 1e-12
    column, on, coef = g.row[touched], g.col[touched], g.data[touched]
    ratio = reduced[column] / coef
    pinned = columns.inner[column]
    ratio = np.where(pinned, 0.0, ratio)
    caps = pinned | (columns.lower[column] & (coef > 0)) | (columns.upper[column] & (coef < 0))
    floors = pinned | (columns.lower[column] & (coef < 0)) | (columns.upper[column] & (coef > 0))
    hi = np.full(k, np.inf)
    lo = np.full(k, -np.inf)
    np.minimum.at(hi, on[caps], ratio[caps])
    np.maximum.at(lo, on[floors], ratio[floors])
    # A <= row: its dual y + t * sign stays <= 0, and at 0 where the row is slack.
    le = rows.le[row]
    bound = -y[row[le]] / d.sign
    if d.sign > 0:
        np.minimum.at(hi, which[le], bound)
    else:
        np.maximum.at(lo, which[le], bound)
    still = rows.slack[row]
    hi[which[still]] = 0.0
    lo[which[still]] = 0.0
    return np.minimum(lo, 0.0), np.maximum(hi, 0.0)


def _pick(lo: FloatArray, hi: FloatArray, eps: float) -> FloatArray:
    """The step to the defined point: 0 where the interval is a point (a unique dual keeps
    the solver's value), else its upper end, or its lower end where it has no upper one."""
    step = np.where(np.isfinite(hi), hi, np.where(np.isfinite(lo), lo, 0.0))
    return np.where(hi - lo <= eps, 0.0, step)
