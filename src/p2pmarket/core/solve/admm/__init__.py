"""Decentralised clearing by edge-consensus ADMM (SPEC C9).

Each agent — a peer, or a community manager in the `community` and `hybrid` designs —
solves its own small problem from its own data, and only trade quantities travel between
the two ends of each link; each link reconciles its two copies and its price on its own.

- `records`: what each agent knows (`AgentRecord`), cut out of the scenario once.
- `local`: every agent's subproblem, solved exactly and for all agents at once.
- `protocol`: the per-link update, residual balancing, the stopping rule (`AdmmOptions`).
- `agent`: one agent on its own with its messages (for the message-passing runner).
- `method`: `ADMM`, the clearing method (vectorised, in process).
- `result`: the outcome as a `ClearingResult` with its `AdmmReport`.
"""

from p2pmarket.core.solve.admm.agent import Agent, Copies, Status
from p2pmarket.core.solve.admm.method import ADMM, InProcessNegotiation, negotiate
from p2pmarket.core.solve.admm.protocol import AdmmOptions
from p2pmarket.core.solve.admm.records import AgentRecord, agent_records
from p2pmarket.core.solve.admm.result import AdmmReport, Negotiation, admm_report

__all__ = [
    "ADMM",
    "AdmmOptions",
    "AdmmReport",
    "Agent",
    "AgentRecord",
    "Copies",
    "InProcessNegotiation",
    "Negotiation",
    "Status",
    "admm_report",
    "agent_records",
    "negotiate",
]
