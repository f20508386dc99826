"""Clearing methods: how a window of a market becomes a `ClearingResult`.

The solver is called only under this package. A method implements the `Clearing` protocol
(scenario + design + objective + solver options -> result); `CentralisedLP` (one LP over the
window, `lp`) is the one today, and a decentralised method (ADMM, SPEC C9) lands beside it
with the same protocol, so that `p2pmarket.clear`, the runners and the application layer
take either.

- `options`: `SolverOptions`, a frozen value.
- `model`: the LP of SPEC section 3 as linopy families (`define_*`), and its elastic variant.
- `lp`: `CentralisedLP` — build, solve, read the termination condition, locate infeasibility.
- `extract`: the solved model as result tables.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve.lp import CentralisedLP
from p2pmarket.core.solve.options import ALGORITHMS, SolverOptions
from p2pmarket.types import Design, Objective

__all__ = ["ALGORITHMS", "CentralisedLP", "Clearing", "SolverOptions"]


@runtime_checkable
class Clearing(Protocol):
    """A clearing method: clears one window (the whole scenario it is given) and returns an
    optimal result, or raises `MarketError` (infeasible, solver failure, time limit)."""

    @property
    def name(self) -> str:
        """Recorded in `ClearingResult.method`."""
        ...

    def clear_window(
        self,
        scenario: Scenario,
        design: Design,
        objective: Objective,
        options: SolverOptions,
        first_period: int = 0,
    ) -> ClearingResult: ...
