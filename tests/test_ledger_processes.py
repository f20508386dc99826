"""Appends against real processes, on both stores (SPEC C5).

- A process killed with SIGKILL in the middle of an append leaves a ledger that verifies, with
  the block either whole or absent: once at a random moment of a loop of large appends, and
  once at a chosen point inside the append's transaction (SQLite: part of the records
  inserted; PostgreSQL: part of the records sent by COPY).
- Two processes appending at once never fork the chain nor lose a block: heights are
  contiguous and every append of each process is there, once.

The processes are forked (multiprocessing's "fork" context), so each starts at once.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger_support import STORES, fresh_ledger_url, records, sql
from p2pmarket.ledger import (
    append_records,
    generate_keypair,
    load_private_key,
    load_public_key,
    open_store,
    verify,
)
from p2pmarket.ledger.store import sqlite_path

CONTEXT = multiprocessing.get_context("fork")
BIG = 3000
"""Records in each block of the kill tests."""


@pytest.fixture(params=STORES)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_ledger_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return generate_keypair(tmp_path / "manager.key")[0]


def _verified(url: str, key: Path) -> tuple[int, list[int]]:
    """(blocks, records per block) of a ledger that verifies against the manager's key (on
    SQLite, the key pinned beside the database: the default)."""
    pinned = url.startswith("sqlite:")
    with open_store(url) as store:
        report = verify(
            store, None if pinned else load_public_key(key.with_name("manager.key.pub"))
        )
        assert report.ok, report.summary()
        sizes = [len(b.records) for b in store.blocks()]
    return report.blocks_checked, sizes


# ---- SIGKILL mid-append ---------------------------------------------------------------------


def _append_forever(url: str, key_path: Path, started: Any) -> None:
    key = load_private_key(key_path)
    block = records(7, BIG)
    with open_store(url, create=True) as store:
        append_records(store, key, block, scenario_hash=None, run=None)
        started.set()
        while True:
            append_records(store, key, block, scenario_hash=None, run=None)


def test_sigkill_at_random_moments_leaves_whole_blocks(ledger_url: str, key: Path) -> None:
    delays = [random.uniform(0.02, 0.3) for _ in range(2)]
    for delay in delays:
        started = CONTEXT.Event()
        child = CONTEXT.Process(target=_append_forever, args=(ledger_url, key, started))
        child.start()
        assert started.wait(30), "the appender did not start"
        time.sleep(delay)
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
        count, sizes = _verified(ledger_url, key)
        assert count >= 2, delays
        assert sizes == [0] + [BIG] * (count - 1), delays
    # The ledger goes on after the crashes.
    append_records(ledger_url, key, records(8, 3), scenario_hash=None, run=None)
    assert _verified(ledger_url, key)[0] == count + 1


def _append_and_die_inside(url: str, key_path: Path) -> None:
    """Append one block, then die by SIGKILL halfway through writing the second one."""
    key = load_private_key(key_path)
    with open_store(url, create=True) as store:
        append_records(store, key, records(1, BIG), scenario_hash=None, run=None)
        die = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
        if url.startswith("sqlite"):
            db = store._db  # type: ignore[attr-defined]
            written = db.total_changes

            def progress() -> int:
                if db.in_transaction and db.total_changes > written + BIG // 2:
                    die()
                return 0

            db.set_progress_handler(progress, 1000)
        else:
            import psycopg

            write_row = psycopg.Copy.write_row
            rows = [0]

            def counting_write_row(self: psycopg.Copy, row: Any) -> None:
                rows[0] += 1
                if rows[0] > BIG // 2:
                    die()
                write_row(self, row)

            psycopg.Copy.write_row = counting_write_row  # type: ignore[method-assign]
        append_records(store, key, records(2, BIG), scenario_hash=None, run=None)


def test_sigkill_inside_the_transaction_leaves_the_block_absent(ledger_url: str, key: Path) -> None:
    child = CONTEXT.Process(target=_append_and_die_inside, args=(ledger_url, key))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    if ledger_url.startswith("sqlite"):  # the kill left a transaction open: a hot journal
        assert Path(sqlite_path(ledger_url) + "-journal").stat().st_size > 0
    assert _verified(ledger_url, key) == (2, [0, BIG])
    assert sql(ledger_url, "SELECT count(*) FROM ledger_records WHERE height = 2") == [(0,)]
    block = append_records(ledger_url, key, records(3, 5), scenario_hash=None, run=None)
    assert block.height == 2
    assert _verified(ledger_url, key) == (3, [0, BIG, 5])


# ---- two writers ----------------------------------------------------------------------------

APPENDS = 10


def _append_many(url: str, key_path: Path, who: int, go: Any, heights: Any) -> None:
    key = load_private_key(key_path)
    go.wait(30)
    got = []
    with open_store(url, create=True) as store:  # the first append also races to create
        for i in range(APPENDS):
            block = append_records(
                store, key, records(100 * who + i, 200), scenario_hash=None, run=None
            )
            got.append(block.height)
    heights.put((who, got))


def test_two_writers_never_fork_nor_lose_a_block(ledger_url: str, key: Path) -> None:
    go, heights = CONTEXT.Event(), CONTEXT.Queue()
    writers = [
        CONTEXT.Process(target=_append_many, args=(ledger_url, key, who, go, heights))
        for who in (1, 2)
    ]
    for writer in writers:
        writer.start()
    go.set()
    got = dict(heights.get(timeout=120) for _ in writers)
    for writer in writers:
        writer.join(30)
        assert writer.exitcode == 0
    assert sorted(got[1] + got[2]) == list(range(1, 2 * APPENDS + 1))  # no fork, none lost
    assert _verified(ledger_url, key) == (2 * APPENDS + 1, [0] + [200] * 2 * APPENDS)
    with open_store(ledger_url) as store:
        for who in (1, 2):
            for i, height in enumerate(got[who]):
                stored = store.block(height)
                assert stored is not None
                assert stored.records[0].body.count(f'"seller":"S{100 * who + i}x0"') == 1
