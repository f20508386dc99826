"""The shared store: PostgreSQL through psycopg 3.

An append is one transaction that first takes `LOCK TABLE ledger_blocks IN SHARE ROW EXCLUSIVE
MODE`: the lock conflicts with itself, so appenders queue one behind the other, while readers
(`verify`, `show`) go on. Under READ COMMITTED each statement after the lock sees every block
committed before it, so the second appender builds on the first one's block; the primary key
on `height` is the backstop that would refuse a second block at the same height. If the
client dies mid-append, the server rolls the transaction back.

The tables are created in the connection's current schema (creation is serialised by a
transaction-level advisory lock, since `CREATE TABLE IF NOT EXISTS` is not safe against a
concurrent twin).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import psycopg

from p2pmarket.errors import LedgerError
from p2pmarket.ledger.store import (
    Append,
    SqlReads,
    Tip,
    redact_url,
)

__all__ = ["PostgresStore"]

_SCHEMA_LOCK = 0x70327061_6C656467  # "p2paledg": an arbitrary advisory-lock key

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS ledger_blocks (
        height BIGINT PRIMARY KEY,
        block_hash TEXT NOT NULL UNIQUE,
        header TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ledger_records (
        height BIGINT NOT NULL,
        position INTEGER NOT NULL,
        record_id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (height, position)
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_records_by_id "
    "ON ledger_records (record_id text_pattern_ops)",
    """CREATE TABLE IF NOT EXISTS ledger_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        height BIGINT NOT NULL,
        block_hash TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
)


class PostgresStore(SqlReads):
    """A ledger in a PostgreSQL database (see the module's docstring)."""

    _param = "%s"

    def __init__(self, url: str, *, create: bool = False, connect_timeout: int = 10) -> None:
        self._url = redact_url(url)
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            message = " ".join(str(exc).split())
            raise LedgerError(f"cannot connect to {self._url}: {message}") from exc
        try:
            tables = self._tables()
            if tables == {"ledger_blocks", "ledger_records", "ledger_head"}:
                pass
            elif create:
                with self._db.transaction():
                    self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    for statement in SCHEMA:
                        self._db.execute(statement)
            elif "ledger_blocks" not in tables:  # a partial set is for `verify` to report
                raise LedgerError(f"{self._url} holds no p2pmarket ledger")
        except psycopg.Error as exc:
            self._db.close()
            raise LedgerError(f"cannot open {self._url}: {exc}") from exc
        except LedgerError:
            self._db.close()
            raise

    def _tables(self) -> set[str]:
        """Which of the ledger's tables the connection's schema search path finds."""
        names = ("ledger_blocks", "ledger_records", "ledger_head")
        row = self._db.execute(
            "SELECT " + ", ".join(f"to_regclass('{n}') IS NOT NULL" for n in names)
        ).fetchone()
        return {n for n, found in zip(names, row or (), strict=False) if found}

    @property
    def url(self) -> str:
        return self._url

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise LedgerError(f"cannot read {self._url}: {exc}") from exc

    def append(self, build: Callable[[Tip], Append]) -> None:
        db = self._db
        try:
            with db.transaction():
                db.execute("LOCK TABLE ledger_blocks IN SHARE ROW EXCLUSIVE MODE")
                tip = self.tip()
                pending = build(tip)
                with db.cursor() as cursor:
                    for block in pending.blocks:
                        cursor.execute(
                            "INSERT INTO ledger_blocks (height, block_hash, header, signature) "
                            "VALUES (%s, %s, %s, %s)",
                            (
                                block.height,
                                block.block_hash,
                                block.header.canonical().decode("utf-8"),
                                block.signature,
                            ),
                        )
                        with cursor.copy(
                            "COPY ledger_records (height, position, record_id, body) FROM STDIN"
                        ) as copy:
                            for i, record in enumerate(block.records):
                                copy.write_row((block.height, i, record.record_id, record.body))
                    last_block = pending.blocks[-1]
                    cursor.execute(
                        "INSERT INTO ledger_head (id, height, block_hash, signature) "
                        "VALUES (1, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                        "height = excluded.height, block_hash = excluded.block_hash, "
                        "signature = excluded.signature",
                        (last_block.height, last_block.block_hash, pending.head_signature),
                    )
        except psycopg.Error as exc:
            raise LedgerError(f"cannot append to {self._url}: {exc}") from exc

    def _find_record_rows(self, prefix: str) -> list[Any]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self._query(
            "SELECT height, position, record_id FROM ledger_records "
            "WHERE record_id LIKE %s ORDER BY height, position",
            (pattern + "%",),
        )

    def damage(self) -> str | None:
        return None  # the server checks its own pages (and checksums, when enabled)

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
