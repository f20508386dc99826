"""Output locations, all or nothing: the directories of `run --out`, `compare --out`,
`paper --out` and `report DIR`, and single output files (`cases export`, `ledger export`).

A directory is written whole into a hidden staging sibling (`.NAME.p2pmarket-XXXX` beside
`NAME`) and renamed into place when every file is there; a failure or Ctrl-C part-way
removes the staging directory and leaves `NAME` as it was. A directory p2pmarket wrote
carries a marker file (`.p2pmarket.json`: what wrote it and when, and the files it holds),
and only such a directory is replaced, whole, and only when asked (`force`): files of an
earlier run are never mixed with a new one, and a directory of other files is never touched.

Every check that can fail is made by `OutputDirectory.check()` before any work is done, and
every `OSError` of writing is an `OutputError` naming the option and the path (exit code 2).

Symbolic links (docs/security.md): an output directory that is a symbolic link is refused
(give the directory it points to); an output file that is one counts as an existing file and
is replaced, the link itself and not the file it points to, only with `force`. The staging
and the set-aside directories have unpredictable names (`tempfile.mkdtemp`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from p2pmarket.errors import OptionError
from p2pmarket.io.atomic import write_text_atomic

__all__ = ["MARKER", "OutputDirectory", "OutputError", "check_output_file", "writing"]

MARKER = ".p2pmarket.json"
"""The marker file of a directory p2pmarket wrote (JSON: `written_by`, `written_at`, `files`)."""


class OutputError(OptionError):
    """An output location cannot be written: it names the option and the path."""

    def __init__(self, option: str, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(option, f"cannot write {str(path)!r}: {reason}")


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


@contextmanager
def writing(option: str, path: Path) -> Iterator[None]:
    """Turn an `OSError` raised while writing `path` (a file, or a directory and what is in
    it) into one `OutputError` naming `path`."""
    try:
        yield
    except OSError as exc:
        raise OutputError(option, path, _reason(exc)) from None


def _is_p2pmarket_dir(path: Path) -> bool:
    return (path / MARKER).is_file()


def check_output_file(path: Path, *, option: str, force: bool = False) -> None:
    """Refuse, before any work, an output file that cannot be written: `path` is a
    directory, a part of its directory is a file, the nearest existing directory cannot be
    written, or it exists and `force` is off. Missing directories are created on writing.
    A symbolic link at `path` (dangling or not) exists: `force` replaces the link itself."""
    if path.is_symlink():
        if not force:
            raise OptionError(
                option,
                f"{str(path)!r} exists (a symbolic link); give --force to replace the link "
                "(the file it points to is left as it is)",
            )
    elif path.is_dir():
        raise OptionError(option, f"{str(path)!r} is a directory; give a file name")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OptionError(option, f"{str(parent)!r} exists and is not a directory")
    nearest = next(p for p in path.absolute().parents if p.exists())
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise OutputError(option, nearest, "permission denied")
    if path.exists() and not force:
        raise OptionError(option, f"{str(path)!r} exists; give --force to replace it")


@dataclass(frozen=True)
class OutputDirectory:
    """The output directory `path` of the command `written_by`, given with `option`."""

    path: Path
    written_by: str
    option: str = "--out"
    force: bool = False
    keep_existing: bool = False
    """Start from a copy of what `path` holds and add to it (`report DIR` adds a report to
    a run directory); the whole directory is still replaced at once."""

    def check(self) -> None:
        """Refuse, before any work is done, a location the result could not be written to."""
        path = self.path
        if path.is_symlink():
            raise OptionError(
                self.option,
                f"{str(path)!r} is a symbolic link; give the directory itself "
                f"({os.path.realpath(path)!r}) or a new one",
            )
        for parent in (path, *path.parents):
            if parent.exists() and not parent.is_dir():
                raise OptionError(self.option, f"{str(parent)!r} exists and is not a directory")
        if path.is_dir() and any(path.iterdir()) and not self.keep_existing:
            if not _is_p2pmarket_dir(path):
                raise OptionError(
                    self.option,
                    f"{str(path)!r} is not empty and was not written by p2pmarket; "
                    "give an empty or new directory",
                )
            if not self.force:
                raise OptionError(
                    self.option,
                    f"{str(path)!r} holds an earlier p2pmarket output; "
                    "give --force to replace it whole",
                )
        parent = next(p for p in path.absolute().parents if p.exists())
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(self.option, parent, "permission denied")

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A new directory to write the whole output into; it replaces `path` when the block
        ends without an error and is removed otherwise (Ctrl-C included)."""
        self.check()
        with writing(self.option, self.path):
            parent = self.path.absolute().parent
            parent.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.path.name}.p2pmarket-"))
        try:
            with writing(self.option, self.path):
                os.chmod(stage, 0o755)
                if self.keep_existing and self.path.is_dir():
                    shutil.copytree(self.path, stage, symlinks=True, dirs_exist_ok=True)
                yield stage
                self._mark(stage)
                self._swap(stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise

    def _mark(self, stage: Path) -> None:
        files = sorted(
            str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file() and p.name != MARKER
        )
        marker = {
            "written_by": self.written_by,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
        }
        write_text_atomic(stage / MARKER, json.dumps(marker, indent=2) + "\n")

    def _swap(self, stage: Path) -> None:
        """Put `stage` in the place of `path`; Ctrl-C waits until both renames are done. An
        earlier output is first set aside onto a new empty directory (rename(2) replaces an
        empty directory), so no name it goes to can have been planted."""
        if self.path.is_symlink():  # planted since the check
            raise OutputError(self.option, self.path, "it has become a symbolic link")
        parent = self.path.absolute().parent
        old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{self.path.name}.p2pmarket-old-"))
        moved = False
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if self.path.is_dir():
                os.replace(self.path, old)
                moved = True
            os.replace(stage, self.path)
        except OSError:
            if moved and not os.path.lexists(self.path):
                os.replace(old, self.path)  # the earlier output back in its place
            elif not moved:
                with contextlib.suppress(OSError):
                    old.rmdir()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        shutil.rmtree(old, ignore_errors=True)
