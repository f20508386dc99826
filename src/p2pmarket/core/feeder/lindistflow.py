"""LinDistFlow: the feeder's voltages and branch flows as linear functions of what the peers
draw, and the limit rows the market LP gets from them (docs/feeder.md).

Baran & Wu (1989), "Network reconfiguration in distribution systems for loss reduction and
load balancing", IEEE Trans. Power Delivery 4(2), Eqs. (3)-(5) with the losses dropped (their
linearised "DistFlow"), for a radial feeder rooted at the upstream grid:

    P_l = sum_{n below l} w_n,   Q_l = sum_{n below l} tan(phi_n) * w_n           (kW, kvar)
    u_b = u_0 - sum_{l on the way to b} 2 * (r_l * P_l + x_l * Q_l)               (u = V², pu²)

w_n (kW) is peer n's net withdrawal from the feeder, which the peer's balance makes its net
purchase in the market (imports less exports); tan(phi_n) follows its power factor. With the
path matrix (`topology.Topology.path`) both are matrix products:

    P = D' w,  u = u_0 - C w,   C = 2 * path * (diag(r) + diag(x) * T) * D'   (D = path at the
    peers' buses, T = the peers' tan(phi)).

The limits, each a row `a' w <= b` per period:

- voltage, `feeder-voltage-max`: -C_b w <= vmax² - u_0, and `feeder-voltage-min`:
  C_b w <= u_0 - vmin², at every bus on the way from the root to a peer (a bus no peer is
  below has the voltage of the last such bus on its way: the model carries no other load);
- branch, `feeder-branch-limit`: |S_l| <= S_max,l. Where every peer below the branch has the
  same power factor, Q_l = tan(phi) * P_l and |S_l| = sqrt(1 + tan²) * |P_l|: two exact rows.
  Otherwise a regular polygon of `POLYGON_SIDES` sides inscribed in the circle (its rows
  cos(theta) P + sin(theta) Q <= S_max * cos(pi / sides): conservative by at most
  1 - cos(pi / sides), 3.4 % with 12 sides).

A row that cannot bind in a period whatever the market does (the bounds of every peer's
withdrawal, `withdrawal_bounds`, keep it slack) is masked out of that period: a feeder that
cannot bind adds no limit row, and its market is the unconstrained one. The families' rows
themselves depend on the feeder alone, not on the periods, so that the windows of a horizon
have the same rows and their duals line up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.designs import PeerData
from p2pmarket.core.feeder.topology import Topology, topology
from p2pmarket.core.scenario import Scenario, series
from p2pmarket.core.scenario.feeder import FeederSection

__all__ = [
    "POLYGON_SIDES",
    "FeederModel",
    "LimitRows",
    "branch_flows",
    "bus_voltages",
    "feeder_model",
    "linear_flow",
    "withdrawal_bounds",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

POLYGON_SIDES = 12
"""Sides of the polygon that stands for |S| <= S_max on a branch with mixed power factors."""
_SLACK = 1e-9
"""A row whose largest possible value stays this far (relative) below its bound is left out."""
_UNBOUNDED_KW = 1e15


@dataclass(frozen=True)
class LimitRows:
    """One family of limit rows `coef @ w <= rhs`, in each period where `active`.

    `coef` (rows, peers) multiplies the attached peers' withdrawals (kW); `rhs` (rows,);
    `active` (rows, periods): the row may bind in that period; `bus`/`branch`: the bus or
    branch each row limits (positions in the topology); `index`: the rows' labels."""

    name: str
    index: pd.Index
    coef: FloatArray
    rhs: FloatArray
    active: BoolArray
    bus: IntArray
    branch: IntArray

    @property
    def any_active(self) -> bool:
        return bool(self.active.any())


