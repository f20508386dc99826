"""The market service's state: markets, orders (every version kept), clearing results, meter
readings and market events, in SQLite (the default) or PostgreSQL.

`ServiceStore(target)` opens the store `target` names, the way the ledger's `open_store` reads
a URL (`p2pmarket.ledger.store`): a file path or `sqlite:///relative/path.db`,
`sqlite:////absolute/path.db` for one SQLite file (standard library only), or
`postgresql://user@host:port/database` (or `postgres://`, any libpq URL) for PostgreSQL through
psycopg 3, with the tables in the connection's current schema
(`?options=-csearch_path%3Dname` puts them in schema `name`).

The schema is versioned: `schema_version` holds the number of migrations applied, and
`MIGRATIONS` is the ordered list of functions that bring a database from one version to the
next, each run once, in its own transaction, on either database: a migration names its column
types in braces (`{text}`, `{integer}`, `{serial}`), which `StoreConnection.define` fills in
for the database at hand. Every write runs in a transaction that first takes a lock that
serialises writers (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `LOCK TABLE schema_version IN SHARE
ROW EXCLUSIVE MODE`, which readers do not wait for), so an order's versions count 1, 2, 3...
without a gap, event ids are committed in the order they are numbered, and two processes
migrating the same database at once apply each migration once (each re-reads the version under
the lock). A database of a newer version than this code knows is refused. The store may be
shared by the threads of the server: on SQLite each thread keeps a connection of its own
(opening one per call cost more than most queries), on PostgreSQL each call opens one; a
SQLite file is in WAL mode (readers do not block the writer).

Both databases answer alike: PostgreSQL's text columns compare and sort by code point
(`COLLATE "C"`), as SQLite's do, and its integers are 64-bit, as SQLite's are. Stored bodies
are JSON text as the service validated it; the store does not interpret them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

from p2pmarket.errors import LedgerError, P2PMarketError
from p2pmarket.ledger.store import sqlite_path, store_kind

__all__ = [
    "MIGRATIONS",
    "EventRow",
    "MarketRow",
    "OrderRow",
    "ResultRow",
    "ServiceStore",
    "ServiceStoreError",
    "StoreConnection",
]


class ServiceStoreError(P2PMarketError):
    """The service's database cannot be used: a newer schema than this code knows, a URL of no
    known kind; on PostgreSQL, a server that cannot be reached or any other database error
    (SQLite's errors are `sqlite3`'s, as they always were)."""


class _Cursor(Protocol):
    """What this module reads of a `sqlite3` or a psycopg cursor."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class StoreConnection:
    """A connection to the store's database, in this module's SQL: `?` placeholders, column
    types in braces in `define`. This one is SQLite's; PostgreSQL's is a subclass
    (`p2pmarket.service.postgres_store`)."""

    placeholder: ClassVar[str] = "?"
    types: ClassVar[Mapping[str, str]] = {
        "text": "TEXT",
        "integer": "INTEGER",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
    }
    """What the column types a migration names stand for in this database."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[object] = ()) -> _Cursor:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        cursor: _Cursor = self.raw.execute(sql, tuple(params))
        return cursor

    def define(self, ddl: str) -> None:
        """Run a schema statement whose column types are named in braces (`{text}`)."""
        self.raw.execute(ddl.format_map(self.types))

    def insert_id(self, sql: str, params: Sequence[object]) -> int:
        """Run an INSERT into a table with a `{serial}` id; the new row's id."""
        cursor: Any = self.execute(sql, params)  # a sqlite3 cursor: it has `lastrowid`
        return int(cursor.lastrowid or 0)


def _v1(db: StoreConnection) -> None:
    db.define(
        "CREATE TABLE markets (id {text} PRIMARY KEY, template {text} NOT NULL, "
        "members {text} NOT NULL, gate_closure {text} NOT NULL, created_at {text} NOT NULL)"
    )
    db.define(
        "CREATE TABLE orders (market_id {text} NOT NULL REFERENCES markets(id), "
        "member {text} NOT NULL, version {integer} NOT NULL, submitted_at {text} NOT NULL, "
        "body {text} NOT NULL, PRIMARY KEY (market_id, member, version))"
    )
    db.define(
        "CREATE TABLE results (market_id {text} PRIMARY KEY REFERENCES markets(id), "
        "cleared_at {text} NOT NULL, body {text} NOT NULL)"
    )
    db.define(
        "CREATE TABLE readings (market_id {text} NOT NULL REFERENCES markets(id), "
        "member {text} NOT NULL, submitted_at {text} NOT NULL, body {text} NOT NULL, "
        "PRIMARY KEY (market_id, member))"
    )


