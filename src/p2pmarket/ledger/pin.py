"""The ledger's pinned key: the public key a ledger is verified against by default, kept
outside the tables that anyone with write access to the database could rewrite.

- SQLite: the file `LEDGER.pub` beside the database file (`ledger.db` → `ledger.db.pub`),
  written (read-only, 64 hexadecimal digits) when the first append commits, and written again
  by an append if it is missing (only by the holder of the genesis block's private key). It is
  an ordinary public key file: `--pubkey ledger.db.pub` reads it too.
- PostgreSQL: no pin. A database server has no "beside" that a client could find, and a table
  of the same database is as writable as the blocks; the key must be given (`--pubkey`), or a
  head kept elsewhere (`--head`) names it.

See docs/ledger.md, "Threat model".
"""

from __future__ import annotations

from pathlib import Path

from p2pmarket.errors import LedgerError
from p2pmarket.io.atomic import write_bytes_atomic
from p2pmarket.ledger.keys import load_public_key
from p2pmarket.ledger.store import sqlite_path, store_kind

__all__ = ["pin_path", "pinned_key", "write_pin"]


def pin_path(url: str) -> Path | None:
    """Where the key of the ledger at `url` is pinned (None: this kind of store has no pin)."""
    if store_kind(url) != "sqlite":
        return None
    database = Path(sqlite_path(url))
    return database.with_name(database.name + ".pub")


def pinned_key(url: str) -> str | None:
    """The pinned key (hex), or None when there is no pin file (or no pin for this store)."""
    path = pin_path(url)
    if path is None or not (path.exists() or path.is_symlink()):
        return None
    return load_public_key(path)


def write_pin(url: str, public_key: str) -> None:
    """Pin `public_key` (hex) for the ledger at `url` if it has no pin yet (read-only file)."""
    path = pin_path(url)
    if path is None or path.exists() or path.is_symlink():
        return
    try:
        write_bytes_atomic(path, (public_key + "\n").encode("ascii"), mode=0o444)
    except OSError as exc:
        raise LedgerError(f"cannot pin the ledger's key in {path}: {exc.strerror}") from exc
