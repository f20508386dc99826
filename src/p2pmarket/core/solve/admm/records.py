"""What each agent of the decentralised market knows: its own record, and nothing else.

An agent is a node of the design's trade network (`p2pmarket.core.designs`): a peer, or a
community manager (designs `community` and `hybrid`). Its `AgentRecord` holds only its own
data — load, generation bounds and offers, storage, flexible demand, the grid's buy price —
and the public side of its trades: the id of each link it sells or buys on, the agent at the
other end (to address messages), and, for its sales, the cost of a kWh on that link (the
fee, which is a public tariff, plus under the `paper` objective its own offer). No record
holds another agent's costs or limits; the ADMM protocol (`protocol`) passes only trade
quantities between the two ends of a link.

The seller bears a link's cost: it is the one party that knows every part of it (its own
offer and the public fee), so no agent needs another's offer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from p2pmarket.core.designs import Network, PeerData
from p2pmarket.core.scenario import FloatArray, Scenario, series
from p2pmarket.core.solve.model import link_cost
from p2pmarket.types import NodeKind, Objective

__all__ = ["AgentRecord", "StorageRecord", "agent_records"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class StorageRecord:
    """An agent's battery: `capacity_kwh`, `power_kw`, efficiencies, and the state of charge
    it starts from and must end at or above (kWh)."""

    capacity_kwh: float
    power_kw: float
    charge_efficiency: float
    discharge_efficiency: float
    initial_kwh: float
    final_kwh: float


@dataclass(frozen=True, eq=False)
class AgentRecord:
    """One agent's own data (arrays of one value per period, kW or currency/kWh).

    `node`: the agent's position in the network (its address); `sells` / `buys`: ids of the
    links it sells / buys on (global link numbers, public), `sell_to` / `buy_from`: the
    agent at the other end of each; `sell_cost_per_kwh` (sales, periods): what a kWh sold on
    each link costs the seller. `offer_per_kwh` is None for an agent that cannot generate,
    `buy_price_per_kwh` None unless the agent (a grid) absorbs energy at a price.
    `resale_rule`: whether the no-resale rule binds the agent (peers; not managers).
    """

    node: int
    name: str
    kind: NodeKind
    period_hours: float
    load_kw: FloatArray
    min_kw: FloatArray | None
    max_kw: FloatArray | None
    offer_per_kwh: FloatArray | None
    storage: StorageRecord | None
    flexible_max_kw: FloatArray
    """(blocks, periods)."""
    flexible_price_per_kwh: FloatArray
    """(blocks, periods)."""
    buy_price_per_kwh: FloatArray | None
    sells: IntArray
    sell_to: IntArray
    sell_cost_per_kwh: FloatArray
    buys: IntArray
    buy_from: IntArray
    resale_rule: bool

    @property
    def periods(self) -> int:
        return int(self.load_kw.size)

    @property
    def neighbours(self) -> tuple[int, ...]:
        """The agents it exchanges messages with, in increasing order."""
        return tuple(sorted({*self.sell_to.tolist(), *self.buy_from.tolist()}))


def agent_records(
    s: Scenario, data: PeerData, net: Network, objective: Objective
) -> tuple[AgentRecord, ...]:
    """Split the market into one record per node of `net` (peers, then managers), each with
    that node's own data only. This is where the scenario is handed out, one record to each
    agent; the protocol never looks at the scenario again."""
    T = s.periods
    cost = link_cost(data, net, objective)
    records = []
    for node in range(net.n_nodes):
        sells = np.flatnonzero(net.seller == node).astype(np.int64)
        buys = np.flatnonzero(net.buyer == node).astype(np.int64)
        common = {
            "node": node,
            "name": str(net.names[node]),
            "kind": NodeKind(net.node_kind[node]),
            "period_hours": s.period_hours,
            "sells": sells,
            "sell_to": net.buyer[sells].astype(np.int64),
            "sell_cost_per_kwh": np.ascontiguousarray(cost[sells], dtype=float).reshape(-1, T),
            "buys": buys,
            "buy_from": net.seller[buys].astype(np.int64),
        }
        if node < net.n_peers:
            records.append(_peer_record(s, data, node, common))
        else:
            records.append(
                AgentRecord(
                    load_kw=np.zeros(T),
                    min_kw=None,
                    max_kw=None,
                    offer_per_kwh=None,
                    storage=None,
                    flexible_max_kw=np.zeros((0, T)),
                    flexible_price_per_kwh=np.zeros((0, T)),
                    buy_price_per_kwh=None,
                    resale_rule=False,
                    **common,  # type: ignore[arg-type]
                )
            )
    return tuple(records)


def _peer_record(s: Scenario, data: PeerData, n: int, common: dict[str, object]) -> AgentRecord:
    """The record of peer `n`: its own rows of the scenario."""
    T = s.periods
    peer = s.peers[n]
    can_generate = bool((data.max_kw[n] > 0).any())
    storage = None
    if peer.storage is not None:
        u = peer.storage
        storage = StorageRecord(
            capacity_kwh=u.capacity_kwh,
            power_kw=u.power_kw,
            charge_efficiency=u.charge_efficiency,
            discharge_efficiency=u.discharge_efficiency,
            initial_kwh=u.initial_soc * u.capacity_kwh,
            final_kwh=u.final_soc * u.capacity_kwh,
        )
    blocks = peer.flexible_load
    return AgentRecord(
        load_kw=data.load_kw[n].astype(float).copy(),
        min_kw=data.min_kw[n].astype(float).copy() if can_generate else None,
        max_kw=data.max_kw[n].astype(float).copy() if can_generate else None,
        offer_per_kwh=data.offer_per_kwh[n].astype(float).copy() if can_generate else None,
        storage=storage,
        flexible_max_kw=np.array([series(b.max_kw, T) for b in blocks]).reshape(-1, T),
        flexible_price_per_kwh=np.array([series(b.price_per_kwh, T) for b in blocks]).reshape(
            -1, T
        ),
        buy_price_per_kwh=(
            None if peer.buy_price_per_kwh is None else series(peer.buy_price_per_kwh, T)
        ),
        resale_rule=common["sells"].size > 0,  # type: ignore[attr-defined]
        **common,  # type: ignore[arg-type]
    )
