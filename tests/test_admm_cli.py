"""`p2pmarket run --method admm`, `--max-iterations`, its outputs (history, `admm.json`,
the convergence figure and report section), and `compare --method central,admm`.

Numbers are checked against the central clearing of the same case, computed here, and
against invariants of the run's own files (the history has one row per iteration
reported; agreed and not-agreed trades add up), never against numbers written down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import p2pmarket
from p2pmarket.app.compare import compare
from p2pmarket.cli.main import app

CASE = "five-peer-case-2"


def _p2pmarket(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pmarket", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def central() -> p2pmarket.ClearingResult:
    """The central clearing of the case, as the command clears it (its own design and
    objective)."""
    return p2pmarket.clear(p2pmarket.cases.load(CASE))


@pytest.fixture(scope="module")
def admm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`run CASE --method admm --out DIR --report`, once for the module."""
    out = tmp_path_factory.mktemp("admm") / "run"
    done = CliRunner().invoke(app, ["run", CASE, "--method", "admm", "--out", str(out), "--report"])
    assert done.exit_code == 0, done.output
    return out


def test_run_with_admm_writes_the_central_market(
    admm_run: Path, central: p2pmarket.ClearingResult
) -> None:
    summary = json.loads((admm_run / "summary.json").read_text())
    assert summary["objective"] == pytest.approx(central.objective, rel=1e-4)
    assert summary["status"] == "optimal"
    trades = pd.read_csv(admm_run / "trades.csv")
    assert trades["energy_kwh"].sum() == pytest.approx(central.trades["energy_kwh"].sum(), abs=0.01)


def test_history_and_summary_agree_with_each_other(
    admm_run: Path, central: p2pmarket.ClearingResult
) -> None:
    negotiation = json.loads((admm_run / "admm.json").read_text())
    history = pd.read_csv(admm_run / "admm_history.csv")
    assert negotiation["converged"] is True
    assert negotiation["not_agreed_trades"] == 0
    assert negotiation["agreed_trades"] == negotiation["trades"]
    assert pd.read_csv(admm_run / "admm_not_agreed.csv").empty
    # One row per iteration, numbered from 1 to the count reported.
    assert history["iteration"].tolist() == list(range(1, negotiation["iterations"] + 1))
    assert (history["agreed"] + history["not_agreed"] == negotiation["trades"]).all()
    assert history["not_agreed"].iloc[-1] == 0
    assert (history["rho_min"] <= history["rho_geomean"] * (1 + 1e-9)).all()
    assert (history["rho_geomean"] <= history["rho_max"] * (1 + 1e-9)).all()
    # The cost gap is measured against central clearing, and the figures say the same.
    assert negotiation["central_objective"] == pytest.approx(central.objective, rel=1e-9)
    # (to the history's 6 significant digits of the cost)
    gap = (history["cost"] - central.objective).abs() / abs(central.objective)
    assert (history["cost_gap"] - gap).abs().max() <= 1e-5
    assert negotiation["objective_gap"] <= 1e-4
    # Messages: every iteration sends the same messages, so the totals are multiples.
    assert negotiation["messages"] > 0
    assert negotiation["messages"] % negotiation["iterations"] == 0
    assert negotiation["message_bytes"] % negotiation["iterations"] == 0
    imbalance = pd.read_csv(admm_run / "admm_imbalance.csv")
    assert imbalance["shortfall_kwh"].abs().sum() == pytest.approx(
        negotiation["imbalance_kwh"], abs=1e-6
    )


def test_report_has_the_convergence_figure(admm_run: Path) -> None:
    png = (admm_run / "admm_convergence.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    page = (admm_run / "report.html").read_text()
    assert 'id="admm"' in page and 'id="figure-admm-convergence"' in page


def test_a_capped_run_writes_its_history_and_exits_1(tmp_path: Path) -> None:
    """The real command at a cap of 5 iterations: its files are written, `admm.json` and
    `admm_not_agreed.csv` say what was not agreed, then one line and exit code 1."""
    out = tmp_path / "capped"
    done = _p2pmarket(
        "run", CASE, "--method", "admm", "--max-iterations", "5", "--out", str(out), "--report"
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert "not agreed" in lines[0] and "Traceback" not in done.stderr
    negotiation = json.loads((out / "admm.json").read_text())
    history = pd.read_csv(out / "admm_history.csv")
    not_agreed = pd.read_csv(out / "admm_not_agreed.csv")
    assert negotiation["converged"] is False and negotiation["iterations"] == 5
    assert len(history) == 5
    assert negotiation["not_agreed_trades"] == len(not_agreed) == history["not_agreed"].iloc[-1]
    assert len(not_agreed) > 0 and f"{len(not_agreed)} trades not agreed" in lines[0]
    # The leftover is settled with the grid and said so.
    assert negotiation["with_grid_kwh"] > 0
    assert (out / "admm_convergence.png").is_file()
    assert f"{len(not_agreed)} trades not agreed at the cap of 5 iterations" in done.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--method", "gossip"], "--method"),
        (["--method", "admm", "--max-iterations", "0"], "--max-iterations"),
        (["--max-iterations", "10"], "--max-iterations"),
    ],
)
def test_bad_method_options_are_one_line_exit_2(args: list[str], option: str) -> None:
    done = CliRunner().invoke(app, ["run", CASE, *args])
    assert done.exit_code == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and lines[0].startswith("error:"), lines


def test_compare_central_and_admm() -> None:
    scenario = p2pmarket.cases.load(CASE)
    comparison = compare([scenario], methods=["central", "admm"])
    table = comparison.table.set_index("method")
    assert table.loc["admm", "objective"] == pytest.approx(
        table.loc["central", "objective"], rel=1e-4
    )
    done = CliRunner().invoke(app, ["compare", CASE, "--method", "central,admm"])
    assert done.exit_code == 0, done.output
    assert "admm" in done.output
