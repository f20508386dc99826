"""Test configuration: a derandomised hypothesis profile for CI (set by `.ci/run`), and under
pytest-xdist (`-n 2` on CI) each worker's PostgreSQL database dropped when its session ends."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import Phase, settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
# A first look while working: few examples, no shrinking (a failure is reported as found).
settings.register_profile(
    "quick", max_examples=5, print_blob=True, phases=[Phase.explicit, Phase.generate]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session", autouse=True)
def _drop_worker_databases() -> Iterator[None]:
    """Under pytest-xdist each worker makes a database of its own on first use
    (`ledger_support.worker_database`); drop it at the end. Nothing happens otherwise."""
    yield
    from ledger_support import drop_worker_databases

    drop_worker_databases()
