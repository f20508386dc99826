"""Where blocks live: the `LedgerStore` protocol, and `open_store(url)` that picks one.

- `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (SQLAlchemy's convention), or a
  plain file path: `SqliteStore`, one file, standard library only.
- `postgresql://user@host:port/database` (or `postgres://`; any libpq URL): `PostgresStore`,
  psycopg 3. The tables are made in the connection's current schema, so one database can hold
  several ledgers (`?options=-csearch_path%3Dname`).

Every store keeps three tables: `ledger_blocks` (height, block hash, header text, signature),
`ledger_records` (height, position, record id, record text) and `ledger_head` (one row: the
last block's height and hash, signed). A store knows nothing of hashes and signatures: it
appends what it is given in one transaction, under a lock that orders concurrent appenders,
and reads back what it holds. It reads strictly: a value of the wrong type (a NULL, text where
a height belongs, bytes where text belongs: SQLite keeps whatever it is given) is an
`unreadable` `LedgerIntegrityError` naming the block, never coerced into something else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self
from urllib.parse import urlsplit, urlunsplit

from p2pmarket.errors import LedgerError, LedgerIntegrityError
from p2pmarket.ledger.blocks import Block
from p2pmarket.ledger.reasons import Reason

__all__ = [
    "Append",
    "LedgerStore",
    "SqlReads",
    "StoredBlock",
    "StoredHead",
    "StoredRecord",
    "Tip",
    "open_store",
    "redact_url",
    "sqlite_path",
    "store_kind",
]


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its position in the block, its id and its text."""

    position: int
    record_id: str
    body: str


@dataclass(frozen=True)
class StoredBlock:
    """A block as stored, unchecked: `height` is the row's key, which `verify` compares with
    the height inside the header."""

    height: int
    block_hash: str
    header: str
    signature: str
    records: tuple[StoredRecord, ...]


@dataclass(frozen=True)
class StoredHead:
    """The signed pointer to the ledger's last block."""

    height: int
    block_hash: str
    signature: str


@dataclass(frozen=True)
class Tip:
    """What an append builds on, read under the append's lock: the block at the greatest
    stored height (with its records), the stored hash of the block just below it, the genesis
    block's header text (it holds the ledger's key) and the head. An empty ledger has none of
    them; an append checks the rest against each other before it builds on them."""

    last: StoredBlock | None
    previous_hash: str | None
    genesis_header: str | None
    head: StoredHead | None

    @property
    def empty(self) -> bool:
        """Nothing stored at all: no block and no head."""
        return self.last is None and self.head is None and self.genesis_header is None


@dataclass(frozen=True)
class Append:
    """What one append writes: consecutive blocks after the tip (the genesis block and the
    first block when the ledger is empty), and the head's signature over the last of them."""

    blocks: tuple[Block, ...]
    head_signature: str