@dataclass(frozen=True)
class FeederModel:
    """A scenario's feeder compiled for the LP: topology, the attached peers and the limit
    rows (module docstring)."""

    section: FeederSection
    topology: Topology
    peers: pd.Index
    """The attached peers (every peer but the grid), in scenario order."""
    bus: IntArray
    """Each attached peer's bus (position)."""
    tan_phi: FloatArray
    u0: float
    """Squared voltage at the root (pu²)."""
    voltage_coef: FloatArray
    """C of the module docstring for every bus: u = u0 - voltage_coef @ w, (buses, peers)."""
    voltage_max: LimitRows
    voltage_min: LimitRows
    branch_limit: LimitRows

    @property
    def families(self) -> tuple[LimitRows, ...]:
        return (self.voltage_max, self.voltage_min, self.branch_limit)


def feeder_model(s: Scenario, data: PeerData) -> FeederModel:
    """Compile the scenario's feeder (which must be set) into LinDistFlow rows."""
    section = s.feeder
    if section is None:
        raise ValueError("the scenario has no feeder")  # callers check s.feeder first
    topo = topology(section.network)
    where = {a.peer: a for a in section.peers}
    peers = pd.Index([p.id for p in s.peers if p.id in where], name="peer")
    bus = topo.bus_positions([where[p].bus for p in peers])
    tan_phi = np.array([math.tan(math.acos(where[p].power_factor)) for p in peers])
    below = np.asarray(topo.path[bus].todense(), dtype=float).T  # (branches, peers): D'
    coef = 2 * (
        topo.path @ (topo.r_per_kw[:, None] * below + topo.x_per_kw[:, None] * below * tan_phi)
    )
    coef = np.asarray(coef, dtype=float)
    u0 = section.network.slack_vm_pu**2
    low, high = withdrawal_bounds(s, data, peers)
    on_path = np.flatnonzero(np.asarray(topo.path[bus].sum(axis=0)).ravel() > 0)
    watched = np.unique(np.concatenate([topo.child[on_path], bus]))
    watched = watched[watched != topo.root]
    buses = topo.buses[watched]
    vmax = _family(
        "feeder-voltage-max",
        pd.Index(buses, name="bus"),
        -coef[watched],
        np.full(watched.size, section.vmax_pu**2 - u0),
        low,
        high,
        bus=watched,
        branch=np.full(watched.size, -1),
    )
    vmin = _family(
        "feeder-voltage-min",
        pd.Index(buses, name="bus"),
        coef[watched],
        np.full(watched.size, u0 - section.vmin_pu**2),
        low,
        high,
        bus=watched,
        branch=np.full(watched.size, -1),
    )
    return FeederModel(
        section=section,
        topology=topo,
        peers=peers,
        bus=bus,
        tan_phi=tan_phi,
        u0=u0,
        voltage_coef=coef,
        voltage_max=vmax,
        voltage_min=vmin,
        branch_limit=_branch_rows(topo, below, tan_phi, section, low, high),
    )


def withdrawal_bounds(
    s: Scenario, data: PeerData, peers: pd.Index
) -> tuple[FloatArray, FloatArray]:
    """Bounds (peers, periods) of each peer's net withdrawal w = load + flexible demand +
    charge + absorption - generation - discharge (kW), whatever the market does: the box the
    screening of rows is done over (absorption has no upper bound: +inf)."""
    T = s.periods
    rows = data.ids.get_indexer(peers)
    by_id = {p.id: p for p in s.peers}
    flexible = np.zeros((len(peers), T))
    power = np.zeros((len(peers), 1))
    absorbs = np.zeros((len(peers), 1), dtype=bool)
    for i, pid in enumerate(peers):
        p = by_id[pid]
        for block in p.flexible_load:
            flexible[i] += series(block.max_kw, T)
        if p.storage is not None:
            power[i] = p.storage.power_kw
        absorbs[i] = p.buy_price_per_kwh is not None
    load = data.load_kw[rows]
    low = load - data.max_kw[rows] - power
    high = np.where(absorbs, np.inf, load + flexible + power)
    return low, high


