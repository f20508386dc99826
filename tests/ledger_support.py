"""Shared helpers of the ledger tests: fresh ledgers on both stores, synthetic records, and
direct SQL on a store's tables (the way an attacker with database access would edit them).

PostgreSQL tests read the server's URL from P2PMARKET_TEST_POSTGRES_URL (`.ci/run` sources
`.ci/postgres.sh`, which starts a server and sets it); they are skipped only when it is unset.
Each test gets a schema of its own in that database, dropped afterwards.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from p2pmarket.ledger import Record
from p2pmarket.ledger.store import sqlite_path

POSTGRES_ENV = "P2PMARKET_TEST_POSTGRES_URL"
STORES = ("sqlite", "postgresql")


def postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (source .ci/postgres.sh to start a server)")
    return url


@contextmanager
def fresh_ledger_url(kind: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty ledger on store `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'ledger.db'}"
        return
    import psycopg

    base = postgres_base_url()
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")


def sql(url: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one SQL statement (placeholders `?`) directly on the store at `url`; its rows."""
    if url.startswith("sqlite:"):
        db = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            return db.execute(statement, tuple(params)).fetchall()
        finally:
            db.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        cursor = pg.execute(statement.replace("?", "%s"), tuple(params))
        return cursor.fetchall() if cursor.description else []


def trade_record(block: int, i: int, energy_kwh: str = "12.5") -> Record:
    """A trade record whose content is unique to (block, i)."""
    return Record.from_data(
        {
            "kind": "trade",
            "period": i % 24,
            "seller": f"S{block}x{i}",
            "buyer": f"B{block}x{i}",
            "route": "p2p",
            "energy_kwh": Decimal(energy_kwh),
            "price_per_kwh": Decimal("0.048"),
            "amount": Decimal(energy_kwh) * Decimal("0.048"),
            "fee_per_kwh": Decimal("0.0216"),
            "fee": Decimal(energy_kwh) * Decimal("0.0216"),
            "priced_by": "price",
        }
    )


def records(block: int, count: int) -> list[Record]:
    return [trade_record(block, i) for i in range(count)]


class Clock:
    """A deterministic clock: one second further on each call."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now
