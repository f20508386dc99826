"""`p2pmarket compare`: the three designs of the 5-peer Case II side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import p2pmarket
from p2pmarket.app import settle_result
from p2pmarket.app.compare import compare
from p2pmarket.cli.main import app


def test_compare_command_writes_tables_and_figure(tmp_path: Path) -> None:
    done = CliRunner().invoke(
        app,
        ["compare", "five-peer-case-2", "--design", "p2p,community,hybrid", "--out", str(tmp_path)],
    )
    assert done.exit_code == 0, done.output
    table = pd.read_csv(tmp_path / "compare.csv")
    assert list(table["design"]) == ["p2p", "community", "hybrid"]
    # Same optimum under the three designs (hand-checked in test_paper_cases), 28.456.
    assert table["objective"].to_numpy() == pytest.approx([28.456] * 3)
    bills = pd.read_csv(tmp_path / "compare_bills.csv")
    assert len(bills) == 3 * 5
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_reuses_one_baseline_and_matches_settle() -> None:
    scenario = p2pmarket.cases.load("five-peer-case-2")
    comparison = compare([scenario], designs=["p2p"], rules=["marginal", "pay-as-offer"])
    assert len(comparison.table) == 2 and len(comparison.results) == 1
    alone = settle_result(p2pmarket.clear(scenario, design="p2p"), "pay-as-offer").bills
    ours = comparison.bills[comparison.bills["rule"] == "pay-as-offer"].set_index("peer")
    assert ours["savings"].to_numpy() == pytest.approx(
        alone.set_index("peer")["savings"].to_numpy()
    )
