"""What a new user meets first: a silent library, `--version`, one-line usage mistakes, help
that names what is written, discoverable modules (issue 11, items 12, 16, 17, 18)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import p2pmarket
from p2pmarket.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def _p2pmarket(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pmarket", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        **kwargs,  # type: ignore[call-overload]
    )


def test_the_library_prints_nothing_unless_asked() -> None:
    """No HiGHS banner, no linopy message on the first clear() of a process (item 12)."""
    code = (
        "import p2pmarket\n"
        "s = p2pmarket.cases.load('five-peer-case-2')\n"
        "r = p2pmarket.clear(s)\n"
        "p2pmarket.run_market(s)\n"
        "assert abs(r.objective - 28.456) < 1e-3\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


def test_the_solver_log_is_there_when_asked(tmp_path: Path) -> None:
    log = tmp_path / "highs.log"
    code = (
        "import p2pmarket\n"
        "from p2pmarket.core.solve import SolverOptions\n"
        f"p2pmarket.clear(p2pmarket.cases.load('five-peer-case-2'), "
        f"options=SolverOptions(log_file={str(log)!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    assert "HiGHS" in text
    # The LP handed over without integrality when logged: no warning about integer variables.
    assert "integrality" not in text, text
    assert done.stdout == ""


def test_version() -> None:
    done = _p2pmarket("--version")
    assert done.returncode == 0
    assert done.stdout == f"p2pmarket {p2pmarket.__version__}\n"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run"], ["Missing argument", "p2pmarket run --help"]),
        (["run", "five-peer-case-2", "--bogus"], ["--bogus"]),
        (["run", "five-peer-case-2", "--threads", "many"], ["--threads"]),
        (["run", "five-peer-case-2", "--report", "true"], ["true"]),
        (["nonsense"], ["nonsense"]),
        (["ledger", "export"], ["Missing argument"]),
    ],
)
def test_usage_mistakes_are_one_line(args: list[str], words: list[str]) -> None:
    done = _p2pmarket(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert not any(ch in done.stderr for ch in "╭│╰"), done.stderr  # no boxes
    for word in words:
        assert word in lines[0]


def test_no_arguments_shows_the_help() -> None:
    done = _p2pmarket()
    assert done.returncode == 0
    assert "Usage: p2pmarket" in done.stdout and "run" in done.stdout


def test_help_fits_80_columns_and_shows_no_type_on_flags() -> None:
    for command in (["run"], ["compare"], ["paper"], ["report"], ["cases", "export"]):
        done = _p2pmarket(*command, "--help")
        assert done.returncode == 0, done.stderr
        assert max(len(line) for line in done.stdout.splitlines()) <= 80
        for line in done.stdout.splitlines():
            if line.strip().startswith(("--report", "--force", "--help")):
                assert "<" not in line, line


def test_run_help_names_every_file_run_out_writes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "five-peer-case-2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    help_text = " ".join(_p2pmarket("run", "--help").stdout.split())
    for name in written:
        assert name in help_text, name


def test_parquet_tables_include_the_settlement(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "run"
    args = ["run", "five-peer-case-2", "--out", str(out), "--format", "parquet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    csv_names = {p.stem for p in out.glob("*.csv")}
    parquet_names = {p.stem for p in out.glob("*.parquet")}
    assert {"bills", "settlement", "prices", "dispatch", "trades"} <= parquet_names
    assert csv_names <= parquet_names


def test_modules_are_discoverable() -> None:
    """`dir()` shows what can be used, and every edge module is reachable as an attribute
    after `import p2pmarket` alone (a fresh process: nothing imported before)."""
    code = (
        "import p2pmarket\n"
        "names = dir(p2pmarket)\n"
        "for n in ('clear', 'run_market', 'reports', 'ledger', 'cases', 'compare'):\n"
        "    assert n in names, n\n"
        "assert 'write_report' in dir(p2pmarket.reports)\n"
        "assert 'trade_network_figure' in dir(p2pmarket.reports)\n"
        "p2pmarket.compare, p2pmarket.core.settlement, p2pmarket.ledger.verify\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(
    shutil.which("pg_ctl") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
    reason="no PostgreSQL server binaries on this machine",
)
def test_ci_postgres_script_says_how_to_stop_what_it_started() -> None:
    """`.ci/postgres.sh` exports a stop script for the server it started; `.ci/run` runs it
    on exit (item 18). A cluster of its own, in a directory the `postgres` user can reach
    (pytest's tmp_path is private to root), and no stop script inherited from a server that
    runs the other tests."""
    work = Path(tempfile.mkdtemp(prefix="p2pm-pg-stop-"))
    work.chmod(0o755)
    script = (
        "set -eu\n"
        "unset P2PMARKET_PG_STOP\n"
        f"export P2PMARKET_PG_DIR={work / 'pg'}\n"
        f"source {ROOT / '.ci' / 'postgres.sh'} >/dev/null\n"
        'test -n "$P2PMARKET_PG_STOP"\n'
        'pid=$(head -n 1 "$P2PMARKET_PG_DIR/data/postmaster.pid")\n'
        'kill -0 "$pid"\n'
        'bash "$P2PMARKET_PG_STOP"\n'
        'for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done\n'
        "exit 1\n"
    )
    try:
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    assert "trap stop_services EXIT" in (ROOT / ".ci" / "run").read_text()


def test_run_shows_and_writes_the_prices_the_bills_charge(tmp_path: Path) -> None:
    """Under the `paper` objective the printed and written prices are the billed ones, and
    one sentence says what the paper-accounting duals are (item 8). Expected: what each
    buyer pays per kWh bought, from the bills."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "five-peer-case-2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "accounting figure, not a price anyone pays" in text
    bills = pd.read_csv(out / "bills.csv").set_index("peer")
    prices = pd.read_csv(out / "prices.csv")
    for peer in ("P2", "P4"):
        paid_per_kwh = (bills.loc[peer, "paid_energy"] + bills.loc[peer, "paid_fees"]) / bills.loc[
            peer, "bought_kwh"
        ]
        written = prices[(prices["node"] == peer) & (prices["kind"] == "peer")]["price_per_kwh"]
        assert written.iloc[0] == pytest.approx(paid_per_kwh, abs=1e-6)
        row = next(line for line in result.stdout.splitlines() if f" {peer} " in line)
        assert f"{paid_per_kwh:.4f}" in row


def test_report_on_a_malformed_bills_file_is_an_input_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert CliRunner().invoke(app, ["run", "five-peer-case-2", "--out", str(out)]).exit_code == 0
    bills = (out / "bills.csv").read_text().splitlines()
    cells = bills[1].split(",")
    cells[1] = "lots"
    (out / "bills.csv").write_text("\n".join([bills[0], ",".join(cells), *bills[2:]]) + "\n")
    done = _p2pmarket("report", str(out))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: invalid input: bills.csv[row 2].cost_baseline: 'lots' is not a number"
    ]
    (out / "bills.csv").write_text("peer,total\nP2,1\n")
    done = _p2pmarket("report", str(out))
    assert done.returncode == 2 and "has no column 'cost_baseline'" in done.stderr
