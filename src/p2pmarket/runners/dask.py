"""A runner on a Dask cluster (SPEC C10): a local cluster of worker processes, or an existing
cluster by its scheduler's address (one started with dask-jobqueue on Slurm, for example;
docs/sweeps.md).

`DaskRunner` has the `Runner` protocol (`map`: every job, the results in the order of the
jobs) and `completed`: the results as the jobs finish, for callers that keep each one at once
(a sweep's journal). Each job is one Dask task; `fn` and the jobs travel to the workers by
pickle, so they must be importable there (p2pmarket installed on every worker).

`dask_runner(workers=N)` starts `distributed.LocalCluster(n_workers=N, threads_per_worker=1,
processes=True)`, whose workers leave Ctrl-C to the client (`dask_setup`), and closes it
at the end of the block; `dask_runner(scheduler=ADDRESS)`
connects to a running scheduler and leaves the cluster running. Dask and distributed are the
extra `sweep` (`pip install 'p2pmarket[sweep]'`), imported only when a runner is made.
Worker processes are started with `spawn`: a script that starts a local cluster must guard
its entry point with `if __name__ == "__main__":`.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from p2pmarket.errors import MissingExtraError, OptionError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["CONNECT_TIMEOUT_S", "DaskRunner", "dask_runner"]

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT_S = 10.0
"""How long `dask_runner(scheduler=...)` waits for the scheduler before giving up."""


@dataclass(frozen=True)
class DaskRunner:
    """Runs each job as a Dask task on the cluster of `client` (a `distributed.Client`). The
    runner does not own the client: whoever made it closes it (`dask_runner` does)."""

    client: Client

    def map(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[R]:
        """`fn` on every job on the cluster; the results in the order of the jobs. The first
        job that raises raises here (the other tasks are cancelled)."""
        client: Any = self.client  # distributed is only partly annotated
        futures = client.map(fn, list(jobs), pure=False)
        try:
            results: list[R] = client.gather(futures)
        finally:
            client.cancel(futures)  # a no-op for tasks that are done
        return results

    def completed(
        self,
        fn: Callable[[T], R],
        jobs: Sequence[T],
        *,
        on_error: Callable[[int, BaseException], R] | None = None,
    ) -> Iterator[tuple[int, R]]:
        """`(index, result)` of each job as it finishes (`distributed.as_completed`), `index`
        its position in `jobs`. A task that raises (in `fn`, or lost with its worker) gives
        `on_error(index, exception)` and the others go on; without `on_error` it raises
        here. Tasks not yet finished when the caller stops (Ctrl-C, an error, `break`) are
        cancelled."""
        if not jobs:
            return
        as_completed = _distributed().as_completed
        client: Any = self.client
        futures = client.map(fn, list(jobs), pure=False)
        position = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in as_completed(futures, loop=client.loop):
                index = position[future.key]
                try:
                    result: R = future.result()
                except Exception as exc:
                    if on_error is None:
                        raise
                    result = on_error(index, exc)
                yield index, result
        finally:
            client.cancel(futures)


def _distributed() -> Any:
    """The `distributed` package (typed Any: it is only partly annotated), or
    `MissingExtraError` naming the extra `sweep`."""
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise MissingExtraError("sweeps on Dask", "distributed", "sweep") from None


def dask_setup(worker: object) -> None:
    """Dask's preload hook, run in each worker of a `dask_runner` local cluster as it starts:
    the worker ignores SIGINT. A Ctrl-C on a terminal reaches every process of its group;
    the client alone turns it into a stop (its tasks cancelled, the cluster closed in
    order), instead of each worker dying with a traceback mid-task."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def dask_runner(
    *, workers: int | None = None, scheduler: str | None = None
) -> Iterator[DaskRunner]:
    """A `DaskRunner` for the block: on a new local cluster of `workers` processes with one
    thread each (None: one per core), closed when the block ends, or, with `scheduler`
    (`tcp://HOST:PORT`), on that running cluster, which is left running. `OptionError`
    (`workers`, `scheduler`) for a bad value or a scheduler that cannot be reached;
    `MissingExtraError` without the extra `sweep`."""
    if workers is not None and scheduler is not None:
        raise OptionError("scheduler", "give either a scheduler or a number of workers, not both")
    if workers is not None and (
        not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 1024
    ):
        raise OptionError("workers", f"must be a whole number from 1 to 1024, got {workers!r}")
    distributed = _distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise OptionError("scheduler", f"cannot connect to {scheduler!r}: {reason}") from None
        try:
            yield DaskRunner(client)
        finally:
            client.close()
        return
    cluster = distributed.LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,  # no dashboard; the scheduler's health routes on any port:
        scheduler_kwargs={"dashboard_address": ":0"},  # 8787 may be another cluster's
        # Dask's own log kept off the terminal up to its errors: on Ctrl-C a worker logs a
        # failed heartbeat to the closing scheduler at ERROR, a traceback under the one line
        # that says the sweep was interrupted. A variant's failure is its row, not a log.
        silence_logs=logging.CRITICAL,
        preload=[__name__],  # dask_setup: Ctrl-C is the client's to handle
    )
    try:
        client = distributed.Client(cluster, set_as_default=False)
        try:
            yield DaskRunner(client)
        finally:
            client.close()
    finally:
        cluster.close()
