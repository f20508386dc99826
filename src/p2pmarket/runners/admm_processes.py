"""The ADMM market with every agent in a process of its own, exchanging only messages.

Each process is handed one `AgentRecord` — its own data — and the queues of its
neighbours; it runs `p2pmarket.core.solve.admm.Agent`: solve its own problem, send each
neighbour its copies of their shared trades, reconcile its links from the copies it
receives, tell the stopping monitor (this process) how it stands, and wait for the word to
go on or stop. Nothing else travels: no process sees another's record. The iterates are
those of the vectorised in-process method (`ADMM`), bit for bit, since each agent does the
same arithmetic on the same numbers (`tests/test_admm_processes.py`).

Processes are started with `spawn`: a script that uses this runner must guard its entry
point with `if __name__ == "__main__":`. It is a demonstration of the protocol, not a fast
path: one process per agent, one round of queue messages per iteration.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve import SolverOptions
from p2pmarket.core.solve.admm import AdmmOptions, Agent, AgentRecord
from p2pmarket.core.solve.admm.agent import STATUS_BYTES, Copies, Status, message_bytes
from p2pmarket.core.solve.admm.method import clear_by_negotiation
from p2pmarket.core.solve.admm.protocol import LinkState
from p2pmarket.core.solve.admm.result import (
    History,
    Negotiation,
    RhoStats,
    Solutions,
    solutions_of,
)
from p2pmarket.errors import SolverError
from p2pmarket.types import Design, Objective

__all__ = ["AdmmProcesses", "negotiate_in_processes"]

TIMEOUT_S = 120.0
"""No message for this long: a process has died; the run is abandoned."""


@dataclass(frozen=True)
class AdmmProcesses:
    """The `ADMM` clearing method run with one process per agent (the `Clearing` protocol)."""

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
        return clear_by_negotiation(
            scenario, design, objective, first_period, self.options, negotiate_in_processes,
            runner="processes", central_objective=self.central_objective, name=self.name,
        )  # fmt: skip


@dataclass(frozen=True)
class _Final:
    """What an agent hands back when told to stop: its own solution and, for the links it
    sells on, both copies and the link state."""

    node: int
    solutions: Solutions
    sells: np.ndarray
    xs: np.ndarray
    xb: np.ndarray
    gap_kwh: np.ndarray
    price_move: np.ndarray
    z: np.ndarray
    u: np.ndarray
    rho: np.ndarray
    price: np.ndarray
    agreed_for: np.ndarray
    newton_steps: int


def _agent_main(
    record: AgentRecord,
    options: AdmmOptions,
    inbox: Any,
    outboxes: dict[int, Any],
    monitor: Any,
    control: Any,
) -> None:
    """The life of one agent's process: its record, its queues, nothing else."""
    agent = Agent(record, options)
    ns = agent.n_sells
    while True:
        for neighbour, message in agent.solve().items():
            outboxes[neighbour].put(message)
        received: dict[int, Copies] = {}
        while len(received) < len(agent.shared):
            message = inbox.get(timeout=TIMEOUT_S)
            received[message.sender] = message
        monitor.put(agent.receive(received))
        if control.get(timeout=TIMEOUT_S) == "stop":
            break
    state, last = agent.state, agent.last
    monitor.put(
        _Final(
            node=record.node,
            solutions=solutions_of(agent.problems, agent.w),
            sells=record.sells,
            xs=last.xs[:ns],
            xb=last.xb[:ns],
            gap_kwh=last.gap_kwh[:ns],
            price_move=last.price_move[:ns],
            z=state.z[:ns],
            u=state.u[:ns],
            rho=state.rho[:ns],
            price=state.price[:ns],
            agreed_for=state.agreed_for[:ns],
            newton_steps=agent.problems.newton_steps,
        )
    )


