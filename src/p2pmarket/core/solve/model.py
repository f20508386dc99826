"""The market as a linopy model: one small `define_*` function per family of constraints.

Dimensions: `peer`, `period`, `link` (a directed seller -> buyer trade link), `manager`
(pass-through nodes: community managers or fee hubs, labelled by node position), `storage`
(peers with a battery), `block` (flexible demand blocks), `absorber` (grid peers with a buy
price). Every quantity is a power in kW held over one period
of `period_hours`; energy is power times the period length, and the objective is in the
scenario's currency.

Equation numbers refer to Moreno et al. 2021; the formulation is SPEC section 3.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import linopy
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from p2pmarket.core.designs import Network, PeerData
from p2pmarket.core.feeder.lindistflow import FeederModel, LimitRows, feeder_model
from p2pmarket.core.scenario import Scenario, series
from p2pmarket.types import Objective

__all__ = ["WITHDRAWAL", "WITHDRAWAL_DEFINITION", "Layout", "build_model", "layout_of", "link_cost"]

WITHDRAWAL = "feeder-withdrawal"
WITHDRAWAL_DEFINITION = "feeder-withdrawal-definition"

Term = linopy.LinearExpression | linopy.Variable
Expr = linopy.LinearExpression | int
"""A linear expression, or 0 where a family has no element."""


@dataclass(frozen=True)
class Layout:
    """The coordinates of a built model, used to read its solution back into tables."""

    peers: pd.Index
    periods: pd.Index
    links: pd.Index
    managers: pd.Index
    generators: pd.Index
    storage: pd.Index
    blocks: pd.Index
    block_owner: npt.NDArray[np.str_]
    absorbers: pd.Index
    sellers: pd.Index
    elastic: bool
    cost: linopy.LinearExpression | None = None
    """The objective per period (a period-indexed expression; None in a phase-one model):
    its solution says what each period contributes, e.g. to a rolling horizon's windows."""


def build_model(
    s: Scenario, data: PeerData, net: Network, objective: Objective, elastic: bool = False
) -> tuple[linopy.Model, Layout]:
    """Build the clearing LP of SPEC section 3.

    With `elastic=True` every peer balance gets shortfall and surplus slacks, every final
    state of charge a shortfall slack, and the objective is their sum: a phase-one model that
    locates where an infeasible market cannot be balanced.
    """
    m = linopy.Model(force_dim_names=True)
    layout = layout_of(s, data, net, elastic)
    define_generation(m, data, layout)
    define_trades(m, layout)
    define_storage(m, s, layout)
    define_flexible_demand(m, s, layout)
    define_grid_absorption(m, layout)
    define_peer_balance(m, data, net, layout)
    define_manager_balance(m, net, layout)
    define_no_resale(m, net, layout)
    if s.feeder is not None:
        define_feeder(m, net, layout, feeder_model(s, data), elastic=elastic)
    if elastic:
        slacks = [v.sum() for n, v in m.variables.items() if n.startswith("slack-")]
        m.add_objective(sum(slacks[1:], slacks[0]))
    else:
        layout = replace(layout, cost=define_objective(m, s, data, net, layout, objective))
    return m, layout


def layout_of(s: Scenario, data: PeerData, net: Network, elastic: bool) -> Layout:
    """The families' coordinates of the LP of `s` on `net` (shared with `matrix.py`)."""
    blocks = [(p.id, b) for p in s.peers for b in range(len(p.flexible_load))]
    return Layout(
        peers=data.ids,
        periods=pd.RangeIndex(s.periods, name="period"),
        links=pd.RangeIndex(net.n_links, name="link"),
        managers=pd.RangeIndex(net.n_peers, net.n_nodes, name="manager"),
        generators=data.ids[np.asarray((data.max_kw > 0).any(axis=1))],
        storage=pd.Index([p.id for p in s.peers if p.storage is not None], name="storage"),
        blocks=pd.RangeIndex(len(blocks), name="block"),
        block_owner=np.array([pid for pid, _ in blocks], dtype=str),
        absorbers=pd.Index(
            [p.id for p in s.peers if p.buy_price_per_kwh is not None], name="absorber"
        ),
        sellers=data.ids[np.unique(net.seller[net.seller < net.n_peers])],
        elastic=elastic,
    )


