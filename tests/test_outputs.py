"""Every command that writes a path, against every kind of bad output location: one line on
stderr, the documented exit code, and nothing left behind (issue 11, items 1, 3, 4, 13, 16).

Locations are made bad for real where the machine allows it: an immutable directory
(`chattr +i`; a read-only directory when not root), a full filesystem (a tiny tmpfs filled to
the last byte). Where it does not (no `chattr`, no right to mount), the same `OSError` is
injected where the operating system would raise it, and the test says which it used.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from p2pmarket.cli.main import app
from p2pmarket.core.solve import SolverOptions
from p2pmarket.errors import OptionError
from p2pmarket.io.outputs import MARKER

CASE = "five-peer-case-2"


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (hidden ones included) with its content (None: a directory)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _one_line_error(result: Result, code: int, *words: str) -> None:
    __tracebackhide__ = True
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], (word, lines[0])


# --- bad locations, for real where possible ----------------------------------------------


def _can_chattr(tmp: Path) -> bool:
    probe = tmp / ".chattr-probe"
    probe.mkdir()
    try:
        done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True)
        if done.returncode != 0:
            return False
        subprocess.run(["chattr", "-i", str(probe)], check=True)
        return True
    except FileNotFoundError:
        return False
    finally:
        probe.rmdir()


@contextmanager
def unwritable(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`directory` made unwritable: immutable, read-only for a non-root user, or (neither
    possible) every attempt to create something in it failing with EACCES."""
    directory.mkdir(parents=True, exist_ok=True)
    if _can_chattr(directory.parent):
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        try:
            yield "immutable directory"
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        return
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield "read-only directory"
        finally:
            directory.chmod(0o755)
        return
    real_access = os.access

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if Path(str(path)).absolute() == directory.absolute() and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    yield "injected EACCES"


@contextmanager
def full_filesystem(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`directory` on a filesystem with no byte left: a 64 KiB tmpfs filled by a file, or
    (no right to mount) every write of more than nothing failing with ENOSPC."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = (
        shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)],
            capture_output=True,
        ).returncode
        == 0
    )
    if mounted:
        try:
            with open(directory / "filler", "wb", buffering=0) as filler:
                try:
                    while True:
                        filler.write(b"\0" * 512)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            yield "full tmpfs"
        finally:
            subprocess.run(["umount", "--lazy", str(directory)], check=True)
        return
    (directory / "filler").write_bytes(b"")

    class Full:
        """A file on a full disk: every write fails as the kernel would make it fail."""

        def __init__(self, fd: int, *args: object, **kwargs: object) -> None:
            self.fd = fd

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            os.close(self.fd)

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", Full)
    yield "injected ENOSPC"


# --- the commands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A command writing `location` (a directory, or a file when `is_file`)."""

    name: str
    args: Callable[[Path, Path], list[object]]  # (location, work directory) -> arguments
    is_file: bool = False
    needs: Callable[[Path], None] | None = None  # prepares the work directory

    def __str__(self) -> str:
        return self.name


def _ledger(work: Path) -> None:
    key = work / "manager.key"
    assert _invoke("ledger", "keygen", "--out", key).exit_code == 0
    done = _invoke("run", CASE, "--ledger", f"sqlite:///{work / 'ledger.db'}", "--key", key)
    assert done.exit_code == 0, done.output


COMMANDS = [
    Command("run --out", lambda out, _: ["run", CASE, "--out", out]),
    Command("run --out --report", lambda out, _: ["run", CASE, "--out", out, "--report"]),
    Command(
        "compare --out",
        lambda out, _: ["compare", "five-peer-case-1", CASE, "--design", "p2p", "--out", out],
    ),
    Command("cases export --out", lambda out, _: ["cases", "export", CASE, "--out", out], True),
    Command(
        "ledger export --out",
        lambda out, work: ["ledger", "export", f"sqlite:///{work / 'ledger.db'}", "--out", out],
        True,
        _ledger,
    ),
    Command("ledger keygen --out", lambda out, _: ["ledger", "keygen", "--out", out], True),
    Command("run --solver-log", lambda out, _: ["run", CASE, "--solver-log", out], True),
]
IDS = [c.name for c in COMMANDS]
PAPER = Command("paper --out", lambda out, _: ["paper", "--out", out])
"""Clears every paper case: only where a location is refused before any work, and once
where the disk fills while writing."""
EVERY = [*COMMANDS, PAPER]
EVERY_IDS = [c.name for c in EVERY]