def negotiate_in_processes(
    records: tuple[AgentRecord, ...], n_links: int, options: AdmmOptions
) -> Negotiation:
    """Run the protocol with one spawned process per agent; this process is the stopping
    monitor (it receives each agent's `Status` and answers go on or stop)."""
    context = multiprocessing.get_context("spawn")
    inboxes = {r.node: context.Queue() for r in records}
    controls = {r.node: context.Queue() for r in records}
    monitor = context.Queue()
    processes = [
        context.Process(
            target=_agent_main,
            args=(
                r,
                options,
                inboxes[r.node],
                {n: inboxes[n] for n in r.neighbours},
                monitor,
                controls[r.node],
            ),
            daemon=True,
        )
        for r in records
    ]
    for process in processes:
        process.start()
    try:
        history, iterations = _monitor(records, options, monitor, controls)
        finals = [monitor.get(timeout=TIMEOUT_S) for _ in records]
    except queue.Empty as exc:
        raise SolverError("an agent's process stopped answering", status="process") from exc
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
    return _gather(records, finals, n_links, options, history, iterations)


def _monitor(
    records: tuple[AgentRecord, ...], options: AdmmOptions, monitor: Any, controls: dict[int, Any]
) -> tuple[History, int]:
    history = History.empty()
    k = 0
    for k in range(1, options.max_iterations + 1):
        statuses: list[Status] = [monitor.get(timeout=TIMEOUT_S) for _ in records]
        history.add(
            primal=float(np.sqrt(sum(s.primal_sq for s in statuses))),
            dual=float(np.sqrt(sum(s.dual_sq for s in statuses))),
            cost=float(sum(s.cost for s in statuses)),
            not_agreed=sum(s.not_agreed for s in statuses),
            gap_kwh=max((s.max_gap_kwh for s in statuses), default=0.0),
            rho=RhoStats.combined([s.rho for s in statuses]),
        )
        stop = all(s.agreed for s in statuses) or k == options.max_iterations
        for control in controls.values():
            control.put("stop" if stop else "go")
        if stop:
            break
    return history, k


def _gather(
    records: tuple[AgentRecord, ...],
    finals: list[_Final],
    n_links: int,
    options: AdmmOptions,
    history: History,
    iterations: int,
) -> Negotiation:
    """The agents' final words as one `Negotiation` (links in network order)."""
    finals = sorted(finals, key=lambda f: f.node)
    T = records[0].periods
    arrays = {name: np.zeros((n_links, T)) for name in ("xs", "xb", "z", "u", "price")}
    agreed_for = np.zeros((n_links, T), dtype=np.int64)
    rho = np.zeros(n_links)
    gap = np.zeros(n_links)
    move = np.zeros(n_links)
    for f in finals:
        for name in arrays:
            arrays[name][f.sells] = getattr(f, name)
        agreed_for[f.sells] = f.agreed_for
        rho[f.sells] = f.rho
        gap[f.sells] = f.gap_kwh
        move[f.sells] = f.price_move
    parts = [f.solutions for f in finals]
    solutions = Solutions(
        **{
            name.name: np.concatenate([getattr(p, name.name) for p in parts])
            for name in dataclasses.fields(Solutions)
        }
    )
    pairs = [(r.node, n) for r in records for n in r.neighbours]
    shared = {
        (r.node, n): int(np.isin(np.concatenate([r.sell_to, r.buy_from]), [n]).sum())
        for r in records
        for n in r.neighbours
    }
    per_iteration = sum(message_bytes(shared[p], T) for p in pairs)
    return Negotiation(
        iterations=iterations,
        converged=bool((agreed_for >= options.agreed_after).all()),
        period_hours=records[0].period_hours,
        state=LinkState(
            z=arrays["z"], u=arrays["u"], rho=rho, price=arrays["price"], agreed_for=agreed_for
        ),
        xs=arrays["xs"],
        xb=arrays["xb"],
        gap_kwh=gap,
        price_move=move,
        solutions=solutions,
        history=history.frozen(),
        messages=len(pairs) * iterations,
        message_bytes=per_iteration * iterations,
        control_messages=2 * len(records) * iterations,
        control_bytes=(STATUS_BYTES + 1) * len(records) * iterations,
        newton_steps=sum(f.newton_steps for f in finals),
        variables=0,
        constraints=0,
    )
