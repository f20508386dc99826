"""The report of a sweep (issue 14, item 4; docs/sweeps.md): the figure's lines are the KPIs of
the table's rows, the page holds the figure, every variant and each failed variant with its
error, and `sweep --report` / `report SWEEP_DIR` write it.

The sweeps run in this process (no cluster): a stand-in generator, the 5-peer Case II with
its loads times `households`, raises for households=3 (a failed row).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

from p2pmarket import cases
from p2pmarket.app.sweep import Generator, sweep
from p2pmarket.cli.main import app
from p2pmarket.core.scenario import Scenario
from p2pmarket.reports.sweep import (
    SWEEP_FIGURE,
    kpi_figure,
    sweep_report_html,
    swept_parameters,
    write_sweep_report,
)

pytest.importorskip("pyarrow")

GRID = {"households": [1, 2, 3], "design": ["p2p", "community"]}


def scaled_case(
    households: int,
    pv_share: float,
    battery_share: float,
    *,
    year: int = 2023,
    seed: int = 0,
    hours: int | None = None,
) -> Scenario:
    """Case II with its loads times `households` (the signature of `generate.community`);
    households=3 raises."""
    if households == 3:
        raise ValueError("no street holds three households")
    data = cases.load("five-peer-case-2").to_dict()
    for peer in data["peers"]:
        if peer["role"] != "grid":
            peer["load_kw"] = peer["load_kw"] * households
    return Scenario.from_dict(data)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    base = Generator("community", {"pv_share": 0.5, "battery_share": 0.0}, scaled_case)
    return sweep(base, GRID)


def _line(fig: Figure, gid: str) -> tuple[np.ndarray, np.ndarray]:
    (line,) = [a for a in fig.findobj() if a.get_gid() == gid]
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)  # type: ignore[attr-defined]


def test_the_swept_parameters_are_read_from_the_table(table: pd.DataFrame) -> None:
    assert swept_parameters(table) == ["households", "design"]
    assert list(table["status"]) == ["ok", "ok", "ok", "ok", "failed", "failed"]


def test_each_line_is_the_kpi_of_each_design_against_the_parameter(table: pd.DataFrame) -> None:
    fig = kpi_figure(table)
    for design in ("p2p", "community"):
        rows = table[(table["design"] == design) & (table["status"] == "ok")]
        for kpi in ("savings_total", "self_sufficiency"):
            x, y = _line(fig, f"{kpi}:households:{design}")
            np.testing.assert_array_equal(x, [1.0, 2.0])  # households=3 failed: no point
            np.testing.assert_allclose(y, rows.sort_values("households")[kpi])
    assert not [a for a in fig.findobj() if str(a.get_gid()).startswith("self_consumption")]


def test_the_mean_over_the_other_parameters_is_drawn(table: pd.DataFrame) -> None:
    """Without designs swept, one series; where other parameters vary (here the designs,
    relabelled as one), the line joins the mean of the variants that share a value."""
    only_p2p = table[table["design"] == "p2p"]
    fig = kpi_figure(only_p2p)
    x, y = _line(fig, "savings_total:households:all")
    np.testing.assert_array_equal(x, [1.0, 2.0])
    ok = only_p2p[only_p2p["status"] == "ok"].sort_values("households")
    np.testing.assert_allclose(y, ok["savings_total"])
    both = table.assign(design="p2p")  # two rows per household value, averaged
    _, y = _line(kpi_figure(both), "savings_total:households:all")
    means = table[table["status"] == "ok"].groupby("households")["savings_total"].mean()
    np.testing.assert_allclose(y, means.to_numpy())


def test_the_page_holds_the_figure_every_variant_and_the_failed_ones(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    written = write_sweep_report(table, tmp_path)
    assert [p.name for p in written] == ["report.html", SWEEP_FIGURE]
    page = (tmp_path / "report.html").read_text()
    assert page == sweep_report_html(
        table, title="Sweep of households, design", figure=(tmp_path / SWEEP_FIGURE).read_bytes()
    )
    assert re.search(r'<figure id="figure-sweep-kpis"><img src="data:image/png;base64,', page)
    for key in table["variant"]:
        assert key in page
    failed_section = page[page.index('id="failed"') :]
    failed = table[table["status"] == "failed"]
    rows = re.findall(r"<tr>(.*?)</tr>", failed_section)
    assert len(rows) == 1 + len(failed)  # the header and one row per failed variant
    for (_, row), cells in zip(failed.iterrows(), rows[1:], strict=True):
        assert row["variant"] in cells
        assert html.escape(row["error"]) in cells
        assert "no street holds three households" in row["error"]
    assert "6 variants: 4 ok, 2 failed." in page


def test_sweep_report_and_report_of_the_sweep_directory(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    done = CliRunner().invoke(
        app,
        ["sweep", "five-peer-case-2", "--grid", "design=p2p,community",
         "--grid", "uniform_fee=0,0.02", "--workers", "1", "--out", str(out), "--report"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert {"report.html", SWEEP_FIGURE, "sweep.csv", "sweep.parquet"} <= {
        p.name for p in out.iterdir()
    }
    first = (out / "report.html").read_text()
    assert "uniform_fee" in first and "figure-sweep-kpis" in first
    (out / "report.html").unlink()
    again = CliRunner().invoke(app, ["report", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "report.html").read_text() == first
    assert "sweep.csv" in (out / ".p2pmarket.json").read_text()


def test_a_directory_that_is_not_a_sweep_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "sweep.csv").write_text("a,b\n1,2\n")
    done = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert done.exit_code == 2
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "sweep.csv" in lines[0] and "'variant'" in lines[0]
