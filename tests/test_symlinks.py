"""No write of p2pmarket ever lands outside its target through a symbolic link (issue 12,
item 6; docs/security.md).

Every writer is run against links planted where an attacker sharing the directory would
plant them: at the target itself (to a file, dangling, to a directory), at the key pair's
`.pub`, at the temporary names a naive writer would use, and an output directory that is a
link. Each case either succeeds by replacing the link or is refused with one line, and the
files the links point to are left exactly as they were (or not created). Each writer's test
prints how many writes went through a planted link: the target is 0.

A second check watches the system calls: every file p2pmarket creates is opened with
`O_CREAT | O_EXCL | O_NOFOLLOW` (through `tempfile.mkstemp`), never with a plain `open()`.
"""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from p2pmarket.cli.main import app
from p2pmarket.io.atomic import write_text_atomic
from p2pmarket.io.outputs import MARKER, OutputDirectory
from p2pmarket.ledger.keys import generate_keypair
from p2pmarket.ledger.store import open_store

CASE = "five-peer-case-2"
VICTIM = b"somebody else's file\n"


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(result: Result, *words: str) -> None:
    __tracebackhide__ = True
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])


def _tree(root: Path) -> dict[str, bytes | str | None]:
    """Everything under `root`: a file's bytes, a link's target, None for a directory."""
    out: dict[str, bytes | str | None] = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink():
            out[key] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[key] = None
        else:
            out[key] = p.read_bytes()
    return out


@dataclass
class Area:
    """`place`: where the command writes (the links are planted there); `outside`: what the
    links point to, which must come out exactly as it went in."""

    place: Path
    outside: Path

    def victim(self, name: str = "victim.txt") -> Path:
        """A file outside (made by the fixture, before any case is watched)."""
        path = self.outside / name
        assert path.read_bytes() == VICTIM
        return path

    def link(self, name: str, to: Path) -> Path:
        path = self.place / name
        path.symlink_to(to)
        return path


@pytest.fixture
def area(tmp_path: Path) -> Area:
    place, outside = tmp_path / "place", tmp_path / "outside"
    place.mkdir()
    outside.mkdir()
    (outside / "earlier").mkdir()
    (outside / "earlier" / "kept.txt").write_bytes(VICTIM)
    (outside / "empty").mkdir()
    for name in ("victim.txt", "notes.txt"):
        (outside / name).write_bytes(VICTIM)
    _earlier_output(outside / "run")
    return Area(place, outside)


class Tally:
    """Writes through planted links, counted case by case and printed at the end."""

    def __init__(self, writer: str) -> None:
        self.writer = writer
        self.cases: list[tuple[str, int]] = []

    @contextmanager
    def case(self, name: str, area: Area) -> Iterator[None]:
        before = _tree(area.outside)
        yield
        after = _tree(area.outside)
        through = sum(before.get(k, b"<absent>") != v for k, v in after.items())
        through += sum(k not in after for k in before)
        self.cases.append((name, through))

    def report(self) -> None:
        for name, through in self.cases:
            print(f"{self.writer}: {name}: {through} writes through planted symlinks")
        total = sum(n for _, n in self.cases)
        print(f"{self.writer}: {total} writes through planted symlinks in {len(self.cases)} cases")
        assert total == 0, self.cases