def _on_peers(term: Term, owner: npt.NDArray[Any], dim: str, peers: pd.Index) -> Expr:
    """Sum an expression over `dim` into the peer that owns each element (0 where none)."""
    if term.sizes[dim] == 0:
        return 0
    expr: linopy.LinearExpression = 1 * term
    if pd.Index(owner).is_unique:  # one element per peer: relabel instead of grouping
        expr = expr.assign_coords({dim: np.asarray(owner)})
        if dim != peers.name:
            expr = expr.rename({dim: peers.name})
        return expr.reindex({peers.name: peers}).fillna(0)
    groups = xr.DataArray(owner, coords={dim: expr.indexes[dim]}, name=peers.name)
    summed: linopy.LinearExpression = expr.groupby(groups).sum()
    return summed.reindex({peers.name: peers}).fillna(0)


def _linear(m: linopy.Model, expr: Expr) -> linopy.LinearExpression:
    """`expr` as an expression: the sum of a family with no element (0) is an empty one."""
    if isinstance(expr, linopy.LinearExpression):
        return expr
    return linopy.LinearExpression(None, m)


def define_generation(m: linopy.Model, data: PeerData, layout: Layout) -> None:
    """Generation p[n, t] within its bounds (Eq. 2): Pmin[n, t] <= p[n, t] <= Pmax[n, t], kW.

    Only peers that can generate in some period get a variable.
    """
    rows = data.ids.get_indexer(layout.generators)
    coords = [layout.generators.rename("peer"), layout.periods]
    m.add_variables(
        lower=xr.DataArray(data.min_kw[rows], coords=coords),
        upper=xr.DataArray(data.max_kw[rows], coords=coords),
        name="generation",
    )


def define_trades(m: linopy.Model, layout: Layout) -> None:
    """Trade x[l, t] >= 0 (kW) on each allowed directed link l = (seller -> buyer)."""
    m.add_variables(lower=0, coords=[layout.links, layout.periods], name="trade")


def define_storage(m: linopy.Model, s: Scenario, layout: Layout) -> None:
    """Storage (Eq. 7): charge, discharge in [0, power_kw]; soc in [0, capacity_kwh];

    soc[t] = soc[t-1] + dt * (eta_ch * charge[t] - discharge[t] / eta_dis), kWh,
    soc[-1] = initial_soc * capacity, soc[T-1] >= final_soc * capacity.
    """
    if len(layout.storage) == 0:
        return
    units = {p.id: p.storage for p in s.peers if p.storage is not None}
    st = [units[i] for i in layout.storage]

    def per_unit(values: list[float]) -> xr.DataArray:
        return xr.DataArray(np.asarray(values, dtype=float), coords=[layout.storage])

    power = per_unit([u.power_kw for u in st])
    capacity = per_unit([u.capacity_kwh for u in st])
    coords = [layout.storage, layout.periods]
    charge = m.add_variables(lower=0, upper=power, coords=coords, name="charge")
    discharge = m.add_variables(lower=0, upper=power, coords=coords, name="discharge")
    soc = m.add_variables(lower=0, upper=capacity, coords=coords, name="soc")
    eta_ch = per_unit([u.charge_efficiency for u in st])
    eta_dis = per_unit([u.discharge_efficiency for u in st])
    dt = s.period_hours
    previous = soc.shift(period=1).fillna(0)
    initial = (
        (capacity * per_unit([u.initial_soc for u in st]))
        .expand_dims(period=layout.periods)
        .where(xr.DataArray(layout.periods == 0, coords=[layout.periods]), 0)
    )
    m.add_constraints(
        soc - previous - dt * eta_ch * charge + (dt / eta_dis) * discharge == initial,
        name="storage-balance",
    )
    final = capacity * per_unit([u.final_soc for u in st])
    last = soc.isel(period=-1)
    if layout.elastic:
        slack = m.add_variables(lower=0, coords=[layout.storage], name="slack-final-soc")
        m.add_constraints(last + slack >= final, name="final-soc")
    else:
        m.add_constraints(last >= final, name="final-soc")


def define_flexible_demand(m: linopy.Model, s: Scenario, layout: Layout) -> None:
    """Served flexible demand d[b, t] in [0, max_kw[b, t]] (kW), valued at price_b."""
    if len(layout.blocks) == 0:
        return
    T = s.periods
    upper = np.stack([series(blk.max_kw, T) for p in s.peers for blk in p.flexible_load])
    m.add_variables(
        lower=0,
        upper=xr.DataArray(upper, coords=[layout.blocks, layout.periods]),
        name="flexible-load",
    )


def define_grid_absorption(m: linopy.Model, layout: Layout) -> None:
    """Energy a[g, t] >= 0 (kW) the grid absorbs at its buy price (load side of its balance)."""
    if len(layout.absorbers) == 0:
        return
    m.add_variables(lower=0, coords=[layout.absorbers, layout.periods], name="absorption")