def _v2(db: StoreConnection) -> None:
    # The ledger block a clearing was recorded in, and the market events (SSE, docs/service.md).
    db.define("ALTER TABLE results ADD COLUMN block_height {integer}")
    db.define(
        "CREATE TABLE events (id {serial}, "
        "market_id {text} NOT NULL REFERENCES markets(id), kind {text} NOT NULL, "
        "at {text} NOT NULL, body {text} NOT NULL)"
    )


def _v3(db: StoreConnection) -> None:
    # The nonces of accepted signed requests, shared by every process of the service and kept
    # across a restart (a replay within the signature's lifetime is refused after one too).
    db.define(
        "CREATE TABLE nonces (key_id {text} NOT NULL, nonce {text} NOT NULL, "
        "until_ms {integer} NOT NULL, PRIMARY KEY (key_id, nonce))"
    )
    db.define("CREATE INDEX nonces_until ON nonces (until_ms)")


MIGRATIONS: Sequence[Callable[[StoreConnection], None]] = (_v1, _v2, _v3)
"""Migration `i` brings the schema from version `i` to `i + 1`, on SQLite and on PostgreSQL
alike. Append; never edit one."""

_KEYS = {
    "markets": "id",
    "orders": "market_id, member, version",
    "results": "market_id",
    "readings": "market_id, member",
    "events": "id",
}
"""Each table's primary key: the order `snapshot` lists its rows in. (`nonces` is left out:
it is the signature layer's memory, written for every accepted request, not market state.)"""


@dataclass(frozen=True)
class MarketRow:
    """A market: its scenario template (JSON), members (JSON list), gate closure (ISO UTC)."""

    id: str
    template: str
    members: str
    gate_closure: str
    created_at: str

    @cached_property
    def member_ids(self) -> tuple[str, ...]:
        """`members`, parsed (once per row: a market's row never changes)."""
        return tuple(json.loads(self.members))

    @cached_property
    def member_set(self) -> frozenset[str]:
        return frozenset(self.member_ids)

    @cached_property
    def template_data(self) -> Mapping[str, Any]:
        """`template`, parsed once; shared, so never changed in place (`apply_orders`
        copies it)."""
        data: Mapping[str, Any] = json.loads(self.template)
        return data


@dataclass(frozen=True)
class OrderRow:
    """One version of a member's order (versions count from 1)."""

    member: str
    version: int
    submitted_at: str
    body: str


@dataclass(frozen=True)
class ResultRow:
    """A market's clearing: the result body (JSON), when, and the ledger block it is in
    (None when the service keeps no ledger)."""

    market_id: str
    cleared_at: str
    body: str
    block_height: int | None


@dataclass(frozen=True)
class EventRow:
    """A market event, numbered in the order it happened (ids increase, across markets)."""

    id: int
    market_id: str
    kind: str
    at: str
    body: str


class StoreBackend(ABC):
    """Where a store's connections come from, and how its writers are serialised: SQLite's
    here, PostgreSQL's in `p2pmarket.service.postgres_store`."""

    url: str
    """The database's URL, without any password: for messages."""
    path: Path | None = None
    """The SQLite file (None on PostgreSQL)."""

    @abstractmethod
    def read(self) -> AbstractContextManager[StoreConnection]:
        """A connection in autocommit mode (SQLite: the calling thread's own, kept open;
        PostgreSQL: one of its own, closed at the end)."""

    @abstractmethod
    def write(self) -> AbstractContextManager[StoreConnection]:
        """A transaction under the lock that serialises writers (taken before anything is
        read), committed at the end, rolled back on an error."""

    def create(self) -> AbstractContextManager[StoreConnection]:
        """A transaction in which `schema_version` is made if it is absent, serialised with
        any other process doing the same."""
        return self.write()


_SQLITE_TIMEOUT_S = 30.0
"""How long a connection waits for another's lock on the SQLite file."""