class LedgerStore(Protocol):
    """A place to append blocks to and read them from."""

    @property
    def url(self) -> str:
        """The store's URL, with any password removed."""
        ...

    def append(self, build: Callable[[Tip], Append]) -> None:
        """In one transaction, under a lock that serialises appenders: read the tip, call
        `build` with it, and write what it returns, all or nothing. An error raised by `build`
        aborts the transaction and is raised again."""
        ...

    def tip(self) -> Tip:
        """The tip as an append would read it (without the lock: for checks before work)."""
        ...

    def head(self) -> StoredHead | None:
        """The head row, or None if there is none."""
        ...

    def blocks(
        self, up_to: int | None = None, *, after: int = -1, with_records: bool = True
    ) -> Iterator[StoredBlock]:
        """The stored blocks by increasing height, above `after` and up to height `up_to`
        when given."""
        ...

    def block(self, height: int) -> StoredBlock | None:
        """The block stored at `height`, with its records."""
        ...

    def find_record(self, record_id: str) -> list[tuple[int, int, str]]:
        """(height, position, record id) of every record whose id starts with `record_id`."""
        ...

    def damage(self) -> str | None:
        """What is wrong with the storage itself, as far as the store can tell (SQLite: its
        own integrity check, which also covers indexes), or None."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class SqlReads:
    """The read queries both SQL stores share; they differ only in the parameter placeholder
    (`?` for sqlite3, `%s` for psycopg), which a subclass sets as `_param`, and in `_query`."""

    _param = "?"

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self._param)

    def head(self) -> StoredHead | None:
        rows = self._query("SELECT height, block_hash, signature FROM ledger_head WHERE id = 1")
        if not rows:
            return None
        height, block_hash, signature = rows[0]
        h = _int(height, None, "the head's height")
        return StoredHead(
            h, _text(block_hash, h, "the head's hash"), _text(signature, h, "the head's signature")
        )

    def _records(self, height: int) -> tuple[StoredRecord, ...]:
        rows = self._query(
            self._sql(
                "SELECT position, record_id, body FROM ledger_records WHERE height = ? "
                "ORDER BY position"
            ),
            (height,),
        )
        return tuple(
            StoredRecord(
                _int(p, height, "a record's position"),
                _text(i, height, "a record's id"),
                _text(b, height, "a record's text"),
            )
            for p, i, b in rows
        )

    def _block_row(self, row: tuple[Any, ...], with_records: bool) -> StoredBlock:
        height, block_hash, header, signature = row
        h = _int(height, None, "a block's height")
        return StoredBlock(
            h,
            _text(block_hash, h, "the block's hash"),
            _text(header, h, "the block's header"),
            _text(signature, h, "the block's signature"),
            self._records(h) if with_records else (),
        )

    def blocks(
        self, up_to: int | None = None, *, after: int = -1, with_records: bool = True
    ) -> Iterator[StoredBlock]:
        limit = up_to if up_to is not None else 2**62
        rows = self._query(
            self._sql(
                "SELECT height, block_hash, header, signature FROM ledger_blocks "
                "WHERE height > ? AND height <= ? ORDER BY height"
            ),
            (after, limit),
        )
        for row in rows:
            yield self._block_row(row, with_records)

    def block(self, height: int) -> StoredBlock | None:
        rows = self._query(
            self._sql(
                "SELECT height, block_hash, header, signature FROM ledger_blocks WHERE height = ?"
            ),
            (height,),
        )
        return self._block_row(rows[0], True) if rows else None

    def tip(self) -> Tip:
        """The tip (see `Tip`): a few indexed reads, however long the chain."""
        rows = self._query(
            "SELECT height, block_hash, header, signature FROM ledger_blocks "
            "ORDER BY height DESC LIMIT 1"
        )
        last = self._block_row(rows[0], True) if rows else None
        previous_hash = genesis_header = None
        if last is not None and last.height > 0:
            below = self._query(
                self._sql("SELECT block_hash FROM ledger_blocks WHERE height = ?"),
                (last.height - 1,),
            )
            if below:
                previous_hash = _text(below[0][0], last.height - 1, "the block's hash")
        if last is not None:
            genesis = self._query("SELECT header FROM ledger_blocks WHERE height = 0")
            if genesis:
                genesis_header = _text(genesis[0][0], 0, "the block's header")
        return Tip(last, previous_hash, genesis_header, self.head())

    def find_record(self, record_id: str) -> list[tuple[int, int, str]]:
        return [
            (
                _int(h, None, "a record's height"),
                _int(p, None, "a record's position"),
                _text(i, None, "a record's id"),
            )
            for h, p, i in self._find_record_rows(record_id.lower())
        ]

    def _find_record_rows(self, prefix: str) -> list[Any]:
        raise NotImplementedError


def _unreadable(height: int | None, what: str, value: Any, kind: str) -> LedgerIntegrityError:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return LedgerIntegrityError(
        height, Reason.UNREADABLE.value, f"{what} is {shown} ({type(value).__name__}), not {kind}"
    )


def _int(value: Any, height: int | None, what: str) -> int:
    """A stored integer as it is; anything else (NULL, text, a real, bool) is unreadable."""
    if type(value) is not int:
        raise _unreadable(height, what, value, "an integer")
    return value


def _text(value: Any, height: int | None, what: str) -> str:
    """Stored text as it is; anything else (NULL, a number, bytes) is unreadable."""
    if type(value) is not str:
        raise _unreadable(height, what, value, "text")
    return value


def redact_url(url: str) -> str:
    """`url` without a password, fit for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///` URL (or a plain path)."""
    if "://" not in url:
        return url
    match = re.fullmatch(r"sqlite:///(.+)", url)
    if match is None:
        raise LedgerError(
            f"{url!r} is not a SQLite URL: write sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    return match.group(1)


def store_kind(url: str) -> Literal["sqlite", "postgresql"]:
    """Which store a URL names; `LedgerError` for a URL of no known kind."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "sqlite"
    if scheme == "sqlite":
        sqlite_path(url)
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise LedgerError(
        f"{redact_url(url)!r}: unknown ledger URL scheme {scheme!r} "
        "(use sqlite:///FILE or postgresql://...)"
    )


def open_store(url: str, *, create: bool = False) -> LedgerStore:
    """The store at `url` (see the module's docstring). With `create`, an absent ledger is
    made (empty: the first append writes its genesis block); without, it must exist."""
    if store_kind(url) == "sqlite":
        from p2pmarket.ledger.sqlite_store import SqliteStore

        return SqliteStore(sqlite_path(url), create=create)
    try:
        from p2pmarket.ledger.postgres_store import PostgresStore
    except ImportError as exc:
        raise LedgerError(
            f"a PostgreSQL ledger needs psycopg 3: pip install 'psycopg[binary]' ({exc})"
        ) from exc
    return PostgresStore(url, create=create)