def define_peer_balance(m: linopy.Model, data: PeerData, net: Network, layout: Layout) -> None:
    """Balance of each peer and period (Eq. 8), dual lambda[n, t]:

    p + discharge - charge + sum_m x[m, n] - sum_m x[n, m] = load + sum_b d[b] + a   (kW).
    """
    peers = layout.peers
    names = net.names
    to_peer, from_peer = net.buyer < net.n_peers, net.seller < net.n_peers
    trade = m.variables["trade"]
    inflow = _on_peers(
        trade.sel(link=layout.links[to_peer]), names[net.buyer[to_peer]], "link", peers
    )
    outflow = _on_peers(
        trade.sel(link=layout.links[from_peer]), names[net.seller[from_peer]], "link", peers
    )
    supply = (
        _on_peers(m.variables["generation"], np.asarray(layout.generators), "peer", peers)
        if len(layout.generators)
        else 0
    )
    lhs = inflow - outflow + supply
    if len(layout.storage):
        owners = np.asarray(layout.storage)
        lhs = (
            lhs
            + _on_peers(m.variables["discharge"], owners, "storage", peers)
            - _on_peers(m.variables["charge"], owners, "storage", peers)
        )
    if len(layout.blocks):
        lhs = lhs - _on_peers(m.variables["flexible-load"], layout.block_owner, "block", peers)
    if len(layout.absorbers):
        lhs = lhs - _on_peers(
            m.variables["absorption"], np.asarray(layout.absorbers), "absorber", peers
        )
    if layout.elastic:
        coords = [peers, layout.periods]
        short = m.add_variables(lower=0, coords=coords, name="slack-shortfall")
        surplus = m.add_variables(lower=0, coords=coords, name="slack-surplus")
        lhs = lhs + short - surplus
    load = xr.DataArray(data.load_kw, coords=[peers, layout.periods])
    m.add_constraints(_linear(m, lhs) == load, name="peer-balance")


def define_manager_balance(m: linopy.Model, net: Network, layout: Layout) -> None:
    """A pass-through node (community manager, fee hub) has no generation or load:
    inflow = outflow (kW)."""
    if len(layout.managers) == 0:
        return
    trade = m.variables["trade"]
    managers = layout.managers
    into, out_of = net.buyer >= net.n_peers, net.seller >= net.n_peers
    inflow = _on_peers(trade.sel(link=layout.links[into]), net.buyer[into], "link", managers)
    outflow = _on_peers(trade.sel(link=layout.links[out_of]), net.seller[out_of], "link", managers)
    m.add_constraints(_linear(m, inflow - outflow) == 0, name="manager-balance")


def define_no_resale(m: linopy.Model, net: Network, layout: Layout) -> None:
    """No resale (SPEC section 3): a peer sells at most what it generates or discharges,

    sum_n x[m, n, t] <= p[m, t] + discharge[m, t]   for every peer m with outgoing links.
    """
    if len(layout.sellers) == 0:
        return
    sellers = layout.sellers
    from_peer = net.seller < net.n_peers
    trade = m.variables["trade"].sel(link=layout.links[from_peer])
    names = net.names[net.seller[from_peer]]
    sold = _on_peers(trade, names, "link", sellers)
    own: Expr = 0
    if len(layout.generators):
        own = _on_peers(m.variables["generation"], np.asarray(layout.generators), "peer", sellers)
    if len(layout.storage):
        own = own + _on_peers(
            m.variables["discharge"], np.asarray(layout.storage), "storage", sellers
        )
    m.add_constraints(_linear(m, sold - own) <= 0, name="no-resale")