def _family(
    name: str,
    index: pd.Index,
    coef: FloatArray,
    rhs: FloatArray,
    low: FloatArray,
    high: FloatArray,
    *,
    bus: IntArray,
    branch: IntArray,
) -> LimitRows:
    """A family of rows with the periods in which each may bind (module docstring)."""
    # The row's largest value over the box low <= w <= high: positive coefficients at the
    # top, negative ones at the bottom (an unbounded withdrawal stands as a huge one).
    top = np.where(np.isfinite(high), high, _UNBOUNDED_KW)
    most = np.maximum(coef, 0.0) @ top + np.minimum(coef, 0.0) @ low  # (rows, periods)
    active = most > rhs[:, None] - _SLACK * np.maximum(np.abs(rhs[:, None]), 1.0)
    return LimitRows(
        name=name, index=index, coef=coef, rhs=rhs, active=active, bus=bus, branch=branch
    )


def _branch_rows(
    topo: Topology,
    below: FloatArray,
    tan_phi: FloatArray,
    section: FeederSection,
    low: FloatArray,
    high: FloatArray,
) -> LimitRows:
    """The rows of |S_l| <= S_max on every rated branch that carries some peer's power."""
    rating = topo.rating_kva * section.max_loading_percent / 100
    coefs: list[FloatArray] = []
    rhs: list[float] = []
    branch: list[int] = []
    uniform_angle = np.arange(2) * math.pi
    polygon = 2 * math.pi * np.arange(POLYGON_SIDES) / POLYGON_SIDES
    for lb in np.flatnonzero(np.isfinite(rating) & (below.sum(axis=1) > 0)):
        under = below[lb] > 0
        tans = np.unique(tan_phi[under])
        if tans.size == 1:  # one power factor below: |S| = sqrt(1 + tan²) |P|, exactly
            phi = math.atan(float(tans[0]))
            angles, bound = uniform_angle + phi, float(rating[lb])
        else:
            angles, bound = polygon, float(rating[lb]) * math.cos(math.pi / POLYGON_SIDES)
        for theta in angles:
            coefs.append(below[lb] * (math.cos(theta) + math.sin(theta) * tan_phi))
            rhs.append(bound)
            branch.append(int(lb))
    k = len(rhs)
    return _family(
        "feeder-branch-limit",
        pd.RangeIndex(k, name="limit"),
        np.array(coefs).reshape(k, below.shape[1]),
        np.array(rhs, dtype=float),
        low,
        high,
        bus=np.full(k, -1),
        branch=np.array(branch, dtype=np.int64),
    )


def linear_flow(
    topo: Topology, u0: float, p_kw: FloatArray, q_kvar: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """LinDistFlow for what is drawn at each bus, p_kw and q_kvar (buses, periods): the
    voltage magnitude at every bus (pu) and the active and reactive flow on every branch
    (kW, kvar). The same model as `bus_voltages` and `branch_flows`, written per bus (for a
    feeder's reference loads, which belong to no peer)."""
    p = np.asarray(topo.path.T @ p_kw, dtype=float)
    q = np.asarray(topo.path.T @ q_kvar, dtype=float)
    drop = 2 * (topo.r_per_kw[:, None] * p + topo.x_per_kw[:, None] * q)
    u = u0 - np.asarray(topo.path @ drop, dtype=float)
    return np.sqrt(np.maximum(u, 0.0)), p, q


def bus_voltages(model: FeederModel, withdrawal_kw: FloatArray) -> FloatArray:
    """LinDistFlow's voltage magnitude (pu) at every bus, (buses, periods), for the attached
    peers' withdrawals (peers, periods): sqrt(u0 - C w)."""
    u = model.u0 - model.voltage_coef @ withdrawal_kw
    return np.asarray(np.sqrt(np.maximum(u, 0.0)), dtype=float)


def branch_flows(model: FeederModel, withdrawal_kw: FloatArray) -> tuple[FloatArray, FloatArray]:
    """LinDistFlow's active and reactive flow (kW, kvar) on every branch, (branches, periods),
    positive from the root's side to the far side."""
    below = np.asarray(model.topology.path[model.bus].todense(), dtype=float).T
    p = below @ withdrawal_kw
    q = below @ (model.tan_phi[:, None] * withdrawal_kw)
    return p, q
