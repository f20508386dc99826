"""Shared helpers of the ledger tests: fresh ledgers on both stores, synthetic records, and
direct SQL on a store's tables (the way an attacker with database access would edit them).

PostgreSQL tests read the server's URL from P2PMARKET_TEST_POSTGRES_URL (`.ci/run` sources
`.ci/postgres.sh`, which starts a server and sets it); they are skipped only when it is unset.
Each test gets a schema of its own in that database, dropped afterwards. Under pytest-xdist
each worker uses a database of its own on that server instead (`p2pmarket_test_gw0_RUN`:
see `worker_database`), so that two workers never share a database-wide lock.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest

from p2pmarket.ledger import Record
from p2pmarket.ledger.store import sqlite_path

POSTGRES_ENV = "P2PMARKET_TEST_POSTGRES_URL"
STORES = ("sqlite", "postgresql")


def postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (source .ci/postgres.sh to start a server)")
    return worker_database(url)


_WORKER_DATABASES: dict[str, str] = {}
"""The URL of this xdist worker's database, by the URL it was made from (made at most once)."""


def worker_database(url: str) -> str:
    """The database the tests of this process use on the server of `url`: `url` itself
    outside pytest-xdist; under it, database `<name>_<worker>_<run>` (`p2pmarket_test_gw0_`
    and the first 8 characters of xdist's test run id) on the same server, created on first
    use and dropped at the end of the session (tests/conftest.py), so that the workers never
    share a database (the ledger's and the service store's advisory locks are
    database-wide), nor do two runs that happen to share a server (one run's drop would cut
    the other off). An unreachable server raises here, as it would in the test: the test
    fails, it is not skipped."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    if url not in _WORKER_DATABASES:
        import psycopg
        from psycopg import sql as pgsql

        run = re.sub(r"[^A-Za-z0-9]", "", os.environ.get("PYTEST_XDIST_TESTRUNUID", ""))[:8]
        parts = urlsplit(url)
        base = unquote(parts.path.lstrip("/")) or parts.username or "postgres"  # libpq's default
        name = "_".join(n for n in (base, re.sub(r"[^A-Za-z0-9]", "", worker), run) if n)
        with psycopg.connect(url, autocommit=True) as db:
            if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                db.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
        _WORKER_DATABASES[url] = urlunsplit(parts._replace(path=f"/{quote(name)}"))
    return _WORKER_DATABASES[url]


def drop_worker_databases() -> None:
    """Drop the databases `worker_database` made in this process (at the end of the session;
    WITH (FORCE): a connection a killed test process left behind does not keep one)."""
    import psycopg
    from psycopg import sql as pgsql

    while _WORKER_DATABASES:
        url, worker_url = _WORKER_DATABASES.popitem()
        name = unquote(urlsplit(worker_url).path.lstrip("/"))
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )


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
