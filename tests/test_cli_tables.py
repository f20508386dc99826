"""Terminal tables at 80 columns (issue 11, item 7): every table of `run`, `compare` and
`paper`, rendered from real results, keeps within 80 columns, cuts nothing ("…") and shows
every number it is given in full.

The expected numbers are formatted here from the tables and values handed to the render
functions, not taken from the rendered text; they are then looked up among the numbers of the
text, each as often as it is expected.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import pandas as pd
import pytest
from rich.console import Console, RenderableType

import p2pmarket
from p2pmarket.app.compare import Comparison, compare
from p2pmarket.app.paper import Reproduction, design_comparison, reproduce
from p2pmarket.app.run import Clearings, MarketRun, run_market
from p2pmarket.cli.render import (
    MAX_TRADE_ROWS,
    Col,
    Grid,
    bills_table,
    comparison_tables,
    design_table,
    paper_table,
    role_table,
    run_tables,
    storage_table,
)
from p2pmarket.core.analysis import role_changes, storage_summary

WIDTH = 80
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def render(renderable: RenderableType, width: int = WIDTH) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def check(text: str, numbers: Iterable[str], width: int = WIDTH) -> None:
    """Within `width`, nothing cut, and every expected number whole among the text's own."""
    lines = text.splitlines()
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, "\n".join(too_long)
    assert "…" not in text
    found = Counter(NUMBER.findall(text))
    missing = Counter(numbers) - found
    assert not missing, f"not shown in full: {dict(missing)}\n{text}"


def kwh(value: float) -> str:
    return f"{value:,.2f}"


def money(value: float) -> str:
    return f"{value:,.3f}"


def share(value: float | None) -> list[str]:
    return [] if value is None or math.isnan(value) else [f"{value:.4f}"]


@pytest.fixture(scope="module")
def runs() -> dict[str, MarketRun]:
    return {
        name: run_market(p2pmarket.cases.load(name))
        for name in ("five-peer-case-2", "seventeen-peer-case-3")
    }


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    scenarios = [p2pmarket.cases.load(n) for n in ("five-peer-case-1", "five-peer-case-2")]
    return compare(scenarios, designs=["p2p", "community"])


@pytest.fixture(scope="module")
def paper() -> tuple[Reproduction, pd.DataFrame]:
    clearings = Clearings()
    return reproduce(clearings=clearings), design_comparison(clearings=clearings)


def run_numbers(run: MarketRun) -> list[Sequence[str]]:
    """Expected numbers of each renderable of `run_tables`: headline, peers, trades, storage."""
    result = run.result
    t = result.trades
    head = [
        f"{result.objective:,.4f}",
        kwh(t.loc[t["buyer_kind"] == "peer", "energy_kwh"].sum()),
    ]
    d = result.dispatch
    hours = result.scenario.period_hours
    columns = ["generation_kw", "load_kw", "import_kw", "export_kw"]
    if any(p.flexible_load for p in result.scenario.peers):
        columns.insert(2, "flexible_load_kw")
    peers = []
    for _, rows in d.groupby("peer", sort=False):
        peers += [kwh(rows[c].sum() * hours) for c in columns]
        price = rows["price_per_kwh"].mean()
        peers += [] if math.isnan(price) else [f"{price:.4f}"]
    top = t.nlargest(MAX_TRADE_ROWS, "energy_kwh")
    trades = [kwh(v) for v in top["energy_kwh"]] + [f"{v:.5f}" for v in top["fee_per_kwh"]]
    out: list[Sequence[str]] = [head, peers, trades]
    storage = storage_summary(result)
    if len(storage):
        out.append(storage_numbers(storage))
    return out


def storage_numbers(storage: pd.DataFrame) -> list[str]:
    out = []
    for row in storage.to_dict("records"):
        for key in ("capacity_kwh", "charged_kwh", "discharged_kwh", "losses_kwh"):
            out.append(f"{row[key]:,.2f}")
        out.append(f"{row['equivalent_full_cycles']:,.2f}")
        out += [str(row["charging_cycles"]), str(row["simultaneous_periods"])]
    return out


def bill_numbers(run: MarketRun) -> list[str]:
    out = []
    for row in run.settlement.bills.to_dict("records"):
        out += [kwh(row["bought_kwh"]), kwh(row["sold_kwh"])]
        out += [kwh(row["paid_energy"] + row["paid_fees"])]
        out += [kwh(row["received_energy"] + row["received_fees"])]
        out += [money(row[k]) for k in ("cost_market", "cost_baseline", "savings")]
    return out


