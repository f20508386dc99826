"""`ADMM`: the decentralised clearing method (SPEC C9), vectorised in one process.

Every iteration does for all agents at once what each agent does on its own
(`agent.Agent`): solve its subproblem against its targets (`local.LocalProblems`, one
batched solve), then reconcile every link from its two copies (`protocol.reconcile`, one
vectorised update). The loop stops when every trade is agreed (the stopping rule of
`protocol`) or at the iteration cap; the outcome becomes a `ClearingResult` in
`result.assemble`, with the `AdmmReport` attached as `result.method_report`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from p2pmarket.core.designs import design_network, peer_data
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import FloatArray, Scenario
from p2pmarket.core.solve.admm.agent import STATUS_BYTES, message_bytes
from p2pmarket.core.solve.admm.local import LocalProblems
from p2pmarket.core.solve.admm.protocol import (
    AdmmOptions,
    LinkState,
    initial_links,
    reconcile,
)
from p2pmarket.core.solve.admm.records import AgentRecord, agent_records
from p2pmarket.core.solve.admm.result import (
    History,
    Negotiation,
    RhoStats,
    Solutions,
    assemble,
    solutions_of,
)
from p2pmarket.core.solve.lp import refuse_isolated_load
from p2pmarket.core.solve.options import SolverOptions
from p2pmarket.types import Design, Objective

__all__ = ["ADMM", "InProcessNegotiation", "Negotiate", "clear_by_negotiation", "negotiate"]


@dataclass(frozen=True)
class ADMM:
    """Clear a market by edge-consensus ADMM among its agents (the `Clearing` protocol of
    `p2pmarket.core.solve`). `options`: how it negotiates (`AdmmOptions`); `central_objective`:
    the central optimum, when known, to record the cost gap of every iteration (a benchmark's
    business: the agents never see it)."""

    options: AdmmOptions = field(default_factory=AdmmOptions)
    central_objective: float | None = None
    name: str = "admm"

    def clear_window(
        self,
        scenario: Scenario,
        design: Design,
        objective: Objective,
        options: SolverOptions,
        first_period: int = 0,
    ) -> ClearingResult:
        """Negotiate the market of `scenario` to agreement (or the cap) and report it."""
        return clear_by_negotiation(
            scenario, design, objective, first_period, self.options, negotiate,
            runner="in-process", central_objective=self.central_objective, name=self.name,
        )  # fmt: skip


Negotiate = Callable[[tuple[AgentRecord, ...], int, AdmmOptions], Negotiation]
"""Runs the protocol among the agents' records over `n_links` links: `negotiate` here, or
`p2pmarket.runners.admm_processes.negotiate_in_processes`."""


def clear_by_negotiation(
    scenario: Scenario,
    design: Design,
    objective: Objective,
    first_period: int,
    options: AdmmOptions,
    run: Negotiate,
    *,
    runner: str,
    central_objective: float | None,
    name: str,
) -> ClearingResult:
    """One window cleared by ADMM, whichever runner `run` negotiates on: the agents' records
    from the scenario, the negotiation, and its outcome as a `ClearingResult` (`runner`
    names where it ran in the report), with the build, negotiation and assembly timed."""
    start = time.perf_counter()
    data = peer_data(scenario)
    net = design_network(scenario, data, design, objective, False)
    refuse_isolated_load(data, net, first_period)
    records = agent_records(scenario, data, net, objective)
    built = time.perf_counter()
    outcome = run(records, net.n_links, options)
    finished = time.perf_counter()
    result = assemble(
        scenario, data, net, records, outcome, design, objective, options,
        runner=runner, central_objective=central_objective,
    )  # fmt: skip
    timings = dataclasses.replace(
        result.timings,
        build_seconds=built - start,
        solve_seconds=finished - built,
        extract_seconds=time.perf_counter() - finished,
    )
    return dataclasses.replace(result, timings=timings, method=name)


def negotiate(records: tuple[AgentRecord, ...], n_links: int, options: AdmmOptions) -> Negotiation:
    """The vectorised negotiation among `records` (one per node, in node order)."""
    dt = records[0].period_hours if records else 1.0
    return InProcessNegotiation(records, options, n_links, dt).run()


class InProcessNegotiation:
    """All agents' subproblems as one batch, all links as one array: one pass per iteration."""

    def __init__(
        self,
        records: tuple[AgentRecord, ...],
        options: AdmmOptions,
        n_links: int,
        period_hours: float,
    ) -> None:
        self.records = records
        self.options = options
        self.dt = period_hours
        self.problems = LocalProblems(records)
        T = records[0].periods if records else 1
        self.T = T
        self.n_links = n_links
        self.sell_at = np.zeros((n_links, T), dtype=np.int64)
        self.buy_at = np.zeros((n_links, T), dtype=np.int64)
        for a, record in enumerate(records):
            self.sell_at[record.sells] = self.problems.sell_at[a]
            self.buy_at[record.buys] = self.problems.buy_at[a]
        seller_agent = np.zeros(n_links, dtype=np.int64)
        for a, record in enumerate(records):
            seller_agent[record.sells] = a
        self.seller_agent = seller_agent
        self.neighbour_pairs = _neighbour_pairs(records)

    def run(self, on_iteration: object = None) -> Negotiation:
        """Iterate to agreement or the cap; the agents' last solutions and the links."""
        o, dt, p = self.options, self.dt, self.problems
        state: LinkState = initial_links(self.n_links, self.T, o)
        w = np.clip(np.zeros(p.lo.size), p.lo, p.hi)
        history = History.empty()
        xs = xb = np.zeros((self.n_links, self.T))
        gap = move = np.zeros(self.n_links)
        iterations = 0
        for k in range(1, o.max_iterations + 1):
            iterations = k
            seller_target, buyer_target = state.targets()
            target = w.copy()
            target[self.sell_at] = seller_target
            target[self.buy_at] = buyer_target
            q = np.full(w.size, o.proximal * dt)
            q[self.sell_at] = (state.rho * dt)[:, None]
            q[self.buy_at] = (state.rho * dt)[:, None]
            w = p.solve(q, p.cost - q * target)
            xs, xb = w[self.sell_at], w[self.buy_at]
            update = reconcile(state, xs, xb, k, dt, o)
            state = update.state
            gap, move = update.gap_kwh, update.price_move
            agreed = state.agreed_for >= o.agreed_after
            history.add(
                primal=float(np.sqrt((update.primal**2).sum())),
                dual=float(np.sqrt((update.dual**2).sum())),
                cost=float(p.cost @ w),
                not_agreed=int((~agreed).sum()),
                gap_kwh=float(gap.max(initial=0.0)),
                rho=RhoStats.of(state.rho),
            )
            if agreed.all():
                break
        messages, volume = self._messages(iterations)
        return Negotiation(
            iterations=iterations,
            converged=bool((state.agreed_for >= o.agreed_after).all()),
            period_hours=dt,
            state=state,
            xs=xs,
            xb=xb,
            gap_kwh=gap,
            price_move=move,
            solutions=self._solutions(w),
            history=history.frozen(),
            messages=messages,
            message_bytes=volume,
            control_messages=2 * len(self.records) * iterations,
            control_bytes=(STATUS_BYTES + 1) * len(self.records) * iterations,
            newton_steps=p.newton_steps,
            variables=int(p.lo.size),
            constraints=int(p.b.size),
        )

    def _solutions(self, w: FloatArray) -> Solutions:
        return solutions_of(self.problems, w)

    def _messages(self, iterations: int) -> tuple[int, int]:
        """Copies messages over the run: one per ordered pair of neighbours per iteration,
        carrying their shared links (`agent.message_bytes`)."""
        per_iteration = sum(message_bytes(n, self.T) for n in self.neighbour_pairs)
        return len(self.neighbour_pairs) * iterations, per_iteration * iterations


def _neighbour_pairs(records: tuple[AgentRecord, ...]) -> list[int]:
    """For every ordered pair (sender, receiver) of neighbours, the links they share."""
    shared: dict[tuple[int, int], int] = {}
    for r in records:
        for other in np.concatenate([r.sell_to, r.buy_from]).tolist():
            shared[(r.node, int(other))] = shared.get((r.node, int(other)), 0) + 1
    return list(shared.values())
