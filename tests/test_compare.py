"""`p2pmarket compare`: the three designs of the 5-peer Case II side by side; markets of
scenarios with the same name; one definition of traded energy (issue 11, items 6 and 14)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

import p2pmarket
from p2pmarket.app import settle_result
from p2pmarket.app.compare import MARKET_KEY, compare, scenario_labels
from p2pmarket.app.paper import design_comparison
from p2pmarket.app.run import Clearings, run_market
from p2pmarket.cli.main import app
from p2pmarket.cli.render import comparison_tables
from p2pmarket.errors import InfeasibleMarketError, OptionError


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


# Issue 11, item 6: markets of scenarios with the same name.


def _same_name_files(tmp_path: Path) -> tuple[Path, Path]:
    """Two scenario files, both named `five-peer-case-2`: the paper's Case II and the same
    market with P4's load doubled (so that their rows differ)."""
    base = p2pmarket.cases.load("five-peer-case-2")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    p2pmarket.dump_scenario(base, a)
    data = base.to_dict()
    for peer in data["peers"]:
        if peer["id"] == "P4":
            peer["load_kw"] = 200.0
    p2pmarket.dump_scenario(p2pmarket.Scenario.from_dict(data), b)
    return a, b


def test_scenarios_of_the_same_name_are_labelled_by_file_and_none_is_dropped(
    tmp_path: Path,
) -> None:
    a, b = _same_name_files(tmp_path)
    scenarios = [p2pmarket.load_scenario(a), p2pmarket.load_scenario(b)]
    assert scenarios[0].name == scenarios[1].name == "five-peer-case-2"
    comparison = compare(scenarios, designs=["p2p", "community"], labels=["a.yaml", "b.yaml"])
    names = ["five-peer-case-2 (a.yaml)", "five-peer-case-2 (b.yaml)"]
    assert list(comparison.table["scenario"]) == [names[0]] * 2 + [names[1]] * 2
    assert not comparison.table.duplicated(list(MARKET_KEY)).any()
    assert len(comparison.bills) == 4 * 5
    assert not comparison.bills.duplicated([*MARKET_KEY, "peer"]).any()
    assert comparison.labels == tuple(f"{n} / {d}" for n in names for d in ("p2p", "community"))
    # P4 buys twice as much in b.yaml: the rows differ, and each is its own file's.
    p4 = comparison.bills[comparison.bills["peer"] == "P4"].set_index("scenario")
    assert p4.loc[names[1], "cost_market"].iloc[0] > p4.loc[names[0], "cost_market"].iloc[0]
    # The savings table keeps a column per market (4), none overwritten by another.
    console = Console(width=80, record=True)
    for renderable in comparison_tables(comparison):
        console.print(renderable)
    text = console.export_text()
    assert all(f"#{n}" in text for n in range(1, 5))
    assert text.count("five-peer-case-2 (a.yaml)") == text.count("five-peer-case-2 (b.yaml)")


def test_labels_without_file_names_and_a_name_given_twice() -> None:
    s = p2pmarket.cases.load("five-peer-case-2")
    other = p2pmarket.cases.load("five-peer-case-1")
    assert scenario_labels([s, other]) == ["five-peer-case-2", "five-peer-case-1"]
    assert scenario_labels([s, s, other]) == [
        "five-peer-case-2 (1)",
        "five-peer-case-2 (2)",
        "five-peer-case-1",
    ]
    # The same file given twice: its label clashes too, and is numbered.
    assert scenario_labels([s, s], ["x.yaml", "x.yaml"]) == [
        "five-peer-case-2 (x.yaml)",
        "five-peer-case-2 (x.yaml) #2",
    ]
    with pytest.raises(OptionError, match="one label per scenario"):
        scenario_labels([s, s], ["x.yaml"])


def test_a_design_given_twice_is_one_market() -> None:
    s = p2pmarket.cases.load("five-peer-case-2")
    comparison = compare([s], designs=[None, "p2p", "p2p"], rules=["marginal", "marginal"])
    assert list(comparison.table["design"]) == ["p2p"]


