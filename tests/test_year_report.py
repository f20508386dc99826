"""The report of a long horizon (issue 14, item 4; docs/year-report.md): its figures' data
checked against values recomputed by hand from the files `p2pmarket run --out` writes
(dispatch.csv, trades.csv, prices.csv, bills.csv, kpis.json) and from the generator's
households.csv, and the report's choice of figures for long and short horizons.

One generated community of 8 households over 10 days (long: at least 7 days), cleared once
by the command line for the module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from typer.testing import CliRunner

import p2pmarket
from p2pmarket.cli.main import app
from p2pmarket.core.results import ClearingResult
from p2pmarket.io.scenario_files import load_scenario
from p2pmarket.reports import report_steps
from p2pmarket.reports.figures import FIGURE_STEPS
from p2pmarket.reports.year import (
    day_hour_grid,
    equipment_of,
    is_long,
    monthly_shares,
    monthly_shares_figure,
    price_heatmap_figure,
    savings_figure,
    sorted_savings,
)

pytest.importorskip("pvlib")
pytest.importorskip("demandlib")

HOUSEHOLDS, DAYS = 8, 10


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`generate community` then `run --out --report` of it: the files the tests read."""
    root = tmp_path_factory.mktemp("year")
    generated = CliRunner().invoke(
        app,
        ["generate", "community", "--households", str(HOUSEHOLDS), "--pv-share", "0.6",
         "--battery-share", "0.5", "--hours", str(24 * DAYS), "--seed", "3",
         "--out", str(root / "scenario")],
    )  # fmt: skip
    assert generated.exit_code == 0, generated.output
    done = CliRunner().invoke(
        app,
        ["run", str(root / "scenario" / "scenario.yaml"), "--out", str(root / "run"), "--report"],
    )
    assert done.exit_code == 0, done.output
    return root


@pytest.fixture(scope="module")
def result(run_dir: Path) -> ClearingResult:
    """The same market cleared in this process (the figures' input)."""
    return p2pmarket.clear(load_scenario(run_dir / "run" / "scenario.yaml"))


def _csv(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run_dir / "run" / name)


def _line(fig: Figure, gid: str) -> np.ndarray:
    (line,) = [a for a in fig.findobj() if a.get_gid() == gid]
    return np.asarray(line.get_ydata(), dtype=float)  # type: ignore[attr-defined]


# --- which figures --------------------------------------------------------------------------


def test_a_week_is_long_and_six_days_are_not() -> None:
    case = p2pmarket.cases.load("five-peer-case-2")
    assert is_long(case.replace(periods=7 * 24)) and not is_long(case.replace(periods=6 * 24))
    assert is_long(case.replace(periods=7, period_hours=24.0))
    assert not is_long(case)


def test_the_report_of_a_long_horizon_draws_the_year_figures(run_dir: Path) -> None:
    page = (run_dir / "run" / "report.html").read_text()
    figures = re.findall(r'<figure id="figure-([a-z-]+)"', page)
    assert figures == [
        "trade-network", "daily-energy", "price-heatmap", "monthly-shares", "savings", "bills"
    ]  # fmt: skip
    assert "is drawn by day and by month" in page


def test_the_report_of_a_short_horizon_is_unchanged() -> None:
    day = p2pmarket.clear(p2pmarket.cases.load("seventeen-peer-case-3"))
    bills = pd.DataFrame(
        {"peer": list(day.scenario.peer_ids), "cost_baseline": 1.0, "cost_market": 0.5,
         "savings": 0.5}
    )  # fmt: skip
    names = ["trade-network", "generation-load", "imports-exports", "state-of-charge", "prices"]
    expected = [FIGURE_STEPS[n] for n in [*names, "bills"]]
    assert report_steps(day, bills=bills)[1:-1] == expected


# --- self-sufficiency and self-consumption per month ---------------------------------------


def _by_hand(
    dispatch: pd.DataFrame, trades: pd.DataFrame, month: np.ndarray, grid: str = "grid"
) -> pd.DataFrame:
    """Self-sufficiency and -consumption of the one street (all households), month by month,
    from the files: demand and supply from dispatch.csv (periods of 1 h: kW is kWh), energy
    crossing the street's border from trades.csv (p2p: every trade is bilateral; the grid is
    the only outside)."""
    members = dispatch[dispatch["peer"] != grid]
    m = month[members["period"].to_numpy()]
    demand = (
        (members["load_kw"] + members["flexible_load_kw"] + members["charge_kw"]).groupby(m).sum()
    )
    supply = (members["generation_kw"] + members["discharge_kw"]).groupby(m).sum()
    t_month = month[trades["period"].to_numpy()]
    bought = trades["energy_kwh"].where(trades["seller"] == grid, 0.0).groupby(t_month).sum()
    sold = trades["energy_kwh"].where(trades["buyer"] == grid, 0.0).groupby(t_month).sum()
    return pd.DataFrame(
        {"self_sufficiency": 1 - bought / demand, "self_consumption": 1 - sold / supply}
    )