def define_feeder(
    m: linopy.Model, net: Network, layout: Layout, fm: FeederModel, *, elastic: bool = False
) -> None:
    """The feeder (SPEC C12; LinDistFlow, Baran & Wu 1989 Eqs. 3-5 without losses; the
    rows are built in `p2pmarket.core.feeder.lindistflow`):

    w[n, t] = sum_m x[m, n, t] - sum_m x[n, m, t]     (`feeder-withdrawal-definition`, kW)

    the peer's net purchase, which its balance (Eq. 8) makes its net withdrawal from the
    feeder (the dual of this row is the feeder's part of the peer's price); then each limit
    family, coef @ w[:, t] <= rhs in the periods where a row may bind:
    `feeder-voltage-max` and `feeder-voltage-min` (pu², per bus), `feeder-branch-limit`
    (kVA, per side of a branch's |S| polygon). In an elastic model every limit row gets a
    slack (`slack-feeder-...`), so that a feeder that cannot be respected is named.
    """
    peers = fm.peers
    trade = m.variables["trade"]
    names = net.names
    to_peer, from_peer = net.buyer < net.n_peers, net.seller < net.n_peers
    inflow = _on_peers(
        trade.sel(link=layout.links[to_peer]), names[net.buyer[to_peer]], "link", peers
    )
    outflow = _on_peers(
        trade.sel(link=layout.links[from_peer]), names[net.seller[from_peer]], "link", peers
    )
    w = m.add_variables(coords=[peers, layout.periods], name=WITHDRAWAL)
    m.add_constraints(_linear(m, w - inflow + outflow) == 0, name=WITHDRAWAL_DEFINITION)
    for family in fm.families:
        if len(family.index):
            _define_limit_rows(m, w, family, layout, elastic)


def _define_limit_rows(
    m: linopy.Model, w: linopy.Variable, family: LimitRows, layout: Layout, elastic: bool
) -> None:
    """One family of feeder rows coef @ w <= rhs, masked to the periods where they may bind."""
    coef = xr.DataArray(family.coef, coords=[family.index, w.indexes["peer"]])
    lhs: linopy.LinearExpression = (coef * w).sum("peer")
    rhs = xr.DataArray(family.rhs, coords=[family.index])
    mask = xr.DataArray(family.active, coords=[family.index, layout.periods])
    if elastic:
        # Unmasked: a masked slack would leave absent slots in `lhs` (linopy's semantics
        # warning); where the row is masked out the slack is free of rows and stays 0.
        slack = m.add_variables(
            lower=0, coords=[family.index, layout.periods], name=f"slack-{family.name}"
        )
        lhs = lhs - slack
    m.add_constraints(lhs <= rhs, name=family.name, mask=mask)


def define_objective(
    m: linopy.Model,
    s: Scenario,
    data: PeerData,
    net: Network,
    layout: Layout,
    objective: Objective,
) -> linopy.LinearExpression:
    """Objective (Eq. 1), in the scenario's currency:

    system-cost: sum_t dt * (sum_n offer * p + sum_links fee * x - sum_b price_b * d - buy * a)
    paper:       the same with (offer[seller] + fee) * x on every link (manager offer = 0).

    Returns the objective per period (the sum over t of it is the objective)."""
    dt = s.period_hours
    coords = [layout.links, layout.periods]
    cost_per_kwh = link_cost(data, net, objective)
    terms = [_per_period(dt * xr.DataArray(cost_per_kwh, coords=coords) * m.variables["trade"])]
    if len(layout.generators):
        rows = data.ids.get_indexer(layout.generators)
        offer = xr.DataArray(
            data.offer_per_kwh[rows], coords=[layout.generators.rename("peer"), layout.periods]
        )
        terms.append(_per_period(dt * offer * m.variables["generation"]))
    if len(layout.blocks):
        price = np.stack(
            [series(blk.price_per_kwh, s.periods) for p in s.peers for blk in p.flexible_load]
        )
        value = xr.DataArray(price, coords=[layout.blocks, layout.periods])
        terms.append(_per_period(-dt * value * m.variables["flexible-load"]))
    if len(layout.absorbers):
        buy = np.stack(
            [
                series(p.buy_price_per_kwh, s.periods)
                for p in s.peers
                if p.buy_price_per_kwh is not None
            ]
        )
        value = xr.DataArray(buy, coords=[layout.absorbers, layout.periods])
        terms.append(_per_period(-dt * value * m.variables["absorption"]))
    cost = sum(terms[1:], terms[0])
    m.add_objective(cost.sum())
    return cost


def link_cost(data: PeerData, net: Network, objective: Objective) -> npt.NDArray[np.float64]:
    """The cost of a kW on each link and period (links, periods), per kWh: its fee, and under
    the `paper` objective also the seller's offer (a manager's offer is 0). Shared with the
    array builder (`matrix.py`)."""
    if objective != "paper":
        return net.fee_per_kwh
    seller_offer = np.zeros_like(net.fee_per_kwh)
    from_peer = net.seller < net.n_peers
    seller_offer[from_peer] = data.offer_per_kwh[net.seller[from_peer]]
    return net.fee_per_kwh + seller_offer


def _per_period(expression: linopy.LinearExpression) -> linopy.LinearExpression:
    """`expression` summed over every dimension but the period."""
    return expression.sum(dim=[d for d in expression.dims if d != "period"])