# --- the ledger the ledger commands read ---------------------------------------------------


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A ledger of one run (read only by the tests) and the id of one of its records."""
    work = tmp_path_factory.mktemp("ledger")
    key = work / "manager.key"
    assert _invoke("ledger", "keygen", "--out", key).exit_code == 0
    url = f"sqlite:///{work / 'ledger.db'}"
    done = _invoke("run", CASE, "--ledger", url, "--key", key)
    assert done.exit_code == 0, done.output
    with open_store(url) as store:
        block = store.block(1)
        assert block is not None
        record_id = block.records[0].record_id
    return url, record_id


# --- single files -----------------------------------------------------------------------


@dataclass(frozen=True)
class FileWriter:
    """A command writing one file `target`; `force` is its flag to replace one (None: it has
    none, and replaces an existing file or link as it is)."""

    name: str
    args: Callable[[Path, tuple[str, str]], list[object]]
    force: str | None = "--force"

    def __str__(self) -> str:
        return self.name


FILE_WRITERS = [
    FileWriter("cases export", lambda f, _: ["cases", "export", CASE, "--out", f]),
    FileWriter("ledger export", lambda f, led: ["ledger", "export", led[0], "--out", f]),
    FileWriter("ledger prove", lambda f, led: ["ledger", "prove", led[0], led[1][:16], "--out", f]),
]

TEMPORARY_NAMES = ("{}.tmp", ".{}.tmp", "{}.part", "{}~", ".{}.swp", "{}.new", ".{}")
"""Names a writer that does not pick an unpredictable one would write to first."""


@pytest.mark.parametrize("writer", FILE_WRITERS, ids=str)
def test_a_file_writer_never_writes_through_a_link(
    writer: FileWriter, area: Area, ledger: tuple[str, str]
) -> None:
    tally = Tally(writer.name)
    target = area.place / "out.file"
    cases = [
        ("link to a file", area.victim()),
        ("dangling link", area.outside / "absent.txt"),
        ("link to a directory", area.outside / "earlier"),
    ]
    for name, to in cases:
        with tally.case(name, area):
            link = area.link(target.name, to)
            result = _invoke(*writer.args(target, ledger))
            if writer.force is not None:
                if name == "link to a directory":
                    _one_line_error(result, str(target))
                else:
                    _one_line_error(result, str(target), "symbolic link", "--force")
                assert link.is_symlink()
                result = _invoke(*writer.args(target, ledger), writer.force)
            assert result.exit_code == 0, result.output
            assert target.is_file() and not target.is_symlink()  # the link was replaced
            target.unlink()
    with tally.case("links at temporary names", area):
        links = [
            area.link(pattern.format(target.name), area.outside / f"absent-{n}")
            for n, pattern in enumerate(TEMPORARY_NAMES)
        ]
        result = _invoke(*writer.args(target, ledger))
        assert result.exit_code == 0, result.output
        assert target.is_file() and not target.is_symlink()
        assert all(link.is_symlink() for link in links)
        assert sorted(p.name for p in area.place.iterdir() if not p.is_symlink()) == [
            target.name
        ]  # no temporary file left
    tally.report()


def test_keygen_never_writes_through_a_link(area: Area) -> None:
    tally = Tally("ledger keygen")
    key = area.place / "manager.key"
    pub = area.place / "manager.key.pub"
    for where in (key, pub):
        for name, to in (
            ("link to a file", area.victim()),
            ("dangling link", area.outside / "absent.pem"),
        ):
            with tally.case(f"{name} at {where.name}", area):
                link = area.link(where.name, to)
                result = _invoke("ledger", "keygen", "--out", key)
                _one_line_error(result, str(where), "symbolic link", "--force")
                assert link.is_symlink() and not os.path.lexists(key if where == pub else pub)
                result = _invoke("ledger", "keygen", "--out", key, "--force")
                assert result.exit_code == 0, result.output
                for path in (key, pub):
                    assert path.is_file() and not path.is_symlink()
                assert key.stat().st_mode & 0o777 == 0o600
                key.unlink()
                pub.unlink()
    with tally.case("links at temporary names", area):
        links = [
            area.link(pattern.format(name), area.outside / f"absent-{n}-{name}")
            for name in (key.name, pub.name)
            for n, pattern in enumerate(TEMPORARY_NAMES)
        ]
        assert _invoke("ledger", "keygen", "--out", key).exit_code == 0
        assert all(link.is_symlink() for link in links)
        assert key.is_file() and pub.is_file()
    tally.report()


def test_a_key_pair_is_written_whole_or_not_at_all(
    area: Area, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = area.place / "manager.key"
    generate_keypair(key)
    before = _tree(area.place)
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        if str(dst).endswith(".pub"):
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Exception, match="cannot write"):
        generate_keypair(key, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in area.place.iterdir()) == ["manager.key", "manager.key.pub"]
    assert _tree(area.place)["manager.key.pub"] == before["manager.key.pub"]


def test_the_solver_log_never_writes_through_a_link(area: Area) -> None:
    tally = Tally("run --solver-log")
    log = area.place / "highs.log"
    with tally.case("link to a file", area):
        area.link(log.name, area.victim())
        result = _invoke("run", CASE, "--solver-log", log)
        assert result.exit_code in (0, 2), result.output
    tally.report()


# --- output directories ---------------------------------------------------------------------


DIRECTORY_WRITERS = {
    "run --out": lambda out: ["run", CASE, "--out", out],
    "run --out --format csv": lambda out: ["run", CASE, "--out", out, "--format", "csv"],
    "compare --out": lambda out: ["compare", "five-peer-case-1", CASE, "--out", out],
}


def _earlier_output(directory: Path) -> None:
    directory.mkdir(exist_ok=True)
    (directory / MARKER).write_text('{"written_by": "run", "files": []}\n')
    (directory / "bills.csv").write_bytes(VICTIM)


@pytest.mark.parametrize("writer", list(DIRECTORY_WRITERS), ids=str)
def test_a_directory_writer_never_writes_through_a_link(writer: str, area: Area) -> None:
    args = DIRECTORY_WRITERS[writer]
    tally = Tally(writer)
    out = area.place / "out"
    for name, to in (
        ("link to an empty directory", area.outside / "empty"),
        ("link to an earlier output", area.outside / "run"),
        ("dangling link", area.outside / "absent"),
    ):
        with tally.case(name, area):
            link = area.link(out.name, to)
            for force in ([], ["--force"]):
                _one_line_error(_invoke(*args(out), *force), str(out), "symbolic link")
                assert link.is_symlink()
            assert sorted(p.name for p in area.place.iterdir()) == ["out"]  # no staging left
            link.unlink()
    with tally.case("links at the staging names", area):
        pid = os.getpid()
        names = [f".out.p2pmarket-old-{pid}", ".out.p2pmarket-tmp", ".out.tmp", ".out.old"]
        links = [area.link(n, area.outside / "run") for n in names]
        result = _invoke(*args(out))
        assert result.exit_code == 0, result.output
        result = _invoke(*args(out), "--force")  # sets the first output aside: a new name
        assert result.exit_code == 0, result.output
        assert all(link.is_symlink() for link in links)
        assert (out / MARKER).is_file() and not out.is_symlink()
    tally.report()


def test_report_never_writes_through_a_link(area: Area) -> None:
    tally = Tally("report DIR")
    run = area.place / "run"
    assert _invoke("run", CASE, "--out", run).exit_code == 0
    with tally.case("DIR is a link", area):
        link = area.link("linked-run", run)
        _one_line_error(_invoke("report", link), str(link), "symbolic link")
        assert not (run / "report.html").exists()
    with tally.case("links inside DIR", area):
        (run / "report.html").symlink_to(area.victim())
        (run / "notes.txt").symlink_to(area.victim("notes.txt"))
        result = _invoke("report", run)
        assert result.exit_code == 0, result.output
        report = run / "report.html"
        assert report.is_file() and not report.is_symlink()  # the link was replaced
        assert (run / "notes.txt").is_symlink()  # kept as the link it was, not copied
    tally.report()


def test_the_library_writers_replace_a_link(area: Area) -> None:
    tally = Tally("io.atomic / io.outputs")
    with tally.case("write_text_atomic over a link", area):
        target = area.link("table.csv", area.victim())
        write_text_atomic(target, "a,b\n")
        assert target.read_text() == "a,b\n" and not target.is_symlink()
    with tally.case("OutputDirectory at a link", area):
        link = area.link("out", area.outside / "earlier")
        with pytest.raises(Exception, match="symbolic link"):
            OutputDirectory(link, "test", force=True).check()
    tally.report()


# --- the ledger's database ----------------------------------------------------------------


def test_a_linked_sqlite_ledger_is_refused(area: Area) -> None:
    """SQLite would write the database a link at the ledger's path points to (and create a
    dangling link's target): such a path is refused before any work, and nothing outside is
    touched; `ledger verify` refuses it the same way."""
    key = area.place / "manager.key"
    assert _invoke("ledger", "keygen", "--out", key).exit_code == 0
    tally = Tally("run --ledger")
    for name, target in (
        ("a link to a file", area.victim()),
        ("a dangling link", area.outside / "absent.db"),
    ):
        link = area.place / "ledger.db"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        with tally.case(name, area):
            result = _invoke("run", CASE, "--ledger", f"sqlite:///{link}", "--key", key)
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "symbolic link" in lines[0], result.stderr
        assert result.stdout == ""  # refused before clearing
        verify = _invoke("ledger", "verify", f"sqlite:///{link}")
        assert verify.exit_code == 2 and "symbolic link" in verify.stderr
    assert not (area.outside / "absent.db").exists()
    tally.report()


# --- the system calls ------------------------------------------------------------------------


class Opens:
    """Files opened for writing under `root`: by `open()`, or by `os.open` without
    `O_EXCL | O_NOFOLLOW`."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = str(root)
        self.unsafe: list[str] = []
        self.created = 0
        real_open, real_os_open = builtins.open, os.open

        def checked_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
            mine = isinstance(file, str | os.PathLike) and str(file).startswith(self.root)
            if mine and any(c in mode for c in "wax+"):
                self.unsafe.append(f"open({file}, {mode!r})")
            return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

        def checked_os_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
            if str(path).startswith(self.root) and flags & os.O_CREAT:
                self.created += 1
                if flags & (os.O_EXCL | os.O_NOFOLLOW) != os.O_EXCL | os.O_NOFOLLOW:
                    self.unsafe.append(f"os.open({path}, {flags:#o})")
            return real_os_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(builtins, "open", checked_open)
        monkeypatch.setattr(io, "open", checked_open)
        monkeypatch.setattr(os, "open", checked_os_open)


@pytest.mark.parametrize(
    "args",
    [
        lambda p: ["cases", "export", CASE, "--out", p / "case.yaml"],
        lambda p: ["ledger", "keygen", "--out", p / "manager.key"],
        lambda p: ["run", CASE, "--out", p / "run", "--report", "--format", "csv"],
        lambda p: ["compare", "five-peer-case-1", CASE, "--out", p / "compare"],
    ],
    ids=["cases export", "ledger keygen", "run --out --report --format", "compare --out"],
)
def test_every_file_is_created_exclusively_without_following_links(
    args: Callable[[Path], list[object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opens = Opens(tmp_path, monkeypatch)
    result = _invoke(*args(tmp_path))
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert opens.created > 0
    assert opens.unsafe == []
