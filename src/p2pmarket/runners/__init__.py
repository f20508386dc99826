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
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from p2pmarket.errors import SolverError

__all__ = ["Background", "InProcess", "LocalProcesses", "Runner", "runner_for", "tell"]

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
        workers = min(self.cores, len(jobs))
        if workers <= 1:
            return InProcess().map(fn, jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            try:
                return list(pool.map(fn, jobs))
            except BrokenProcessPool:
                raise _killed(f"one of {workers} worker processes") from None

    @property
    def cores(self) -> int:
        """How many processes this runner may keep busy at once."""
        return self.workers or os.cpu_count() or 1


_told: Any = None
"""The queue of the `Background` job this process runs, if it runs one."""


def _listen(queue: Any) -> None:
    global _told
    _told = queue


def tell(message: object) -> None:
    """Send `message` (picklable) to the process that started this `Background` job; a no-op
    anywhere else, so a job's function runs unchanged in the foreground."""
    if _told is not None:
        _told.put(message)


class Background(Generic[R]):
    """`fn(job)` started in a local process of its own (spawned) while this one goes on;
    what the job `tell`s arrives through `result(on_message)`. Used where two large pieces of
    work are independent, e.g. a market and its no-trading baseline over a year of hours."""

    def __init__(self, fn: Callable[[T], R], job: T) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue = context.SimpleQueue()
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=context, initializer=_listen, initargs=(self._queue,)
        )
        self._future = self._pool.submit(fn, job)

    def messages(self) -> list[object]:
        """What the job has told since the last call (never waits)."""
        out = []
        while not self._queue.empty():
            out.append(self._queue.get())
        return out

    def result(self, on_message: Callable[[object], None] | None = None) -> R:
        """Wait for the job's result (its exception is raised here), handing each message
        to `on_message` as it arrives; the process is stopped either way."""
        try:
            while True:
                try:
                    value = self._future.result(timeout=0.2)
                    break
                except FutureTimeout:
                    pass
                except BrokenProcessPool:
                    raise _killed("the background process") from None
                finally:
                    for message in self.messages():
                        if on_message is not None:
                            on_message(message)
            return value
        finally:
            self.close()

    def close(self) -> None:
        """Stop the job's process (if it still runs, its work is lost)."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        if not self._future.done():
            for process in processes:
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _killed(who: str) -> SolverError:
    """The error of a worker process that ended without a result or an exception: it was
    killed (by the system when memory runs out, most often) or crashed."""
    return SolverError(f"{who} ended abruptly: killed, most often because memory ran out")


def runner_for(workers: int | None) -> Runner:
    """The runner that `SolverOptions.workers` asks for: 1 in this process, else processes."""
    return InProcess() if workers == 1 else LocalProcesses(workers)
