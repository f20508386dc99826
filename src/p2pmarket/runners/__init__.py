"""Where work runs: in this process, or in a pool of local processes (a Dask runner for
clusters lands beside these with the same protocol).

A runner only maps a picklable function over independent jobs and returns the results in
order; it knows nothing of markets. The core never starts processes: `p2pmarket.clear` and
the application layer hand the windows of a horizon (or the markets of a sweep) to a runner.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

__all__ = ["InProcess", "LocalProcesses", "Runner", "runner_for"]

T = TypeVar("T")
R = TypeVar("R")


class Runner(Protocol):
    """Runs `fn` on every job and returns the results in the order of the jobs."""

    def map(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[R]: ...


@dataclass(frozen=True)
class InProcess:
    """One job after the other, in this process."""

    def map(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[R]:
        return [fn(job) for job in jobs]


@dataclass(frozen=True)
class LocalProcesses:
    """A pool of `workers` local processes (None: one per core), started with `spawn`: a
    script that uses it must guard its entry point with `if __name__ == "__main__":`.
    `fn` and the jobs must be picklable. With one job or one worker, runs in this process."""

    workers: int | None = None

    def map(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[R]:
        workers = min(self.workers or os.cpu_count() or 1, len(jobs))
        if workers <= 1:
            return InProcess().map(fn, jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            return list(pool.map(fn, jobs))


def runner_for(workers: int | None) -> Runner:
    """The runner that `SolverOptions.workers` asks for: 1 in this process, else processes."""
    return InProcess() if workers == 1 else LocalProcesses(workers)
