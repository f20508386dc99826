"""Solver options: a frozen value passed to `clear()`, never global state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from p2pmarket.types import Algorithm

__all__ = ["ALGORITHMS", "SolverOptions"]

ALGORITHMS: tuple[str, ...] = tuple(Algorithm)


@dataclass(frozen=True)
class SolverOptions:
    """How to solve.

    - `solver`: any solver linopy knows and that is installed (HiGHS by default).
    - `algorithm`: HiGHS's `solver` option: `choose` (default), `simplex`, `ipm` or `pdlp`.
    - `threads`, `time_limit_s`, `primal_tolerance`, `dual_tolerance`: passed to HiGHS.
    - `log`: print the solver's log; `log_file`: write it to this file.
    - `split_periods`: solve periods that no storage couples one by one (None: by size).
    - `workers`: processes for those per-period solves when `p2pmarket.clear` is given no
      runner: 1 (default) solves them in this process; None means one per core (a
      `p2pmarket.runners.LocalProcesses`). Worker processes are started with `spawn`, so a
      script that asks for them must guard its entry point with `if __name__ == "__main__":`
      (the `p2pmarket` command does). Where work runs is a runner's business; this field
      stays for one release as the short way to ask for local processes.
    - `extra`: further solver options, passed through as they are.
    """

    solver: str = "highs"
    algorithm: Algorithm = Algorithm.CHOOSE
    threads: int | None = None
    time_limit_s: float | None = None
    primal_tolerance: float | None = None
    dual_tolerance: float | None = None
    log: bool = False
    log_file: str | None = None
    split_periods: bool | None = None
    workers: int | None = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def for_linopy(self) -> dict[str, Any]:
        """Keyword options for `linopy.Model.solve`."""
        options: dict[str, Any] = {}
        if self.solver == "highs":
            options["output_flag"] = self.log or self.log_file is not None
            options["log_to_console"] = self.log
            if self.log_file is not None:
                options["log_file"] = self.log_file
            if self.algorithm != Algorithm.CHOOSE:
                options["solver"] = str(self.algorithm)
            if self.time_limit_s is not None:
                options["time_limit"] = float(self.time_limit_s)
            if self.threads is not None:
                options["threads"] = int(self.threads)
            if self.primal_tolerance is not None:
                options["primal_feasibility_tolerance"] = float(self.primal_tolerance)
            if self.dual_tolerance is not None:
                options["dual_feasibility_tolerance"] = float(self.dual_tolerance)
        options.update(self.extra)
        return options
