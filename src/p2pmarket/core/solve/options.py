"""Solver options: a frozen value passed to `clear()`, never global state."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pmarket.errors import OptionError
from p2pmarket.types import Algorithm, parse

__all__ = ["ALGORITHMS", "MAX_THREADS", "MAX_WINDOW", "TOLERANCE_RANGE", "SolverOptions"]

ALGORITHMS: tuple[str, ...] = tuple(Algorithm)
MAX_THREADS = 1024
"""HiGHS starts a worker per thread (at 100,000 it aborts the process); more threads than the
machine has cores only slow it down."""
MAX_WINDOW = 100_000
"""No horizon is longer (`P2PMARKET_MAX_PERIODS`'s default)."""
TOLERANCE_RANGE = (1e-10, 1e-3)
"""Feasibility tolerances HiGHS accepts from 1e-10; beyond 1e-3 kWh a balance is no market."""


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
    - `window`: clear a longer horizon as a rolling horizon of windows this many periods
      long (None: as one LP, or period by period where `split_periods` says so);
      `lookahead`: the periods after each window solved with it (None: as many as the
      window), see `p2pmarket.core.horizon`.
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
    window: int | None = None
    lookahead: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse, with the option's name and value, what the solver would reject, ignore
        or abort on (`OptionError`)."""
        object.__setattr__(self, "algorithm", parse(Algorithm, self.algorithm, "algorithm"))
        _integer_in("threads", self.threads, 1, MAX_THREADS)
        _integer_in("workers", self.workers, 1, MAX_THREADS)
        _integer_in("window", self.window, 1, MAX_WINDOW)
        _integer_in("lookahead", self.lookahead, 0, MAX_WINDOW)
        if self.lookahead is not None and self.window is None:
            raise OptionError("lookahead", "is the look-ahead of a rolling window: give window")
        if self.time_limit_s is not None and not (
            _is_number(self.time_limit_s) and 0 < self.time_limit_s < math.inf
        ):
            raise OptionError(
                "time_limit_s", f"must be a positive number of seconds, got {self.time_limit_s!r}"
            )
        low, high = TOLERANCE_RANGE
        for name in ("primal_tolerance", "dual_tolerance"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and low <= value <= high):
                raise OptionError(name, f"must be between {low:g} and {high:g}, got {value!r}")
        if self.log_file is not None:
            _check_log_file(self.log_file)

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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer_in(name: str, value: object, low: int, high: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise OptionError(name, f"must be a whole number from {low} to {high}, got {value!r}")


def _check_log_file(log_file: str) -> None:
    """The solver's log file must be a file that can be written: HiGHS ignores one it
    cannot open without a word."""
    path = Path(log_file)
    if path.is_symlink():  # HiGHS would write through it (docs/security.md)
        raise OptionError("log_file", f"{log_file!r} is a symbolic link; give the file itself")
    if path.is_dir():
        raise OptionError("log_file", f"{log_file!r} is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        what = "does not exist" if not parent.exists() else "is not a directory"
        raise OptionError("log_file", f"the directory {str(parent)!r} of {log_file!r} {what}")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise OptionError("log_file", f"{log_file!r} cannot be written: permission denied")
