"""Independent reference formulation of the p2pmarket clearing LP.

This module is written from SPEC section 3 (and the scenario format of section 5) only,
without reading or importing the ``p2pmarket`` package. It exists to cross-check the main,
vectorised (linopy) implementation: the same scenario is cleared here by a plain, deliberately
unvectorised assembly of numpy / ``scipy.sparse`` matrices solved with
``scipy.optimize.linprog(method="highs")``, and the two results are compared.

Scope and conventions (decided for the cross-check; see SPEC C1, C2, section 3):

* ``scenario`` is a dict in the scenario-file format of SPEC section 5, with every time series
  given inline as a scalar or a list of ``periods`` values (CSV references are not supported).
* Variables per period t: generation ``p[n,t]`` in ``[min_kw, max_kw]`` (fixed to 0 for peers
  without ``generation``), trade ``x >= 0`` on each directed link, storage charge / discharge in
  ``[0, power_kw]`` and state of charge in ``[0, capacity_kwh]``, served flexible block
  ``d in [0, max_kw]``, and grid absorption ``a >= 0`` for grid peers with a buy price.
* Balance of node n in period t: ``p + dis - ch + inflow - outflow = load + sum(d) + a``
  (manager nodes: ``inflow = outflow``).
* No resale for every peer m (not manager nodes): ``outflow[m,t] <= p[m,t] + dis[m,t]``.
* Storage: ``soc[t] = soc[t-1] + dt * (eta_ch * ch[t] - dis[t] / eta_dis)`` with
  ``soc[-1] = initial_soc * capacity`` and ``soc[last] >= final_soc * capacity``.
* Designs ``p2p``, ``community`` and ``hybrid`` (union of both link sets; parallel links between
  the same two nodes are kept as separate variables, each with its own fee).
* Objectives ``system-cost`` and ``paper`` (the latter adds the seller's offer to every trade;
  the offer of a manager node, or of a peer without generation, is 0).

A peer listed in no community forms a community of its own. Such an implicit community has no
id, so no ``community_fees`` entry can ever apply to it (entries name listed communities only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

__all__ = ["ReferenceSolution", "ReferenceTrade", "solve_reference"]

DESIGNS = ("p2p", "community", "hybrid")
OBJECTIVES = ("system-cost", "paper")


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceTrade:
    """Energy on one directed link in one period.

    ``seller``/``buyer`` are peer ids, or community ids for community manager nodes.
    ``route`` is ``"p2p"`` for a direct bilateral link and ``"community"`` for a link of the
    community design (member <-> manager, manager <-> manager).
    """

    seller: str
    buyer: str
    period: int
    kw: float
    fee: float
    route: str


@dataclass(frozen=True)
class ReferenceSolution:
    """Outcome of :func:`solve_reference`.

    All per-period lists have length ``periods``; powers are in kW, energies in kWh.
    ``net_import_kw[n][t]`` is the total bought by peer n minus the total it sold
    (sum of inflow trades minus sum of outflow trades), manager nodes excluded.
    When ``status`` is not ``"optimal"``, ``objective`` is NaN and the dicts are empty.
    """

    status: str
    objective: float
    net_import_kw: dict[str, list[float]]
    generation_kw: dict[str, list[float]]
    soc_kwh: dict[str, list[float]]
    # Extra detail, useful for checking balances; not needed for the main comparison.
    charge_kw: dict[str, list[float]] = field(default_factory=dict)
    discharge_kw: dict[str, list[float]] = field(default_factory=dict)
    flexible_kw: dict[str, list[float]] = field(default_factory=dict)
    absorbed_kw: dict[str, list[float]] = field(default_factory=dict)
    trades: tuple[ReferenceTrade, ...] = ()
    message: str = ""


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------


def _series(value: Any, periods: int, what: str) -> list[float]:
    """Expand a scalar or a list of ``periods`` numbers into a list of floats."""
    if isinstance(value, (list, tuple)):
        if len(value) != periods:
            raise ValueError(f"{what}: expected {periods} values, got {len(value)}")
        return [float(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what}: expected a number or a list of numbers, got {value!r}")
    return [float(value)] * periods


def _optional_series(value: Any, periods: int, what: str) -> list[float | None]:
    """Like :func:`_series`, but ``None`` (scalar or per period) stays ``None``."""
    if value is None:
        return [None] * periods
    if isinstance(value, (list, tuple)):
        if len(value) != periods:
            raise ValueError(f"{what}: expected {periods} values, got {len(value)}")
        return [None if v is None else float(v) for v in value]
    return list(_series(value, periods, what))


@dataclass(frozen=True)
class _Peer:
    id: str
    role: str
    load: list[float]
    gen_min: list[float]
    gen_max: list[float]
    offer: list[float]
    export_fee: list[float]
    buy_price: list[float | None]
    storage: Mapping[str, float] | None
    flexible: list[tuple[list[float], list[float]]]  # per block: (max_kw, price) series


@dataclass(frozen=True)
class _Community:
    """A community: listed (``key`` = its id) or implicit for a lone peer (``key`` = None)."""

    key: str | None
    members: tuple[str, ...]
    intra_fee: list[float]
    export_fee: list[float | None]


def _parse_peer(raw: Mapping[str, Any], periods: int) -> _Peer:
    pid = str(raw["id"])
    role = str(raw.get("role", "prosumer"))
    if role not in ("grid", "producer", "prosumer", "consumer"):
        raise ValueError(f"peers[{pid}].role: unknown role {role!r}")
    gen = raw.get("generation")
    if gen is None:
        zero = [0.0] * periods
        gen_min, gen_max, offer = zero, zero, zero
    else:
        gen_min = _series(gen.get("min_kw", 0.0), periods, f"peers[{pid}].generation.min_kw")
        gen_max = _series(gen["max_kw"], periods, f"peers[{pid}].generation.max_kw")
        offer = _series(
            gen.get("offer_per_kwh", 0.0), periods, f"peers[{pid}].generation.offer_per_kwh"
        )
        for t in range(periods):
            if gen_min[t] > gen_max[t]:
                raise ValueError(f"peers[{pid}].generation: min_kw > max_kw in period {t}")
    flexible = [
        (
            _series(block["max_kw"], periods, f"peers[{pid}].flexible_load.max_kw"),
            _series(block["price_per_kwh"], periods, f"peers[{pid}].flexible_load.price"),
        )
        for block in (raw.get("flexible_load") or [])
    ]
    storage = raw.get("storage")
    return _Peer(
        id=pid,
        role=role,
        load=_series(raw.get("load_kw", 0.0), periods, f"peers[{pid}].load_kw"),
        gen_min=gen_min,
        gen_max=gen_max,
        offer=offer,
        export_fee=_series(raw.get("export_fee", 0.0), periods, f"peers[{pid}].export_fee"),
        buy_price=_optional_series(
            raw.get("buy_price_per_kwh"), periods, f"peers[{pid}].buy_price_per_kwh"
        ),
        storage=None if storage is None else {k: float(v) for k, v in storage.items()},
        flexible=flexible,
    )


def _parse_communities(
    scenario: Mapping[str, Any], peers: Sequence[_Peer], periods: int
) -> tuple[list[_Community], dict[str, int]]:
    """Return every community (listed ones first, then one per unlisted peer) and the index
    of each peer's community."""
    peer_ids = {p.id for p in peers}
    communities: list[_Community] = []
    of_peer: dict[str, int] = {}
    for raw in scenario.get("communities") or []:
        cid = str(raw["id"])
        if cid in peer_ids:
            raise ValueError(f"communities[{cid}].id: clashes with a peer id")
        members = tuple(str(m) for m in raw.get("members", []))
        for m in members:
            if m not in peer_ids:
                raise ValueError(f"communities[{cid}].members: unknown peer {m!r}")
            if m in of_peer:
                raise ValueError(f"communities[{cid}].members: peer {m!r} in two communities")
            of_peer[m] = len(communities)
        communities.append(
            _Community(
                key=cid,
                members=members,
                intra_fee=_series(
                    raw.get("intra_fee", 0.0), periods, f"communities[{cid}].intra_fee"
                ),
                export_fee=_optional_series(
                    raw.get("export_fee"), periods, f"communities[{cid}].export_fee"
                ),
            )
        )
    for p in peers:
        if p.id not in of_peer:
            of_peer[p.id] = len(communities)
            communities.append(
                _Community(
                    key=None,
                    members=(p.id,),
                    intra_fee=[0.0] * periods,
                    export_fee=[None] * periods,
                )
            )
    return communities, of_peer