def _write_ahead_log(raw: sqlite3.Connection) -> None:
    """The file switched to WAL mode. Processes opening a new file at once race for the
    switch, and SQLite answers the losers "database is locked" at once rather than after its
    busy timeout (1 in 10 of six threads opening a new file together): the switch is tried
    again until the timeout has passed."""
    deadline = time.monotonic() + _SQLITE_TIMEOUT_S
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _SqliteBackend(StoreBackend):
    """One SQLite file in WAL mode; writers serialised by `BEGIN IMMEDIATE`."""

    def __init__(self, path: Path) -> None:
        self.path = self._file = path
        self.url = f"sqlite:///{path}"
        self._local = threading.local()
        with closing(
            sqlite3.connect(self._file, timeout=_SQLITE_TIMEOUT_S, isolation_level=None)
        ) as raw:
            _write_ahead_log(raw)

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on its first call (in this process): opening one
        per call cost more than the query it served."""
        raw: sqlite3.Connection | None = getattr(self._local, "raw", None)
        if raw is None or self._local.pid != os.getpid():
            raw = sqlite3.connect(self._file, timeout=_SQLITE_TIMEOUT_S, isolation_level=None)
            raw.execute("PRAGMA foreign_keys=ON")
            self._local.raw, self._local.pid = raw, os.getpid()
        return raw

    @contextmanager
    def read(self) -> Iterator[StoreConnection]:
        yield StoreConnection(self._connection())

    @contextmanager
    def write(self) -> Iterator[StoreConnection]:
        with self.read() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def _backend(target: str | Path) -> StoreBackend:
    """The backend of a file path or a URL (see the module's docstring)."""
    if not isinstance(target, str):
        return _SqliteBackend(Path(target))
    try:
        if store_kind(target) == "sqlite":
            return _SqliteBackend(Path(sqlite_path(target)))
    except LedgerError as exc:
        raise ServiceStoreError(str(exc)) from None
    from p2pmarket.service.postgres_store import PostgresBackend

    return PostgresBackend(target)


class ServiceStore:
    """The service's database at `path`: a file path, or a `sqlite:///` or `postgresql://`
    URL (see the module's docstring); created and migrated on opening."""

    def __init__(self, path: str | Path) -> None:
        self._backend = _backend(path)
        self.url = self._backend.url
        """The database's URL, without any password."""
        self.path = self._backend.path
        """The SQLite file (None on PostgreSQL)."""
        self._migrate()

    def _migrate(self) -> None:
        with self._backend.create() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (0)")
        while (version := self.schema_version) < len(MIGRATIONS):
            with self._backend.write() as db:
                (current,) = db.execute("SELECT version FROM schema_version").fetchone()
                if current != version:  # another process migrated meanwhile
                    continue
                MIGRATIONS[version](db)
                db.execute("UPDATE schema_version SET version = ?", (version + 1,))
        if self.schema_version > len(MIGRATIONS):
            raise ServiceStoreError(
                f"{self.url}: schema version {self.schema_version} is newer than this "
                f"p2pmarket knows ({len(MIGRATIONS)}); upgrade p2pmarket"
            )

    @property
    def schema_version(self) -> int:
        with self._backend.read() as db:
            (version,) = db.execute("SELECT version FROM schema_version").fetchone()
            return int(version)

    # --- markets ----------------------------------------------------------------------

    def create_market(self, market: MarketRow) -> bool:
        """Store `market`; False, changing nothing, when a market of that id exists."""
        with self._backend.write() as db:
            cursor = db.execute(
                "INSERT INTO markets VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    market.id,
                    market.template,
                    market.members,
                    market.gate_closure,
                    market.created_at,
                ),
            )
            return cursor.rowcount == 1

    def markets(self) -> list[MarketRow]:
        """Every market, by gate closure then id."""
        with self._backend.read() as db:
            rows = db.execute(
                "SELECT id, template, members, gate_closure, created_at FROM markets "
                "ORDER BY gate_closure, id"
            ).fetchall()
        return [MarketRow(*row) for row in rows]

    def market(self, market_id: str) -> MarketRow | None:
        with self._backend.read() as db:
            row = db.execute(
                "SELECT id, template, members, gate_closure, created_at FROM markets WHERE id = ?",
                (market_id,),
            ).fetchone()
        return MarketRow(*row) if row is not None else None

    # --- orders -----------------------------------------------------------------------

    def add_order(self, market_id: str, member: str, body: str, submitted_at: str) -> int:
        """Append a version of `member`'s order; its version number."""
        with self._backend.write() as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM orders WHERE market_id = ? AND member = ?",
                (market_id, member),
            ).fetchone()
            db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
                (market_id, member, last + 1, submitted_at, body),
            )
            return int(last) + 1

    def order_history(self, market_id: str, member: str) -> list[OrderRow]:
        with self._backend.read() as db:
            rows = db.execute(
                "SELECT member, version, submitted_at, body FROM orders "
                "WHERE market_id = ? AND member = ? ORDER BY version",
                (market_id, member),
            ).fetchall()
        return [OrderRow(*row) for row in rows]

    def ordered_members(self, market_id: str) -> list[str]:
        """The members with at least one order for `market_id`, sorted."""
        with self._backend.read() as db:
            rows = db.execute(
                "SELECT DISTINCT member FROM orders WHERE market_id = ? ORDER BY member",
                (market_id,),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def latest_orders(self, market_id: str) -> dict[str, OrderRow]:
        """Each member's latest order version, by member."""
        with self._backend.read() as db:
            rows = db.execute(
                "SELECT o.member, o.version, o.submitted_at, o.body FROM orders o "
                "JOIN (SELECT member, MAX(version) AS v FROM orders WHERE market_id = ? "
                "GROUP BY member) m ON o.member = m.member AND o.version = m.v "
                "WHERE o.market_id = ? ORDER BY o.member",
                (market_id, market_id),
            ).fetchall()
        return {row[0]: OrderRow(*row) for row in rows}

    # --- results ----------------------------------------------------------------------

    def save_result(
        self, market_id: str, body: str, cleared_at: str, block_height: int | None = None
    ) -> bool:
        """Store the clearing of `market_id` (and the ledger block it is in); False, changing
        nothing, when one is stored."""
        with self._backend.write() as db:
            cursor = db.execute(
                "INSERT INTO results VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (market_id, cleared_at, body, block_height),
            )
            return cursor.rowcount == 1

    def result(self, market_id: str) -> ResultRow | None:
        with self._backend.read() as db:
            row = db.execute(
                "SELECT market_id, cleared_at, body, block_height FROM results WHERE market_id = ?",
                (market_id,),
            ).fetchone()
        return ResultRow(*row) if row is not None else None

    # --- readings ---------------------------------------------------------------------

    def save_readings(self, market_id: str, member: str, body: str, submitted_at: str) -> bool:
        """Store `member`'s readings; False, changing nothing, when it has readings stored."""
        with self._backend.write() as db:
            cursor = db.execute(
                "INSERT INTO readings VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (market_id, member, submitted_at, body),
            )
            return cursor.rowcount == 1

    def readings_members(self, market_id: str) -> list[str]:
        """The members whose readings of `market_id` are stored, sorted (without reading
        the readings)."""
        with self._backend.read() as db:
            rows = db.execute(
                "SELECT member FROM readings WHERE market_id = ? ORDER BY member", (market_id,)
            ).fetchall()
        return [str(row[0]) for row in rows]

    def readings(self, market_id: str) -> dict[str, str]:
        """The stored readings of `market_id`, by member."""
        with self._backend.read() as db:
            rows = db.execute(
                "SELECT member, body FROM readings WHERE market_id = ? ORDER BY member",
                (market_id,),
            ).fetchall()
        return {str(member): str(body) for member, body in rows}

    # --- events -----------------------------------------------------------------------

    def add_event(self, market_id: str, kind: str, body: str, at: str) -> int:
        """Append an event; its id."""
        with self._backend.write() as db:
            return db.insert_id(
                "INSERT INTO events (market_id, kind, at, body) VALUES (?, ?, ?, ?)",
                (market_id, kind, at, body),
            )

    def events(self, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """The events whose id is above `after`, oldest first, at most `limit`."""
        with self._backend.read() as db:
            rows = db.execute(
                "SELECT id, market_id, kind, at, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [EventRow(*row) for row in rows]

    def has_event(self, market_id: str, kind: str) -> bool:
        with self._backend.read() as db:
            row = db.execute(
                "SELECT 1 FROM events WHERE market_id = ? AND kind = ? LIMIT 1",
                (market_id, kind),
            ).fetchone()
        return row is not None

    # --- inspection -------------------------------------------------------------------

    # --- nonces (a `p2pmarket.service.signatures.NonceStore`) ----------------------------

    def remember(self, key_id: str, nonce: str, *, until: float, now: float) -> bool:
        """Record `nonce` of `key_id` until `until` (POSIX seconds) and say True; False,
        recording nothing, when it is recorded and not past its time. One transaction, which
        first forgets the nonces past their time."""
        now_ms, until_ms = int(now * 1000), int(until * 1000) + 1
        with self._backend.write() as db:
            db.execute("DELETE FROM nonces WHERE until_ms < ?", (now_ms,))
            known = db.execute(
                "SELECT 1 FROM nonces WHERE key_id = ? AND nonce = ?", (key_id, nonce)
            ).fetchone()
            if known is not None:
                return False
            db.execute("INSERT INTO nonces VALUES (?, ?, ?)", (key_id, nonce, until_ms))
            return True

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table, in a stable order: to tell that nothing was written."""
        with self._backend.read() as db:
            return {
                table: [
                    tuple(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
                ]
                for table, key in _KEYS.items()
            }

    def __repr__(self) -> str:
        return f"ServiceStore({self.url!r})"