def test_monthly_shares_are_those_recomputed_from_the_files(
    run_dir: Path, result: ClearingResult
) -> None:
    dispatch, trades = _csv(run_dir, "dispatch.csv"), _csv(run_dir, "trades.csv")
    communities = {c.id for c in result.scenario.communities} - {"utility"}
    assert len(communities) == 1  # 8 households live on one street
    start = pd.Timestamp("2023-01-28")  # 4 days of January, then 6 of February
    shares = monthly_shares(result, start=start)
    month = (np.arange(24 * DAYS) >= 24 * 4).astype(int)
    expected = _by_hand(dispatch, trades, month)
    for is_market in (False, True):
        rows = shares[shares["is_market"] == is_market]
        assert list(rows["label"]) == ["Jan 2023", "Feb 2023"]
        for column in ("self_sufficiency", "self_consumption"):
            np.testing.assert_allclose(rows[column], expected[column], rtol=1e-6)
    fig = monthly_shares_figure(result, start=start)
    street = next(iter(communities))
    for column in ("self_sufficiency", "self_consumption"):
        np.testing.assert_allclose(_line(fig, f"{column}:market"), expected[column], rtol=1e-6)
        np.testing.assert_allclose(
            _line(fig, f"{column}:community:{street}"), expected[column], rtol=1e-6
        )


def test_without_a_calendar_months_are_blocks_of_30_days_adding_up_to_the_kpis(
    run_dir: Path, result: ClearingResult
) -> None:
    shares = monthly_shares(result)
    assert list(shares["label"].unique()) == [f"days 1-{DAYS}"]
    kpis = json.loads((run_dir / "run" / "kpis.json").read_text())
    market = shares[shares["is_market"]].iloc[0]
    assert market["self_sufficiency"] == pytest.approx(kpis["self_sufficiency"], rel=1e-6)
    assert market["self_consumption"] == pytest.approx(kpis["self_consumption"], rel=1e-6)
    # The market's energy bought from outside is what the grid sells (its exports).
    dispatch = _csv(run_dir, "dispatch.csv")
    assert market["bought_outside_kwh"] == pytest.approx(
        dispatch.loc[dispatch["peer"] == "grid", "export_kw"].sum(), rel=1e-6
    )


def test_a_peer_in_no_community_is_a_community_of_its_own() -> None:
    case = p2pmarket.cases.load("five-peer-case-1")  # no communities
    cleared = p2pmarket.clear(case)
    shares = monthly_shares(cleared)
    peers = [p for p in case.peer_ids if p not in case.grid_ids]
    assert list(shares.loc[~shares["is_market"], "community"]) == peers


# --- savings per household ----------------------------------------------------------------


def test_savings_are_sorted_and_coloured_by_the_households_equipment(
    run_dir: Path, result: ClearingResult
) -> None:
    bills = _csv(run_dir, "bills.csv")
    households = pd.read_csv(run_dir / "scenario" / "households.csv")
    kind = {
        (True, True): "PV and battery", (True, False): "PV", (False, False): "neither",
    }  # fmt: skip
    expected_kind = {
        h: kind[(pv > 0, battery > 0)]
        for h, pv, battery in zip(
            households["household"], households["pv_kwp"], households["battery_kwh"], strict=True
        )
    }
    assert equipment_of(result.scenario) == expected_kind
    assert set(expected_kind.values()) == {"PV and battery", "PV", "neither"}
    mine = bills[bills["peer"] != "grid"]
    expected = mine.sort_values("savings", ascending=False, kind="stable")
    rows = sorted_savings(bills, result.scenario)
    assert list(rows["peer"]) == list(expected["peer"])
    np.testing.assert_allclose(rows["savings"], expected["savings"])
    fig = savings_figure(bills, result.scenario)
    bars = sorted(
        (r.get_x() + r.get_width() / 2, r.get_height(), str(r.get_gid()).removeprefix("savings:"))
        for r in fig.findobj(Rectangle)
        if str(r.get_gid()).startswith("savings:")
    )
    assert [h for _, h, _ in bars] == pytest.approx(list(expected["savings"]))
    assert [k for _, _, k in bars] == [expected_kind[p] for p in expected["peer"]]


# --- prices as a day x hour heat map --------------------------------------------------------


def test_a_heat_map_cell_is_the_mean_price_of_the_peers_in_that_period(
    run_dir: Path, result: ClearingResult
) -> None:
    prices = _csv(run_dir, "prices.csv")
    peers = prices[(prices["kind"] == "peer") & (prices["node"] != "grid")]
    mean = peers.groupby("period")["price_per_kwh"].mean()
    fig = price_heatmap_figure(result)
    (mesh,) = [a for a in fig.findobj(QuadMesh) if a.get_gid() == "price-heatmap"]
    cells = np.ma.getdata(mesh.get_array()).reshape(24, DAYS)
    for period in (0, 7, 12, 18, 23, 24 * 5 + 13, 24 * DAYS - 1):
        assert cells[period % 24, period // 24] == pytest.approx(mean[period], rel=1e-6)
    np.testing.assert_allclose(cells.T.ravel(), mean.to_numpy(), rtol=1e-6)
    colour_bar = [a for a in fig.axes if a.get_ylabel() == "price (EUR/kWh)"]
    assert colour_bar, "the colour bar says its unit"


def test_a_day_starting_later_in_the_day_shifts_the_cells() -> None:
    scenario = p2pmarket.cases.load("five-peer-case-2").replace(periods=30, period_hours=2.0)
    values = np.arange(30, dtype=float)
    grid = day_hour_grid(values, scenario, start=pd.Timestamp("2023-03-01 06:00"))
    assert grid.shape == (12, 3)  # 2-hour slots; 60 hours from 06:00 cover three days
    assert grid[3, 0] == 0 and np.isnan(grid[2, 0])  # period 0 starts at 06:00
    assert grid[0, 1] == 9 and grid[8, 2] == 29 and np.isnan(grid[9, 2])


# --- documentation ---------------------------------------------------------------------------


def test_the_example_of_the_docs_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).parents[1] / "docs" / "year-report.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/year-report.md", "exec"), {})
    assert (tmp_path / "week" / "report.html").is_file()
    assert (tmp_path / "prices.png").is_file()
