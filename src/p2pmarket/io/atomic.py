"""The one atomic writer: every output file of p2pmarket is written through a temporary file
in the same directory and a rename, so a reader sees the old file or the whole new one, never
a part. Output files are readable by everyone (0644) unless asked otherwise (a private key is
0600); the temporary file is private from the start.

Nothing is ever written through a symbolic link (docs/security.md):

- the temporary file has an unpredictable name (`tempfile.mkstemp`: `.NAME.XXXXXXXX.tmp`) and
  is created with `O_CREAT | O_EXCL | O_NOFOLLOW`, so a link planted beside the target, at any
  name, is never opened;
- the rename (`os.replace`, rename(2)) replaces the directory entry at the target: a symbolic
  link there, dangling or not, is replaced by the new file and the file it pointed to is left
  as it was. Whether a link at the target may be replaced at all is the caller's check
  (`io.outputs.check_output_file`: only with `--force`).

The directories above the target are the caller's own path and are followed as given.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_bytes", "atomic_text", "write_bytes_atomic", "write_text_atomic"]


@contextmanager
def _temporary(path: Path, mode: int) -> Iterator[int]:
    """The descriptor of a new private file beside `path` (unpredictable name, created with
    O_EXCL | O_NOFOLLOW), given `mode` and renamed to `path` when the block ends without an
    error, removed otherwise. The block closes the descriptor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # whatever the umask
        yield fd
        os.replace(tmp, path)  # replaces a link at `path`, never writes through it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_bytes(path: Path, *, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A binary file to write into; it appears at `path` (with `mode`) only when the block
    ends without an error. Nested blocks publish their files together, the innermost first."""
    with _temporary(path, mode) as fd, os.fdopen(fd, "wb") as handle:
        yield handle


@contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """A UTF-8 text file to write into; it appears at `path` only when the block ends without
    an error (streamed: for outputs too large to hold in memory, such as a ledger export)."""
    with _temporary(path, 0o644) as fd, os.fdopen(fd, "w", encoding="utf-8") as handle:
        yield handle


def write_bytes_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path`: all or nothing."""
    with atomic_bytes(path, mode=mode) as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path`: all or nothing."""
    write_bytes_atomic(path, text.encode("utf-8"))