# --------------------------------------------------------------------------------------------
# LP assembly helpers
# --------------------------------------------------------------------------------------------


class _Columns:
    """Registry of LP columns: cost, lower and upper bound of each variable."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lower: list[float] = []
        self.upper: list[float | None] = []

    def add(self, cost: float, lower: float = 0.0, upper: float | None = None) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        return len(self.cost) - 1


class _Rows:
    """Sparse constraint rows ``sum(coef * x[col]) (== or <=) rhs``."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.rhs: list[float] = []

    def add(self, terms: Sequence[tuple[int, float]], rhs: float) -> None:
        r = len(self.rhs)
        for col, coef in terms:
            self.rows.append(r)
            self.cols.append(col)
            self.vals.append(coef)
        self.rhs.append(rhs)

    def matrix(self, n_cols: int) -> sp.csr_matrix | None:
        if not self.rhs:
            return None
        return sp.coo_matrix(
            (self.vals, (self.rows, self.cols)), shape=(len(self.rhs), n_cols)
        ).tocsr()


# A node is a peer or a community manager; tagging keeps the two name spaces apart.
_Node = tuple[str, str]  # ("peer", peer_id) or ("manager", community_id)


@dataclass(frozen=True)
class _Link:
    seller: _Node
    buyer: _Node
    fee: list[float]
    route: str