def _prepare(command: Command, tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    if command.needs is not None:
        command.needs(work)
    return work, tmp_path / "place"


def _location(command: Command, place: Path) -> Path:
    return place / ("out.file" if command.is_file else "out")


@pytest.mark.parametrize("command", EVERY, ids=EVERY_IDS)
def test_an_unwritable_location_is_one_line_and_leaves_nothing(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, place = _prepare(command, tmp_path)
    with unwritable(place, monkeypatch) as how:
        before = _snapshot(place)
        result = _invoke(*command.args(_location(command, place), work))
        after = _snapshot(place)
    _one_line_error(result, 2, str(place))
    assert after == before, how


@pytest.mark.parametrize("command", EVERY, ids=EVERY_IDS)
def test_a_full_filesystem_is_one_line_and_leaves_nothing(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, place = _prepare(command, tmp_path)
    with full_filesystem(place, monkeypatch) as how:
        before = _snapshot(place)
        result = _invoke(*command.args(_location(command, place), work))
        after = _snapshot(place)
    if command.name == "run --solver-log":
        # HiGHS writes its log itself: a log it cannot write does not stop the market
        assert result.exit_code == 0, result.output
        return
    _one_line_error(result, 2)
    assert "space" in result.stderr, how
    assert after == before, how


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_a_missing_directory_is_created(command: Command, tmp_path: Path) -> None:
    work, place = _prepare(command, tmp_path)
    location = _location(command, place / "new" / "deeper")
    result = _invoke(*command.args(location, work))
    if command.name == "run --solver-log":  # HiGHS cannot create it: refused up front
        _one_line_error(result, 2, "--solver-log", "does not exist")
        return
    assert result.exit_code == 0, result.output
    assert location.is_file() if command.is_file else (location / MARKER).is_file()


@pytest.mark.parametrize("command", EVERY, ids=EVERY_IDS)
def test_a_file_where_a_directory_is_expected_is_one_line(command: Command, tmp_path: Path) -> None:
    work, place = _prepare(command, tmp_path)
    place.mkdir()
    (place / "blocker").write_text("not a directory\n")
    before = _snapshot(place)
    result = _invoke(*command.args(_location(command, place / "blocker"), work))
    _one_line_error(result, 2, "blocker")
    assert _snapshot(place) == before


OCCUPIED = [c for c in EVERY if c.name != "run --solver-log"]  # a log is replaced


@pytest.mark.parametrize("command", OCCUPIED, ids=[c.name for c in OCCUPIED])
def test_an_occupied_location_is_refused_untouched(command: Command, tmp_path: Path) -> None:
    work, place = _prepare(command, tmp_path)
    location = _location(command, place)
    if command.is_file:
        place.mkdir()
        location.write_text("somebody's file\n")
    else:
        location.mkdir(parents=True)
        (location / "notes.txt").write_text("somebody's notes\n")
    before = _snapshot(place)
    result = _invoke(*command.args(location, work))
    _one_line_error(result, 2, str(location))
    assert _snapshot(place) == before


DIRECTORY_COMMANDS = [c for c in COMMANDS if not c.is_file]


@pytest.mark.parametrize("command", DIRECTORY_COMMANDS, ids=[c.name for c in DIRECTORY_COMMANDS])
def test_an_earlier_output_is_replaced_whole_only_with_force(
    command: Command, tmp_path: Path
) -> None:
    work, place = _prepare(command, tmp_path)
    out = _location(command, place)
    assert _invoke(*command.args(out, work)).exit_code == 0
    (out / "stale.parquet").write_bytes(b"from an earlier run")
    before = _snapshot(place)
    _one_line_error(_invoke(*command.args(out, work)), 2, "--force")
    assert _snapshot(place) == before
    result = _invoke(*command.args(out, work), "--force")
    assert result.exit_code == 0, result.output
    assert not (out / "stale.parquet").exists()
    marker = json.loads((out / MARKER).read_text())
    listed = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert marker["files"] == [name for name in listed if name != MARKER]
    assert sorted(p.name for p in place.iterdir()) == ["out"]  # no staging left beside it


def test_a_link_at_an_output_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    """A symbolic link, dangling or not, is an existing file: refused without --force; with
    it, the link is replaced and what it points to is untouched (docs/security.md)."""
    victim = tmp_path / "victim.yaml"
    victim.write_text("somebody's file\n")
    for to in (victim, tmp_path / "absent.yaml"):
        out = tmp_path / "case.yaml"
        out.symlink_to(to)
        _one_line_error(_invoke("cases", "export", CASE, "--out", out), 2, "symbolic link")
        assert out.is_symlink()
        assert _invoke("cases", "export", CASE, "--out", out, "--force").exit_code == 0
        assert out.is_file() and not out.is_symlink()
        out.unlink()
    assert victim.read_text() == "somebody's file\n"
    assert not (tmp_path / "absent.yaml").exists()


def test_a_linked_output_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    out = tmp_path / "out"
    out.symlink_to(real)
    _one_line_error(_invoke("run", CASE, "--out", out, "--force"), 2, "symbolic link", str(real))
    assert list(real.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "real"]


def test_files_are_replaced_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "case.yaml"
    assert _invoke("cases", "export", CASE, "--out", out).exit_code == 0
    out.write_text("edited by hand\n")
    _one_line_error(_invoke("cases", "export", CASE, "--out", out), 2, "--force")
    assert out.read_text() == "edited by hand\n"
    assert _invoke("cases", "export", CASE, "--out", out, "--force").exit_code == 0
    assert out.read_text().startswith("name:")


def test_the_report_command_adds_to_a_run_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    assert _invoke("run", CASE, "--out", out).exit_code == 0
    before = _snapshot(tmp_path)
    with unwritable(out, monkeypatch):
        _one_line_error(_invoke("report", out), 2)
    assert _snapshot(tmp_path) == before
    _one_line_error(_invoke("report", tmp_path / "nothing"), 2, "nothing")
    result = _invoke("report", out)
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()
    assert set(_snapshot(tmp_path)) > set(before)


def test_a_ledger_of_another_key_is_refused_before_any_work(tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    for name in ("first.key", "second.key"):
        assert _invoke("ledger", "keygen", "--out", tmp_path / name).exit_code == 0
    assert _invoke("run", CASE, "--ledger", ledger, "--key", tmp_path / "first.key").exit_code == 0
    out = tmp_path / "run"
    result = _invoke(
        "run", CASE, "--out", out, "--ledger", ledger, "--key", tmp_path / "second.key"
    )
    _one_line_error(result, 2, "belongs to key")
    assert not out.exists()
    assert result.stdout == ""  # refused before clearing: no summary printed


# --- solver options (item 5) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--threads", "100000"], "--threads"),
        (["--threads", "0"], "--threads"),
        (["--threads", "-3"], "--threads"),
        (["--time-limit", "0"], "--time-limit"),
        (["--time-limit", "inf"], "--time-limit"),
        (["--time-limit", "nan"], "--time-limit"),
        (["--solver-log", "/no/such/directory/highs.log"], "--solver-log"),
    ],
)
def test_solver_options_are_checked(args: list[str], option: str) -> None:
    _one_line_error(_invoke("run", CASE, *args), 2, option)


def test_a_log_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    _one_line_error(_invoke("run", CASE, "--solver-log", tmp_path), 2, "--solver-log")


# --- Ctrl-C (item 3) -------------------------------------------------------------------------


def _interrupt_while_writing(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run `p2pmarket run` into `out` with a report and send SIGINT as soon as it has
    started writing (its staging directory beside `out` holds a file)."""
    command = ["run", "seventeen-peer-case-3", "--out", str(out), "--report", *extra]
    process = subprocess.Popen(
        [sys.executable, "-m", "p2pmarket", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        staged = list(out.parent.glob(f".{out.name}.p2pmarket-*/summary.json"))
        if staged:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.01)
    stdout, stderr = process.communicate(timeout=120)
    assert staged, f"the run ended before it was interrupted: {stderr}"
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _is_complete_run(out: Path) -> bool:
    """`out` holds a whole run: its marker, and every file the marker lists, and no other."""
    if not (out / MARKER).is_file():
        return False
    listed = json.loads((out / MARKER).read_text())["files"]
    present = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return "report.html" in listed and present == sorted([*listed, MARKER])


def test_ctrl_c_while_writing_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = _interrupt_while_writing(out)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == ["error: interrupted; no partial output was left"]
    # nothing; or, had Ctrl-C come during the final rename (it waits for it), the whole run
    assert list(tmp_path.iterdir()) == [] or (
        [p.name for p in tmp_path.iterdir()] == ["run"] and _is_complete_run(out)
    )


def test_ctrl_c_while_replacing_keeps_the_previous_run_whole(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _invoke("run", CASE, "--out", out).exit_code == 0
    before = _snapshot(tmp_path)
    done = _interrupt_while_writing(out, "--force")
    assert done.returncode == 130, done.stderr
    assert _snapshot(tmp_path) == before or (
        [p.name for p in tmp_path.iterdir()] == ["run"] and _is_complete_run(out)
    )


def test_solver_options_are_checked_in_the_library() -> None:
    for fields, name in (
        ({"threads": 100_000}, "threads"),
        ({"workers": 0}, "workers"),
        ({"time_limit_s": -1.0}, "time_limit_s"),
        ({"primal_tolerance": 0.5}, "primal_tolerance"),
        ({"dual_tolerance": 0.0}, "dual_tolerance"),
        ({"algorithm": "fastest"}, "algorithm"),
    ):
        with pytest.raises(OptionError) as raised:
            SolverOptions(**fields)  # type: ignore[arg-type]
        assert raised.value.field == name
    assert SolverOptions(threads=2, time_limit_s=5, primal_tolerance=1e-7).threads == 2


@pytest.mark.parametrize("args", [["report", "/no/such/run"], ["compare", "/no/such/market.yaml"]])
def test_an_error_after_a_progress_bar_is_one_line_and_nothing_else(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "p2pmarket", *args], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: ")
