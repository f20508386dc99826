"""A worker process killed from outside (as the kernel's out-of-memory killer does) ends the
work with one `SolverError` naming it, never `BrokenProcessPool`'s traceback."""

from __future__ import annotations

import os
import signal

import pytest

from p2pmarket.errors import SolverError
from p2pmarket.runners import Background, LocalProcesses


def _killed_when_odd(job: int) -> int:
    if job % 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return job


def test_a_killed_pool_worker_is_one_solver_error() -> None:
    assert LocalProcesses(2).map(_killed_when_odd, [0, 2]) == [0, 2]
    with pytest.raises(SolverError, match="worker processes ended abruptly"):
        LocalProcesses(2).map(_killed_when_odd, [0, 1, 2])


def test_a_killed_background_process_is_one_solver_error() -> None:
    assert Background(_killed_when_odd, 4).result() == 4
    with pytest.raises(SolverError, match=r"background process ended abruptly.*memory"):
        Background(_killed_when_odd, 1).result()