def test_compare_command_keeps_both_markets_of_one_name(tmp_path: Path) -> None:
    a, b = _same_name_files(tmp_path)
    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["compare", str(a), str(b), "--out", str(out)])
    assert done.exit_code == 0, done.output
    table = pd.read_csv(out / "compare.csv")
    assert len(table) == 2 and table["scenario"].nunique() == 2
    assert len(pd.read_csv(out / "compare_bills.csv")) == 2 * 5
    assert all(len(line) <= 80 for line in done.output.splitlines())


def test_an_infeasible_market_is_named(tmp_path: Path) -> None:
    """The second file's market cannot be served (P2 needs more than every generator can
    give): the error names it by its label and design, and keeps the diagnosis."""
    base = p2pmarket.cases.load("five-peer-case-2")
    data = base.to_dict()
    for peer in data["peers"]:
        if peer["id"] == "P2":
            peer["load_kw"] = 1e6
    short = p2pmarket.Scenario.from_dict(data)
    with pytest.raises(InfeasibleMarketError) as caught:
        compare([base, short], designs=["p2p"], labels=["a.yaml", "b.yaml"])
    error = caught.value
    assert str(error).startswith("market 'five-peer-case-2 (b.yaml)' under p2p: ")
    assert error.peer == "P2" and error.period == 0


# Issue 11, item 14: one definition of traded energy everywhere.


@pytest.mark.parametrize(
    ("name", "design"),
    [
        ("five-peer-case-2", "community"),  # 240 kWh delivered, 480 over links
        ("five-peer-case-2", "hybrid"),
        ("seventeen-peer-case-2", "p2p"),  # paper clearing settled on its system-cost twin
        ("seventeen-peer-case-2", "community"),
    ],
)
def test_traded_energy_is_one_number_in_summary_kpis_compare_and_paper(
    name: str, design: str
) -> None:
    scenario = p2pmarket.cases.load(name)
    clearings = Clearings()
    run = run_market(scenario, design, clearings=clearings)
    t = run.result.trades
    # Independently, from the trades table: every kWh reaches a peer on exactly one trade
    # (managers pass on all they receive), and leaves a peer on exactly one.
    delivered = float(t.loc[t["buyer_kind"] == "peer", "energy_kwh"].sum())
    assert float(t.loc[t["seller_kind"] == "peer", "energy_kwh"].sum()) == pytest.approx(delivered)
    per_hop = float(t["energy_kwh"].sum())

    summary = run.result.summary()
    assert summary.traded_energy_kwh == pytest.approx(delivered, rel=1e-9)
    assert summary.link_energy_kwh == pytest.approx(per_hop, rel=1e-9)
    assert run.kpis.traded_kwh["total"] == pytest.approx(delivered, rel=1e-9)
    row = compare([scenario], designs=[design]).table.iloc[0]
    assert row["traded_total_kwh"] == pytest.approx(delivered, rel=1e-9)
    designs = design_comparison([name], clearings=clearings).set_index("design")
    assert designs.loc[design, "traded_energy_kwh"] == pytest.approx(delivered, rel=1e-9)
    assert designs.loc[design, "link_energy_kwh"] == pytest.approx(per_hop, rel=1e-9)


def test_per_hop_and_delivered_differ_where_energy_passes_a_manager() -> None:
    """Case II under the community design: P3 and P5 sell 240 kWh to P2 and P4, all of it
    through the manager of {P2, P4, P5}: 240 kWh delivered, 480 kWh over links."""
    summary = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"), design="community")
    assert summary.summary().traded_energy_kwh == pytest.approx(240.0)
    assert summary.summary().link_energy_kwh == pytest.approx(480.0)


def test_energy_kpis_describe_the_market_as_cleared() -> None:
    """17-peer Case II under p2p: the paper clearing trades 610 kWh, its system-cost twin
    (which prices the bills) 700. The KPIs' energy figures are the paper clearing's."""
    scenario = p2pmarket.cases.load("seventeen-peer-case-2")
    run = run_market(scenario, "p2p", "paper")
    assert run.kpis.traded_kwh["total"] == pytest.approx(610.0)
    assert run.settlement.trades["energy_kwh"].sum() == pytest.approx(700.0)
    k = run.kpis.traded_kwh
    assert k["inside"] + k["between"] + k["with_grid"] == pytest.approx(k["total"])