@pytest.mark.parametrize("name", ["five-peer-case-2", "seventeen-peer-case-3"])
def test_run_tables_fit_80_columns(runs: dict[str, MarketRun], name: str) -> None:
    run = runs[name]
    renderables = [*run_tables(run.result), bills_table(run.settlement, run.result)]
    expected = [*run_numbers(run), bill_numbers(run)]
    assert len(renderables) == len(expected)
    for renderable, numbers in zip(renderables, expected, strict=True):
        check(render(renderable), numbers)


def test_comparison_tables_fit_80_columns(comparison: Comparison) -> None:
    t = comparison.table
    money_numbers, energy_numbers = [], []
    for row in t.to_dict("records"):
        money_numbers += [money(row[k]) for k in ("objective", "total_cost", "savings_total")]
        money_numbers += share(row["savings_jain_index"]) + share(row["savings_gini"])
        energy_numbers += [
            kwh(row[f"traded_{part}_kwh"]) for part in ("total", "inside", "between", "with_grid")
        ]
        energy_numbers += share(row["self_sufficiency"])
    savings = [money(v) for v in comparison.bills["savings"]]
    renderables = comparison_tables(comparison)
    assert len(renderables) == 3
    for renderable, numbers in zip(
        renderables, [money_numbers, energy_numbers, savings], strict=True
    ):
        check(render(renderable), numbers)
    assert len(t) == 4  # 2 scenarios x 2 designs, each with its own row and column


def test_paper_tables_fit_80_columns(paper: tuple[Reproduction, pd.DataFrame]) -> None:
    reproduction, designs = paper
    numbers = []
    for c in reproduction.checks:
        numbers.append(f"{c.ours:.6g}")
        if c.paper is not None:
            numbers.append(f"{c.paper:.6g}")
            if not c.matches and c.deviation is not None:
                numbers.append(f"{c.deviation:+.6g}")
    text = render(paper_table(reproduction.checks))
    check(text, numbers)
    # Short case names tell the cases apart: no two cases look alike.
    for label in ("5-peer I ", "5-peer II ", "17-peer I ", "17-peer II ", "17-peer III "):
        assert label in text

    three = reproduction.results["seventeen-peer-case-3"]
    storage = storage_summary(three)
    check(render(storage_table(storage, "Case III (17 peers): storage")), storage_numbers(storage))
    changes = role_changes(three)
    role_numbers = [str(v) for v in changes["changes"]]
    role_numbers += [str(int(v) + 1) for v in changes["first_change"]]
    check(render(role_table(changes, "Case III: peers that change role")), role_numbers)

    design_numbers = []
    for row in designs.to_dict("records"):
        design_numbers += [f"{row['paper']:.6g}", f"{row['system-cost']:.6g}"]
        design_numbers += [kwh(row["traded_energy_kwh"]), kwh(row["link_energy_kwh"])]
    check(render(design_table(designs)), design_numbers)


def test_paper_design_table_names_both_energies(paper: tuple[Reproduction, pd.DataFrame]) -> None:
    """Case II, community design: 240 kWh delivered between peers, 480 kWh over links."""
    designs = paper[1].set_index(["case", "design"])
    row = designs.loc[("five-peer-case-2", "community")]
    assert row["traded_energy_kwh"] == pytest.approx(240.0)
    assert row["link_energy_kwh"] == pytest.approx(480.0)


# The layouts of `Grid` on made-up tables, at widths that force each of them.

COLUMNS = [Col("market"), *(Col(f"quantity {n} kWh", True) for n in range(6))]
ROWS = [
    [
        "five-peer-case-2 (a.yaml) / community",
        *(f"{v * 1_000.123 * (n + 1):,.2f}" for v in range(6)),
    ]
    for n in range(3)
]


@pytest.mark.parametrize("width", [120, 80, 60, 40, 24])
def test_a_grid_keeps_every_number_whole_at_any_width(width: int) -> None:
    grid = Grid("A wide table of made-up numbers", COLUMNS, ROWS, caption="[kW] stays")
    text = render(grid, width)
    check(text, [cell for row in ROWS for cell in row[1:]], width)
    assert "[kW] stays" in text  # cells and captions are text, never rich markup


def test_a_grid_narrows_then_splits_then_stacks() -> None:
    grid = Grid("t", COLUMNS, ROWS)
    assert grid.layout(200) is not None and len(grid.layout(200) or []) == 1
    split = grid.layout(60)
    assert split is not None and len(split) >= 2
    assert all(layout[0][0] == 0 for layout in split)  # the key column repeats
    assert grid.layout(24) is None  # one block per row
    assert "(one block per row)" in render(grid, 24)
