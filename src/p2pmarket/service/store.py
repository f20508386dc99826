"""The market service's state in one SQLite file: markets, orders (every version kept),
clearing results and meter readings.

The schema is versioned: `schema_version` holds the number of migrations applied, and
`MIGRATIONS` is the ordered list of functions that bring a database from one version to the
next, each run once, in its own transaction. A database of a newer version than this code
knows is refused. The file is in WAL mode (readers do not block the writer); each call opens
its own connection, so the store may be shared by the threads of the server.

Stored bodies are JSON text as the service validated it; the store does not interpret them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from p2pmarket.errors import P2PMarketError

__all__ = [
    "MIGRATIONS",
    "EventRow",
    "MarketRow",
    "OrderRow",
    "ResultRow",
    "ServiceStore",
    "ServiceStoreError",
]


class ServiceStoreError(P2PMarketError):
    """The service's database cannot be used (a newer schema than this code knows)."""


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE markets (id TEXT PRIMARY KEY, template TEXT NOT NULL, "
        "members TEXT NOT NULL, gate_closure TEXT NOT NULL, created_at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE orders (market_id TEXT NOT NULL REFERENCES markets(id), "
        "member TEXT NOT NULL, version INTEGER NOT NULL, submitted_at TEXT NOT NULL, "
        "body TEXT NOT NULL, PRIMARY KEY (market_id, member, version))"
    )
    db.execute(
        "CREATE TABLE results (market_id TEXT PRIMARY KEY REFERENCES markets(id), "
        "cleared_at TEXT NOT NULL, body TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE readings (market_id TEXT NOT NULL REFERENCES markets(id), "
        "member TEXT NOT NULL, submitted_at TEXT NOT NULL, body TEXT NOT NULL, "
        "PRIMARY KEY (market_id, member))"
    )


def _v2(db: sqlite3.Connection) -> None:
    # The ledger block a clearing was recorded in, and the market events (SSE, docs/service.md).
    db.execute("ALTER TABLE results ADD COLUMN block_height INTEGER")
    db.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "market_id TEXT NOT NULL REFERENCES markets(id), kind TEXT NOT NULL, "
        "at TEXT NOT NULL, body TEXT NOT NULL)"
    )


MIGRATIONS: Sequence[Callable[[sqlite3.Connection], None]] = (_v1, _v2)
"""Migration `i` brings the schema from version `i` to `i + 1`. Append; never edit one."""

_TABLES = ("markets", "orders", "results", "readings", "events")


@dataclass(frozen=True)
class MarketRow:
    """A market: its scenario template (JSON), members (JSON list), gate closure (ISO UTC)."""

    id: str
    template: str
    members: str
    gate_closure: str
    created_at: str


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


class ServiceStore:
    """The service's SQLite database at `path`, created and migrated on opening."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode; `BEGIN IMMEDIATE` where a call writes."""
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            db.execute("PRAGMA foreign_keys=ON")
            yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (0)")
        while (version := self.schema_version) < len(MIGRATIONS):
            with self._write() as db:
                (current,) = db.execute("SELECT version FROM schema_version").fetchone()
                if current != version:  # another process migrated meanwhile
                    continue
                MIGRATIONS[version](db)
                db.execute("UPDATE schema_version SET version = ?", (version + 1,))
        if self.schema_version > len(MIGRATIONS):
            raise ServiceStoreError(
                f"{self.path.name}: schema version {self.schema_version} is newer than this "
                f"p2pmarket knows ({len(MIGRATIONS)}); upgrade p2pmarket"
            )

    @property
    def schema_version(self) -> int:
        with self._connect() as db:
            (version,) = db.execute("SELECT version FROM schema_version").fetchone()
            return int(version)

    # --- markets ----------------------------------------------------------------------

    def create_market(self, market: MarketRow) -> bool:
        """Store `market`; False, changing nothing, when a market of that id exists."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO markets VALUES (?, ?, ?, ?, ?)",
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
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, template, members, gate_closure, created_at FROM markets "
                "ORDER BY gate_closure, id"
            ).fetchall()
        return [MarketRow(*row) for row in rows]

    def market(self, market_id: str) -> MarketRow | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, template, members, gate_closure, created_at FROM markets WHERE id = ?",
                (market_id,),
            ).fetchone()
        return MarketRow(*row) if row is not None else None

    # --- orders -----------------------------------------------------------------------

    def add_order(self, market_id: str, member: str, body: str, submitted_at: str) -> int:
        """Append a version of `member`'s order; its version number."""
        with self._write() as db:
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
        with self._connect() as db:
            rows = db.execute(
                "SELECT member, version, submitted_at, body FROM orders "
                "WHERE market_id = ? AND member = ? ORDER BY version",
                (market_id, member),
            ).fetchall()
        return [OrderRow(*row) for row in rows]

    def latest_orders(self, market_id: str) -> dict[str, OrderRow]:
        """Each member's latest order version, by member."""
        with self._connect() as db:
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
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?)",
                (market_id, cleared_at, body, block_height),
            )
            return cursor.rowcount == 1

    def result(self, market_id: str) -> ResultRow | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT market_id, cleared_at, body, block_height FROM results WHERE market_id = ?",
                (market_id,),
            ).fetchone()
        return ResultRow(*row) if row is not None else None

    # --- readings ---------------------------------------------------------------------

    def save_readings(self, market_id: str, member: str, body: str, submitted_at: str) -> bool:
        """Store `member`'s readings; False, changing nothing, when it has readings stored."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?)",
                (market_id, member, submitted_at, body),
            )
            return cursor.rowcount == 1

    def readings(self, market_id: str) -> dict[str, str]:
        """The stored readings of `market_id`, by member."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT member, body FROM readings WHERE market_id = ? ORDER BY member",
                (market_id,),
            ).fetchall()
        return {str(member): str(body) for member, body in rows}

    # --- events -----------------------------------------------------------------------

    def add_event(self, market_id: str, kind: str, body: str, at: str) -> int:
        """Append an event; its id."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO events (market_id, kind, at, body) VALUES (?, ?, ?, ?)",
                (market_id, kind, at, body),
            )
            return int(cursor.lastrowid or 0)

    def events(self, after: int = 0, limit: int = 1000) -> list[EventRow]:
        """The events whose id is above `after`, oldest first, at most `limit`."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, market_id, kind, at, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [EventRow(*row) for row in rows]

    def has_event(self, market_id: str, kind: str) -> bool:
        with self._connect() as db:
            row = db.execute(
                "SELECT 1 FROM events WHERE market_id = ? AND kind = ? LIMIT 1",
                (market_id, kind),
            ).fetchone()
        return row is not None

    # --- inspection -------------------------------------------------------------------

    def snapshot(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table, in a stable order: to tell that nothing was written."""
        with self._connect() as db:
            return {
                table: [tuple(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
                for table in _TABLES
            }

    def __repr__(self) -> str:
        return f"ServiceStore({str(self.path)!r})"