def _p2p_links(
    scenario: Mapping[str, Any],
    peers: Sequence[_Peer],
    communities: Sequence[_Community],
    of_peer: Mapping[str, int],
    uniform: list[float | None],
    periods: int,
) -> list[_Link]:
    """Direct bilateral links with their fees (design ``p2p``)."""
    by_id = {p.id: p for p in peers}
    pair_fee = _pair_fees(scenario, periods)
    allowed = scenario.get("links")
    if allowed is None:
        pairs = [(m.id, n.id) for m in peers for n in peers if m.id != n.id]
    else:
        pairs = []
        for pair in allowed:
            s, b = str(pair[0]), str(pair[1])
            if s not in by_id or b not in by_id or s == b:
                raise ValueError(f"links: invalid pair {pair!r}")
            if (s, b) not in pairs:
                pairs.append((s, b))
    links = []
    for s, b in pairs:
        cs, cb = communities[of_peer[s]], communities[of_peer[b]]
        fees = []
        for t in range(periods):
            u = uniform[t]
            if u is not None:
                fees.append(u)
            elif of_peer[s] == of_peer[b]:
                fees.append(cs.intra_fee[t])
            elif cs.key is not None and cb.key is not None and (cs.key, cb.key) in pair_fee:
                fees.append(pair_fee[(cs.key, cb.key)][t])
            else:
                fees.append(by_id[s].export_fee[t])
        links.append(_Link(("peer", s), ("peer", b), fees, "p2p"))
    return links


def _community_links(
    scenario: Mapping[str, Any],
    peers: Sequence[_Peer],
    communities: Sequence[_Community],
    uniform: list[float | None],
    periods: int,
) -> tuple[list[_Link], list[_Node]]:
    """Links of the ``community`` design and the list of hub (manager-only) nodes."""
    by_id = {p.id: p for p in peers}
    pair_fee = _pair_fees(scenario, periods)
    links: list[_Link] = []
    hubs: list[_Node] = []
    managers: list[tuple[_Node, _Community]] = []
    for com in communities:
        if not com.members:
            continue
        if len(com.members) == 1:
            managers.append((("peer", com.members[0]), com))
            continue
        assert com.key is not None
        hub: _Node = ("manager", com.key)
        hubs.append(hub)
        managers.append((hub, com))
        up: list[float] = []  # member -> manager fee per period
        for t in range(periods):
            u = uniform[t]
            up.append(com.intra_fee[t] if u is None else u)
        for m in com.members:
            links.append(_Link(("peer", m), hub, up, "community"))
            links.append(_Link(hub, ("peer", m), [0.0] * periods, "community"))
    for node_s, com_s in managers:
        for node_b, com_b in managers:
            if node_s == node_b:
                continue
            fees = []
            for t in range(periods):
                u = uniform[t]
                community_export = com_s.export_fee[t]
                if u is not None:
                    fees.append(u)
                elif (
                    com_s.key is not None
                    and com_b.key is not None
                    and (com_s.key, com_b.key) in pair_fee
                ):
                    fees.append(pair_fee[(com_s.key, com_b.key)][t])
                elif community_export is not None:
                    fees.append(community_export)
                elif len(com_s.members) >= 2:
                    fees.append(0.0)
                else:
                    fees.append(by_id[com_s.members[0]].export_fee[t])
            links.append(_Link(node_s, node_b, fees, "community"))
    return links, hubs


def _pair_fees(scenario: Mapping[str, Any], periods: int) -> dict[tuple[str, str], list[float]]:
    fees: dict[tuple[str, str], list[float]] = {}
    for entry in scenario.get("community_fees") or []:
        key = (str(entry["from"]), str(entry["to"]))
        fees[key] = _series(entry["fee"], periods, f"community_fees[{key[0]}->{key[1]}].fee")
    return fees


