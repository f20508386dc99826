"""The one atomic writer: every output file of p2pmarket is written through a temporary file
in the same directory and a rename, so a reader sees the old file or the whole new one, never
a part. Output files are readable by everyone (0644; the temporary file starts private)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_text", "write_bytes_atomic", "write_text_atomic"]


@contextmanager
def _temporary(path: Path) -> Iterator[tuple[int, str]]:
    """A private temporary file beside `path` (its descriptor and name), renamed to `path`
    when the block ends without an error and removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """A UTF-8 text file to write into; it appears at `path` only when the block ends without
    an error (streamed: for outputs too large to hold in memory, such as a ledger export)."""
    with _temporary(path) as (fd, _), os.fdopen(fd, "w", encoding="utf-8") as handle:
        yield handle


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path`: all or nothing."""
    with _temporary(path) as (fd, _), os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path`: all or nothing."""
    write_bytes_atomic(path, text.encode("utf-8"))
