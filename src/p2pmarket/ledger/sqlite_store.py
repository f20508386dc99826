"""The embedded store: one SQLite file (standard library `sqlite3`).

Appends run in `BEGIN IMMEDIATE` transactions: the write lock is taken before the tip is
read, so a second appender waits (up to `timeout` seconds) and then builds on the first one's
block; two appends can never both read the same tip. The rollback journal with
`synchronous=FULL` makes a transaction all or nothing, also when the process is killed or the
machine stops mid-append (the next opener rolls the journal back).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from p2pmarket.errors import LedgerError
from p2pmarket.ledger.store import Append, SqlReads, Tip

__all__ = ["SqliteStore"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ledger_blocks (
        height INTEGER PRIMARY KEY,
        block_hash TEXT NOT NULL UNIQUE,
        header TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ledger_records (
        height INTEGER NOT NULL,
        position INTEGER NOT NULL,
        record_id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (height, position)
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_records_by_id ON ledger_records (record_id)",
    """CREATE TABLE IF NOT EXISTS ledger_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        height INTEGER NOT NULL,
        block_hash TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
)


class SqliteStore(SqlReads):
    """A ledger in one SQLite file (see the module's docstring)."""

    def __init__(self, path: str | Path, *, create: bool = False, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self._url = f"sqlite:///{path}"
        if self.path.is_symlink():  # SQLite would write the database (and journal) it points to
            raise LedgerError(
                f"{self._url}: {self.path} is a symbolic link; give the ledger file itself "
                f"({os.path.realpath(self.path)})"
            )
        if not create and not self.path.is_file():
            raise LedgerError(f"no ledger at {self._url}: {self.path} does not exist")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open {self._url}: {exc}") from exc
        try:
            self._db.execute("PRAGMA synchronous = FULL")
            tables = {
                str(row[0])
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if {"ledger_blocks", "ledger_records", "ledger_head"} <= tables:
                pass
            elif create:
                self._db.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA:
                    self._db.execute(statement)
                self._db.execute("COMMIT")
            elif "ledger_blocks" not in tables:  # a partial set is for `verify` to report
                raise LedgerError(f"{self._url} holds no p2pmarket ledger")
        except sqlite3.Error as exc:
            self._db.close()
            raise LedgerError(f"cannot open {self._url}: {exc}") from exc
        except LedgerError:
            self._db.close()
            raise

    @property
    def url(self) -> str:
        return self._url

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read {self._url}: {exc}") from exc

    def append(self, build: Callable[[Tip], Append]) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot lock {self._url} for an append: {exc}") from exc
        try:
            tip = self.tip()
            pending = build(tip)
            for block in pending.blocks:
                db.execute(
                    "INSERT INTO ledger_blocks (height, block_hash, header, signature) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        block.height,
                        block.block_hash,
                        block.header.canonical().decode("utf-8"),
                        block.signature,
                    ),
                )
                db.executemany(
                    "INSERT INTO ledger_records (height, position, record_id, body) "
                    "VALUES (?, ?, ?, ?)",
                    (
                        (block.height, i, record.record_id, record.body)
                        for i, record in enumerate(block.records)
                    ),
                )
            last_block = pending.blocks[-1]
            db.execute(
                "INSERT INTO ledger_head (id, height, block_hash, signature) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET height = excluded.height, "
                "block_hash = excluded.block_hash, signature = excluded.signature",
                (last_block.height, last_block.block_hash, pending.head_signature),
            )
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise LedgerError(f"cannot append to {self._url}: {exc}") from exc
            raise

    def _find_record_rows(self, prefix: str) -> list[Any]:
        return self._query(
            "SELECT height, position, record_id FROM ledger_records "
            "WHERE record_id >= ? AND record_id < ? ORDER BY height, position",
            (prefix, prefix + "g"),  # ids are lower-case hex: 'g' sorts after all of them
        )

    def damage(self) -> str | None:
        rows = self._query("PRAGMA quick_check")
        lines = [line for (text,) in rows for line in str(text).splitlines()]
        problems = [line for line in lines if line != "ok" and not line.startswith("***")]
        return "; ".join(problems[:3]) if problems else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