def _status_name(code: int) -> str:
    return {0: "optimal", 1: "iteration_limit", 2: "infeasible", 3: "unbounded"}.get(code, "error")


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def solve_reference(
    scenario: dict[str, Any],
    design: str | None = None,
    objective: str | None = None,
    storage_penalty: float = 0.0,
) -> ReferenceSolution:
    """Clear ``scenario`` as one LP with scipy/HiGHS and return the reference solution.

    ``design`` and ``objective`` override the scenario's ``design`` / ``objective`` keys
    (defaults ``"p2p"`` and ``"system-cost"``).
    """
    design = design or str(scenario.get("design") or "p2p")
    objective = objective or str(scenario.get("objective") or "system-cost")
    if design not in DESIGNS:
        raise ValueError(f"design: unknown design {design!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: unknown objective {objective!r}")

    periods = int(scenario.get("periods", 1))
    dt = float(scenario.get("period_hours", 1.0))
    peers = [_parse_peer(raw, periods) for raw in scenario["peers"]]
    if len({p.id for p in peers}) != len(peers):
        raise ValueError("peers: duplicate peer id")
    by_id = {p.id: p for p in peers}
    communities, of_peer = _parse_communities(scenario, peers, periods)
    uniform = _optional_series(scenario.get("uniform_fee"), periods, "uniform_fee")

    # ---- links and nodes -------------------------------------------------------------------
    links: list[_Link] = []
    hubs: list[_Node] = []
    if design in ("p2p", "hybrid"):
        links += _p2p_links(scenario, peers, communities, of_peer, uniform, periods)
    if design in ("community", "hybrid"):
        community_links, hubs = _community_links(scenario, peers, communities, uniform, periods)
        links += community_links
    nodes: list[_Node] = [("peer", p.id) for p in peers] + hubs
    inflow: dict[_Node, list[int]] = {node: [] for node in nodes}  # link indices into node
    outflow: dict[_Node, list[int]] = {node: [] for node in nodes}  # link indices out of node
    for k, link in enumerate(links):
        outflow[link.seller].append(k)
        inflow[link.buyer].append(k)

    def seller_offer(node: _Node, t: int) -> float:
        return by_id[node[1]].offer[t] if node[0] == "peer" else 0.0

    # ---- columns ---------------------------------------------------------------------------
    cols = _Columns()
    gen: dict[tuple[str, int], int] = {}
    charge: dict[tuple[str, int], int] = {}
    discharge: dict[tuple[str, int], int] = {}
    soc: dict[tuple[str, int], int] = {}
    flex: dict[tuple[str, int], list[int]] = {}
    absorb: dict[tuple[str, int], int] = {}
    trade: dict[tuple[int, int], int] = {}  # (link index, t) -> column

    for p in peers:
        for t in range(periods):
            gen[p.id, t] = cols.add(dt * p.offer[t], p.gen_min[t], p.gen_max[t])
            if p.storage is not None:
                power = p.storage["power_kw"]
                # An optional tiny cost on storage throughput picks, among optima, one without
                # needless charge and discharge; it is taken out of the reported objective.
                charge[p.id, t] = cols.add(dt * storage_penalty, 0.0, power)
                discharge[p.id, t] = cols.add(dt * storage_penalty, 0.0, power)
                soc[p.id, t] = cols.add(0.0, 0.0, p.storage["capacity_kwh"])
            flex[p.id, t] = [cols.add(-dt * price[t], 0.0, qty[t]) for qty, price in p.flexible]
            buy = p.buy_price[t]
            if p.role == "grid" and buy is not None:
                absorb[p.id, t] = cols.add(-dt * buy, 0.0, None)
    for k, link in enumerate(links):
        for t in range(periods):
            unit = link.fee[t]
            if objective == "paper":
                unit += seller_offer(link.seller, t)
            trade[k, t] = cols.add(dt * unit, 0.0, None)

    # ---- constraints -----------------------------------------------------------------------
    eq, ub = _Rows(), _Rows()
    for t in range(periods):
        for node in nodes:
            # supply side (+) minus demand side (-) = fixed load
            terms = [(trade[k, t], 1.0) for k in inflow[node]]
            terms += [(trade[k, t], -1.0) for k in outflow[node]]
            load = 0.0
            if node[0] == "peer":
                pid = node[1]
                load = by_id[pid].load[t]
                terms.append((gen[pid, t], 1.0))
                if (pid, t) in discharge:
                    terms += [(discharge[pid, t], 1.0), (charge[pid, t], -1.0)]
                terms += [(col, -1.0) for col in flex[pid, t]]
                if (pid, t) in absorb:
                    terms.append((absorb[pid, t], -1.0))
            eq.add(terms, load)

        # no resale: outflow <= generation + discharge, peers only
        for p in peers:
            node = ("peer", p.id)
            out = [(trade[k, t], 1.0) for k in outflow[node]]
            if not out:
                continue
            rhs_terms = [(gen[p.id, t], -1.0)]
            if (p.id, t) in discharge:
                rhs_terms.append((discharge[p.id, t], -1.0))
            ub.add(out + rhs_terms, 0.0)

    for p in peers:
        if p.storage is None:
            continue
        s = p.storage
        cap = s["capacity_kwh"]
        eta_ch, eta_dis = s["charge_efficiency"], s["discharge_efficiency"]
        for t in range(periods):
            # soc[t] - soc[t-1] - dt*eta_ch*ch[t] + dt/eta_dis*dis[t] = 0 (soc[-1] is a constant)
            terms = [
                (soc[p.id, t], 1.0),
                (charge[p.id, t], -dt * eta_ch),
                (discharge[p.id, t], dt / eta_dis),
            ]
            rhs = 0.0
            if t == 0:
                rhs = s.get("initial_soc", 0.0) * cap
            else:
                terms.append((soc[p.id, t - 1], -1.0))
            eq.add(terms, rhs)
        # soc[last] >= final_soc * capacity  <=>  -soc[last] <= -final_soc * capacity
        ub.add([(soc[p.id, periods - 1], -1.0)], -s.get("final_soc", 0.0) * cap)

    # ---- solve -----------------------------------------------------------------------------
    n = len(cols.cost)
    result = linprog(
        c=np.asarray(cols.cost, dtype=float),
        A_ub=ub.matrix(n),
        b_ub=np.asarray(ub.rhs, dtype=float) if ub.rhs else None,
        A_eq=eq.matrix(n),
        b_eq=np.asarray(eq.rhs, dtype=float) if eq.rhs else None,
        bounds=list(zip(cols.lower, cols.upper, strict=True)),
        method="highs",
        # A tie-breaking penalty of 1e-7 is within HiGHS's default dual tolerance (1e-7),
        # where any vertex of the same cost passes as optimal: make it count.
        options={"dual_feasibility_tolerance": 1e-10} if storage_penalty else None,
    )
    status = _status_name(int(result.status))
    if status != "optimal":
        return ReferenceSolution(
            status=status,
            objective=math.nan,
            net_import_kw={},
            generation_kw={},
            soc_kwh={},
            message=str(result.message),
        )

    x = np.asarray(result.x, dtype=float)

    def values(index: Mapping[tuple[str, int], int], pid: str) -> list[float]:
        return [float(x[index[pid, t]]) for t in range(periods)]

    net_import: dict[str, list[float]] = {}
    for p in peers:
        node = ("peer", p.id)
        net_import[p.id] = [
            sum(float(x[trade[k, t]]) for k in inflow[node])
            - sum(float(x[trade[k, t]]) for k in outflow[node])
            for t in range(periods)
        ]

    storage_ids = [p.id for p in peers if p.storage is not None]
    trades = tuple(
        ReferenceTrade(
            seller=link.seller[1],
            buyer=link.buyer[1],
            period=t,
            kw=float(x[trade[k, t]]),
            fee=link.fee[t],
            route=link.route,
        )
        for k, link in enumerate(links)
        for t in range(periods)
    )
    return ReferenceSolution(
        status=status,
        objective=float(result.fun)
        - dt * storage_penalty * sum(float(x[c]) for c in (*charge.values(), *discharge.values())),
        net_import_kw=net_import,
        generation_kw={p.id: values(gen, p.id) for p in peers},
        soc_kwh={pid: values(soc, pid) for pid in storage_ids},
        charge_kw={pid: values(charge, pid) for pid in storage_ids},
        discharge_kw={pid: values(discharge, pid) for pid in storage_ids},
        flexible_kw={
            p.id: [sum(float(x[c]) for c in flex[p.id, t]) for t in range(periods)] for p in peers
        },
        absorbed_kw={
            p.id: [
                float(x[absorb[p.id, t]]) if (p.id, t) in absorb else 0.0 for t in range(periods)
            ]
            for p in peers
            if any((p.id, t) in absorb for t in range(periods))
        },
        trades=trades,
        message=str(result.message),
    )
