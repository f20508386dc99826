"""One agent of the ADMM market on its own: its record, its links, and messages.

`Agent(record, options)` is all a peer (or a community manager) runs: it solves its own
subproblem (`local.LocalProblems` on its record alone), sends each neighbour its copies of
the trades they share, and, with the neighbours' copies in hand, reconciles each of its
links exactly as the other end does (`protocol.reconcile`). It holds no other agent's data;
what it learns of the others is their copies of shared trades. The message-passing runner
(`p2pmarket.runners.admm_processes`) runs each agent in a process of its own; the
vectorised in-process method (`method.ADMM`) does the same arithmetic for every agent at
once, and gives the same iterates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p2pmarket.core.scenario import FloatArray
from p2pmarket.core.solve.admm.local import LocalProblems
from p2pmarket.core.solve.admm.protocol import (
    AdmmOptions,
    LinkState,
    LinkUpdate,
    initial_links,
    reconcile,
)
from p2pmarket.core.solve.admm.records import AgentRecord
from p2pmarket.core.solve.admm.result import RhoStats

__all__ = ["Agent", "Copies", "Last", "Status", "message_bytes"]


@dataclass(frozen=True)
class Copies:
    """A message: the sender's copies of the trades it shares with the receiver, one row per
    link (`links`: global link ids), (links, periods), kW."""

    sender: int
    links: np.ndarray
    copies: FloatArray


@dataclass(frozen=True)
class Status:
    """What an agent tells the stopping monitor after an iteration: whether all its links
    are agreed, and its share of the residuals and of the cost (links counted by the
    seller, so that every link is counted once)."""

    agent: int
    agreed: bool
    primal_sq: float
    dual_sq: float
    cost: float
    not_agreed: int
    max_gap_kwh: float
    rho: RhoStats
    """Of the links it sells on."""


def message_bytes(n_links: int, periods: int) -> int:
    """Bytes of a copies message on the wire: a link id (8 bytes) and `periods` float64
    values per link, and 16 bytes of header (sender, count)."""
    return 16 + n_links * (8 + 8 * periods)


STATUS_BYTES = 81
"""Bytes of a `Status` on the wire: the agent's id (8), the agreed flag (1), the two
squared residuals, the cost, the count not agreed and the largest gap (8 each), and the
four rho statistics (8 each). The monitor's one-byte answer is counted separately."""


@dataclass(frozen=True)
class Last:
    """Both copies of the agent's links at its last reconciliation, and their gaps."""

    xs: FloatArray
    xb: FloatArray
    gap_kwh: FloatArray
    price_move: FloatArray


class Agent:
    """An agent of the protocol, built from its own record only."""

    def __init__(self, record: AgentRecord, options: AdmmOptions) -> None:
        self.record = record
        self.options = options
        self.problems = LocalProblems([record])
        T = record.periods
        self.links = np.concatenate([record.sells, record.buys])
        self.n_sells = int(record.sells.size)
        self.state: LinkState = initial_links(self.links.size, T, options)
        self.w = np.clip(np.zeros(self.problems.lo.size), self.problems.lo, self.problems.hi)
        self.iteration = 0
        empty = np.zeros((self.links.size, T))
        self.last = Last(empty, empty, np.zeros(self.links.size), np.zeros(self.links.size))
        trade = np.concatenate(
            [self.problems.sell_at[0].ravel(), self.problems.buy_at[0].ravel()]
        ).astype(np.int64)
        self.trade_vars = trade
        self.local_vars = np.setdiff1d(np.arange(self.w.size), trade)
        # Which of its links each neighbour shares, in the order the agent keeps them.
        other = np.concatenate([record.sell_to, record.buy_from])
        self.shared = {int(n): np.flatnonzero(other == n) for n in record.neighbours}

    def solve(self) -> dict[int, Copies]:
        """Solve the agent's own subproblem against its targets; the messages to send."""
        self.iteration += 1
        dt = self.record.period_hours
        seller_target, buyer_target = self.state.targets()
        ns = self.n_sells
        target = self.w.copy()
        target[self.problems.sell_at[0]] = seller_target[:ns]
        target[self.problems.buy_at[0]] = buyer_target[ns:]
        q = np.full(self.w.size, self.options.proximal * dt)
        rho = self.state.rho
        q[self.problems.sell_at[0]] = (rho[:ns] * dt)[:, None]
        q[self.problems.buy_at[0]] = (rho[ns:] * dt)[:, None]
        g = self.problems.cost - q * target
        self.w = self.problems.solve(q, g)
        mine = self.own_copies()
        return {
            n: Copies(self.record.node, self.links[at], mine[at]) for n, at in self.shared.items()
        }

    def own_copies(self) -> FloatArray:
        """The agent's copies of its trades, sales then purchases, (links, periods)."""
        return np.concatenate(
            [self.w[self.problems.sell_at[0]], self.w[self.problems.buy_at[0]]]
        ).reshape(self.links.size, self.record.periods)

    def receive(self, messages: dict[int, Copies]) -> Status:
        """Reconcile every link with the neighbours' copies; tell the monitor how it stands."""
        mine = self.own_copies()
        theirs = np.empty_like(mine)
        for n, at in self.shared.items():
            message = messages[n]
            order = {int(link): k for k, link in enumerate(message.links)}
            theirs[at] = message.copies[[order[int(link)] for link in self.links[at]]]
        ns = self.n_sells
        xs = np.concatenate([mine[:ns], theirs[ns:]])
        xb = np.concatenate([theirs[:ns], mine[ns:]])
        update = reconcile(
            self.state, xs, xb, self.iteration, self.record.period_hours, self.options
        )
        self.state = update.state
        self.last = Last(xs=xs, xb=xb, gap_kwh=update.gap_kwh, price_move=update.price_move)
        return self._status(update)

    def _status(self, update: LinkUpdate) -> Status:
        ns = self.n_sells
        agreed = update.state.agreed_for >= self.options.agreed_after
        cost = float(self.problems.cost @ self.w)
        return Status(
            agent=self.record.node,
            agreed=bool(agreed.all()),
            primal_sq=float((update.primal[:ns] ** 2).sum()),
            dual_sq=float((update.dual[:ns] ** 2).sum()),
            cost=cost,
            not_agreed=int((~agreed[:ns]).sum()),
            max_gap_kwh=float(update.gap_kwh[:ns].max(initial=0.0)),
            rho=RhoStats.of(update.state.rho[:ns]),
        )
