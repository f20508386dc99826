"""Reports (SPEC C7): figures inspected through their matplotlib objects, two image baselines,
the HTML report parsed, tables round-tripped through CSV and Parquet, the `report` command.

Set P2PMARKET_UPDATE_BASELINES=1 to rewrite the baseline images after a deliberate change.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
import typer
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle, RegularPolygon
from matplotlib.testing.compare import compare_images
from matplotlib.transforms import Bbox
from typer.testing import CliRunner

import p2pmarket
from p2pmarket.app.run import settle_result
from p2pmarket.cli.common import errors_to_exit_codes
from p2pmarket.cli.report_cmd import rebuild_result, report
from p2pmarket.core.results import ClearingResult
from p2pmarket.errors import MissingExtraError, OptionError, P2PMarketError, ScenarioError
from p2pmarket.io.results import write_run
from p2pmarket.paper import PaperCheck, Reproduction
from p2pmarket.reports import (
    PALETTE,
    bills_figure,
    busiest_period,
    design_comparison_figure,
    figure_png,
    format_value,
    generation_load_figure,
    imports_exports_figure,
    peer_colours,
    peer_styles,
    price_figure,
    read_tables,
    report_steps,
    result_tables,
    standard_figures,
    state_of_charge_figure,
    trade_network_figure,
    write_paper_reports,
    write_report,
    write_tables,
)
from p2pmarket.reports.markets import LOSS_COLOUR, SAVINGS_COLOUR
from p2pmarket.reports.style import BUY_COLOUR, GRID_COLOUR, SELL_COLOUR

BASELINES = Path(__file__).parent / "baseline_images"
BASELINE_DPI = 40


# --- fixtures: results are frozen and only read, so one clearing serves a module ----------


def _clear(name: str, design: str = "p2p") -> ClearingResult:
    return p2pmarket.clear(p2pmarket.cases.load(name), design=design, objective="paper")


@pytest.fixture(scope="module")
def five() -> ClearingResult:
    return _clear("five-peer-case-2")


@pytest.fixture(scope="module")
def five_community() -> ClearingResult:
    return _clear("five-peer-case-2", "community")


def _clashing_names() -> p2pmarket.Scenario:
    """five-peer-case-2 over three periods (loads x1, x0.5, x1.2), P2 renamed `C3` (the id of
    its own community, so the id of that community's manager too) and P4 `manager:C3`."""
    data = p2pmarket.cases.load("five-peer-case-2").to_dict()
    renamed = {"P2": "C3", "P4": "manager:C3"}
    for peer in data["peers"]:
        peer["id"] = renamed.get(peer["id"], peer["id"])
        if peer["load_kw"]:
            peer["load_kw"] = [peer["load_kw"] * k for k in (1.0, 0.5, 1.2)]
    for community in data["communities"]:
        community["members"] = [renamed.get(m, m) for m in community["members"]]
    data["periods"] = 3
    return p2pmarket.Scenario.from_dict(data)


@pytest.fixture(scope="module")
def clash() -> ClearingResult:
    """Community design with a peer named like its community's manager, and `manager:C3`."""
    return p2pmarket.clear(_clashing_names(), design="community")


@pytest.fixture(scope="module")
def day() -> ClearingResult:
    return _clear("seventeen-peer-case-3")


@pytest.fixture(scope="module")
def day_designs(day: ClearingResult) -> list[ClearingResult]:
    return [
        day,
        _clear("seventeen-peer-case-3", "community"),
        _clear("seventeen-peer-case-3", "hybrid"),
    ]


def _bills(result: ClearingResult) -> pd.DataFrame:
    """A bills table as settlement will give it, with made-up but consistent numbers."""
    peers = list(result.scenario.peer_ids)
    baseline = np.linspace(20.0, 60.0, len(peers))
    market = baseline - np.linspace(-2.0, 9.0, len(peers))
    return pd.DataFrame(
        {
            "peer": peers,
            "cost_baseline": baseline,
            "cost_market": market,
            "savings": baseline - market,
        }
    )


def _by_gid(fig: Figure, prefix: str) -> dict[str, Any]:
    """Artists whose gid starts with `prefix`, by the rest of their gid."""
    found = {}
    for artist in fig.findobj():
        gid = artist.get_gid()
        if gid is not None and gid.startswith(prefix):
            found[gid.removeprefix(prefix)] = artist
    return found


def _window(artist: Any, fig: Figure) -> Bbox:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return artist.get_window_extent(renderer)  # type: ignore[no-any-return]


def _legend_clear_of_axes(fig: Figure) -> None:
    """Every figure legend lies outside every axes that holds data."""
    fig.canvas.draw()
    assert fig.legends, "the figure has no legend"
    for legend in fig.legends:
        box = _window(legend, fig)
        for ax in fig.axes:
            if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>":
                assert not box.overlaps(ax.get_window_extent()), (legend, ax.get_title())


# --- styles ----------------------------------------------------------------------------------


def test_peer_styles_are_distinct_stable_and_colour_blind_safe(day: ClearingResult) -> None:
    styles = peer_styles(day.scenario)
    assert list(styles) == list(day.scenario.peer_ids)
    assert styles["grid"].colour == GRID_COLOUR
    others = [s for p, s in styles.items() if p != "grid"]
    assert len({(s.colour, s.hatch) for s in others}) == len(others) == 16
    assert {s.colour for s in others} <= set(PALETTE)
    # The same peer looks the same in another design of the scenario, and without the grid
    # role known (plain ids) the order alone decides.
    community = p2pmarket.cases.load("seventeen-peer-case-3").to_dict()
    community["design"] = "community"
    assert peer_styles(p2pmarket.Scenario.from_dict(community)) == styles
    assert peer_colours(["a", "b"]) == {"a": PALETTE[0], "b": PALETTE[1]}


# --- trade network ---------------------------------------------------------------------------


def test_trade_network_has_one_arrow_per_trade_sized_by_energy(five: ClearingResult) -> None:
    fig = trade_network_figure(five)
    arrows = _by_gid(fig, "trade:")
    trades = five.trades
    assert set(trades["seller_kind"]) == set(trades["buyer_kind"]) == {"peer"}  # p2p design
    assert set(arrows) == {
        f"peer:{s}->peer:{b}" for s, b in zip(trades["seller"], trades["buyer"], strict=True)
    }
    assert all(isinstance(a, FancyArrowPatch) for a in arrows.values())
    widths = {
        f"peer:{s}->peer:{b}": e
        for s, b, e in zip(trades["seller"], trades["buyer"], trades["energy_kwh"], strict=True)
    }
    by_energy = sorted(arrows, key=lambda k: widths[k])
    linewidths = [arrows[k].get_linewidth() for k in by_energy]
    assert linewidths == sorted(linewidths) and linewidths[0] < linewidths[-1]
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"80", "100", "60"} <= texts  # energy labels (kWh)
    assert {"P2", "P3", "P4", "P5", "grid", "C1", "C2", "C3"} <= texts


def test_trade_network_colours_peers_by_role_and_groups_communities(five: ClearingResult) -> None:
    fig = trade_network_figure(five)
    assert all(k.startswith("peer:") for k in _by_gid(fig, "node:"))  # p2p: peers only
    nodes = {k.removeprefix("peer:"): n for k, n in _by_gid(fig, "node:").items()}
    assert set(nodes) == set(five.scenario.peer_ids)
    face = {k: to_hex(n.get_facecolor()).upper() for k, n in nodes.items()}
    assert face["P3"] == face["P5"] == SELL_COLOUR
    assert face["P2"] == face["P4"] == BUY_COLOUR
    assert set(_by_gid(fig, "community:")) == {"C1", "C2", "C3"}
    # Members of a community sit inside its disc.
    disc = _by_gid(fig, "community:")["C3"]
    for peer in ("P2", "P4", "P5"):
        assert disc.contains_point(fig.axes[0].transData.transform(nodes[peer].center))
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:4] == ["seller", "buyer", "neither", "main grid"]
    assert fig.get_suptitle().startswith("Trades: 3 trades, 240.0 kWh")


def test_trade_network_draws_managers_in_the_community_design(
    five_community: ClearingResult,
) -> None:
    fig = trade_network_figure(five_community)
    # Node gids are `node:<kind>:<name>`; the manager of C3 is named C3.
    assert set(_by_gid(fig, "node:")) == {
        "peer:grid",
        "peer:P2",
        "peer:P3",
        "peer:P4",
        "peer:P5",
        "manager:C3",
    }
    assert isinstance(_by_gid(fig, "node:")["manager:C3"], RegularPolygon)
    assert len(_by_gid(fig, "trade:")) == len(five_community.trades) == 4
    assert "manager:C3->peer:P2" in _by_gid(fig, "trade:")
    assert "community manager (M)" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_trade_network_tells_peers_from_managers_by_kind_not_name(clash: ClearingResult) -> None:
    # The manager of community C3 is named C3, like the peer C3 (formerly P2); the peer
    # `manager:C3` (formerly P4) is a peer. C1 and C2 have one member each, so no manager.
    managers = clash.prices.loc[clash.prices["kind"] == "manager", "node"]
    assert set(managers) == {"C3"}
    for period in (0, 1):
        fig = trade_network_figure(clash, period)
        nodes = _by_gid(fig, "node:")
        peers = {f"peer:{p}" for p in ("grid", "C3", "P3", "manager:C3", "P5")}
        assert set(nodes) == peers | {"manager:C3"}
        assert len(nodes) == len(clash.scenario.peers) + 1 == 6  # one patch per node
        assert isinstance(nodes["manager:C3"], RegularPolygon)  # the manager's square
        assert isinstance(nodes["peer:C3"], Circle) and isinstance(nodes["peer:manager:C3"], Circle)
        assert nodes["peer:C3"].center != tuple(nodes["manager:C3"].xy)
        # One arrow per trade of the period, each between the patches of its two ends.
        trades = clash.trades[clash.trades["period"] == period]
        ends = [
            (f"{sk}:{s}", f"{bk}:{b}")
            for s, sk, b, bk in zip(
                trades["seller"],
                trades["seller_kind"],
                trades["buyer"],
                trades["buyer_kind"],
                strict=True,
            )
        ]
        arrows = _by_gid(fig, "trade:")
        assert len(arrows) == len(trades) == (4 if period == 0 else 3)
        assert set(arrows) == {f"{a}->{b}" for a, b in ends}
        for a, b in ends:
            assert arrows[f"{a}->{b}"].patchA is nodes[a]
            assert arrows[f"{a}->{b}"].patchB is nodes[b]
        # The manager sells to both peers whose names look like it.
        assert {"manager:C3->peer:C3", "manager:C3->peer:manager:C3"} <= set(arrows)
        texts = [t.get_text() for t in fig.axes[0].texts]
        # `manager:C3` is too long for its node: written once, outside it, with its role.
        assert texts.count("M") == 1
        assert [t.split("\n")[0] for t in texts].count("manager:C3") == 1
        label = _by_gid(fig, "label:")["peer:manager:C3"]
        fig.canvas.draw()
        assert not _window(label, fig).overlaps(_window(nodes["peer:manager:C3"], fig))
        figure_png(fig, dpi=40)


def test_trade_network_of_a_period_of_the_day(day: ClearingResult) -> None:
    busiest = busiest_period(day)
    energy = day.trades.groupby("period")["energy_kwh"].sum()
    assert energy[busiest] == energy.max()
    for period in (0, busiest):
        fig = trade_network_figure(day, period)
        assert len(_by_gid(fig, "trade:")) == int((day.trades["period"] == period).sum())
        assert f"period {period} ({period}-{period + 1} h)" in fig.get_suptitle()
    with pytest.raises(P2PMarketError, match="period 24"):
        trade_network_figure(day, 24)


# --- series over the horizon -----------------------------------------------------------------


def test_generation_is_stacked_by_peer_and_meets_the_load(day: ClearingResult) -> None:
    fig = generation_load_figure(day)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (h)" and ax.get_ylabel() == "power (kW)"
    assert "Generation by peer and total load" in fig.get_suptitle()
    layers = _by_gid(fig, "generation:")
    gen = day.dispatch.groupby("peer")["generation_kw"].max()
    assert set(layers) == {*gen[gen > 1e-6].index, "storage discharge"}
    assert all(isinstance(layer, PolyCollection) for layer in layers.values())
    d = day.dispatch.groupby("period")[
        ["load_kw", "flexible_load_kw", "charge_kw", "absorbed_kw"]
    ].sum()
    load, full = _by_gid(fig, "load")[""], _by_gid(fig, "load+charging")[""]
    np.testing.assert_allclose(load.get_ydata()[:-1], d["load_kw"] + d["flexible_load_kw"])
    # The top of the stack (generation + discharge) is the dashed line: the balance holds.
    supply = day.dispatch.groupby("period")[["generation_kw", "discharge_kw"]].sum().sum(axis=1)
    np.testing.assert_allclose(full.get_ydata()[:-1], supply, atol=1e-6)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["load + charging", "load (incl. flexible)"]
    _legend_clear_of_axes(fig)


def test_one_period_generation_is_two_stacked_bars(five: ClearingResult) -> None:
    fig = generation_load_figure(five)
    generation, load = _by_gid(fig, "generation:"), _by_gid(fig, "load:")
    assert set(generation) == {"P3", "P5"} and set(load) == {"P2", "P3", "P4", "P5"}
    height = {k: b.get_height() for k, b in generation.items()}
    assert height == pytest.approx({"P3": 110.0, "P5": 200.0})
    assert sum(b.get_height() for b in load.values()) == pytest.approx(310.0)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["generation", "load"]
    _legend_clear_of_axes(fig)


def test_imports_and_exports_get_one_panel_per_peer(day: ClearingResult) -> None:
    fig = imports_exports_figure(day)
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels][:3] == ["grid (C1)", "P2 (C2)", "P3 (C2)"]
    assert len(panels) == len(day.scenario.peers) == 17
    exports = _by_gid(fig, "export:")
    p6 = day.dispatch[day.dispatch["peer"] == "P6"].sort_values("period")["export_kw"].to_numpy()
    heights = [r.get_height() for r in fig.findobj(Rectangle) if r.get_gid() == "export:P6"]
    assert "P6" in exports and heights == pytest.approx(list(p6))
    imports = [r.get_height() for r in fig.findobj(Rectangle) if r.get_gid() == "import:P2"]
    assert max(imports) <= 0 < -min(imports)  # imports point down
    assert "power (kW)" in fig.get_supylabel()
    _legend_clear_of_axes(fig)


def test_one_period_imports_and_exports_are_bars_per_peer(five: ClearingResult) -> None:
    fig = imports_exports_figure(five)
    ax = fig.axes[0]
    up = [r.get_height() for r in ax.patches if r.get_gid() == "export"]
    down = [r.get_height() for r in ax.patches if r.get_gid() == "import"]
    assert up == pytest.approx([0, 0, 60, 0, 180]) and down == pytest.approx([0, -140, 0, -100, 0])
    assert [t.get_text() for t in ax.get_xticklabels()][1] == "P2 (C3)"


def test_state_of_charge_of_each_unit(day: ClearingResult) -> None:
    fig = state_of_charge_figure(day)
    top, bottom = fig.axes[:2]
    lines = _by_gid(fig, "soc:")
    assert set(lines) == {"P3", "P6"}
    soc = day.dispatch[day.dispatch["peer"] == "P6"].sort_values("period")["soc_kwh"].to_numpy()
    np.testing.assert_allclose(lines["P6"].get_ydata(), [0.0, *soc])
    capacity = _by_gid(fig, "capacity:")
    assert capacity["P6"].get_ydata()[0] == 60.0
    assert top.get_ylabel() == "state of charge (kWh)" and bottom.get_xlabel() == "time (h)"
    colours = peer_colours(day.scenario)
    assert to_hex(lines["P3"].get_color()).upper() == colours["P3"]
    _legend_clear_of_axes(fig)


def test_state_of_charge_without_storage_says_so(five: ClearingResult) -> None:
    fig = state_of_charge_figure(five)
    assert "no storage in this scenario" in [t.get_text() for t in fig.axes[0].texts]


def test_prices_are_a_map_of_nodes_by_period(day_designs: list[ClearingResult]) -> None:
    community = day_designs[1]
    fig = price_figure(community)
    mesh = next(a for a in fig.findobj(QuadMesh) if a.get_gid() == "prices")
    nodes = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(nodes) == community.prices["node"].nunique() == 21
    assert nodes[:3] == ["grid (C1)", "P2 (C2)", "P3 (C2)"] and "manager C2" in nodes
    values = np.asarray(mesh.get_array()).reshape(21, 24)
    expected = community.prices.pivot(index="node", columns="period", values="price_per_kwh")
    np.testing.assert_allclose(values[1], expected.loc["P2"].to_numpy())
    assert fig.axes[1].get_ylabel() == "price (USD/kWh)"  # the colour bar


def test_one_period_prices_are_bars(five_community: ClearingResult) -> None:
    fig = price_figure(five_community)
    bars = [p for p in fig.axes[0].patches if p.get_gid() == "prices"]
    assert len(bars) == len(five_community.prices) == 6
    assert fig.axes[0].get_xlabel() == "price (USD/kWh)"
    # Communities in the order of their first member, each member then the manager.
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["grid (C1)", "P2 (C3)", "P4 (C3)", "P5 (C3)", "manager C3", "P3 (C2)"]


def _price_of(result: ClearingResult, kind: str, node: str) -> np.ndarray:
    p = result.prices
    rows = p[(p["kind"] == kind) & (p["node"] == node)].sort_values("period")
    return rows["price_per_kwh"].to_numpy(float)


def test_prices_keep_a_peer_and_a_manager_of_one_name_apart_and_draw_nan(
    clash: ClearingResult,
) -> None:
    # The grid can never buy: no buying price in any period.
    assert np.isnan(_price_of(clash, "peer", "grid")).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = price_figure(clash)
        figure_png(fig, dpi=40)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [
        "grid (C1)",
        "C3 (C3)",
        "manager:C3 (C3)",
        "P5 (C3)",
        "manager C3",
        "P3 (C2)",
    ]
    mesh = next(a for a in fig.findobj(QuadMesh) if a.get_gid() == "prices")
    values = np.ma.getdata(mesh.get_array()).reshape(6, 3)
    masked = np.ma.getmaskarray(mesh.get_array()).reshape(6, 3)  # drawn in the "bad" colour
    assert np.isnan(values[0]).all() and masked[0].all() and masked.sum() == 3
    order = [("peer", "C3"), ("peer", "manager:C3"), ("peer", "P5"), ("manager", "C3")]
    order.append(("peer", "P3"))
    for row, (kind, node) in enumerate(order, start=1):
        np.testing.assert_allclose(values[row], _price_of(clash, kind, node))
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert cells[:3] == ["n/a"] * 3 and cells.count("n/a") == 3
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["n/a: no price (never buys)"]


def test_one_period_prices_draw_a_node_without_price(five_community: ClearingResult) -> None:
    assert np.isnan(_price_of(five_community, "peer", "grid")).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = price_figure(five_community)
        figure_png(fig, dpi=40)
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches if p.get_gid() == "prices"]
    assert widths[0] == 0.0 and all(np.isfinite(widths))
    assert widths[4] == pytest.approx(_price_of(five_community, "manager", "C3")[0])
    assert widths[1] == pytest.approx(_price_of(five_community, "peer", "P2")[0])
    labels = [t.get_text() for t in ax.texts]  # the bars' labels, in row order
    assert labels[0] == "n/a" and labels.count("n/a") == 1


def test_report_tables_keep_a_peer_and_a_manager_of_one_name_apart(
    clash: ClearingResult, tmp_path: Path
) -> None:
    # Before nodes had kinds, the price table's pivot by name refused the two `C3`s.
    page = _parse(write_report(clash, tmp_path))
    text = "".join(page.text)
    assert "manager:C3" in text
    rows = [t for t, _ in page.tags if t == "tr"]
    assert len(rows) > len(clash.trades) + clash.prices.groupby(["node", "kind"]).ngroups


def test_bills_figure_shows_costs_and_savings_per_peer(day: ClearingResult) -> None:
    bills = _bills(day)
    fig = bills_figure(bills, currency="EUR")
    left, right = fig.axes
    baseline = [p for p in left.patches if p.get_gid() == "cost_baseline"]
    market = [p for p in left.patches if p.get_gid() == "cost_market"]
    savings = [p for p in right.patches if p.get_gid() == "savings"]
    assert len(baseline) == len(savings) == 17
    assert [p.get_width() for p in savings] == pytest.approx(list(bills["savings"]))
    # Savings have a colour of their own, never the blue of "in the market" (issue 11).
    market_colour = {to_hex(p.get_facecolor()).upper() for p in market}
    saving_colours = {to_hex(p.get_facecolor()).upper() for p in savings}
    assert market_colour == {BUY_COLOUR} and not saving_colours & market_colour
    assert saving_colours == {SAVINGS_COLOUR, LOSS_COLOUR}  # the first peer loses 2 EUR
    assert to_hex(savings[0].get_facecolor()).upper() == LOSS_COLOUR
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["grid only (baseline)", "in the market", "savings"]
    assert "EUR" in left.get_xlabel() and "EUR" in right.get_xlabel()
    assert [t.get_text() for t in left.get_yticklabels()] == list(bills["peer"])
    with pytest.raises(P2PMarketError, match="savings"):
        bills_figure(bills.drop(columns="savings"))


def test_design_comparison_puts_results_side_by_side(day_designs: list[ClearingResult]) -> None:
    fig = design_comparison_figure(day_designs)
    objective, generation, routes = fig.axes
    heights = [p.get_height() for p in objective.patches if p.get_gid() == "objective"]
    assert heights == pytest.approx([r.objective for r in day_designs])
    assert [t.get_text() for t in objective.get_xticklabels()] == ["p2p", "community", "hybrid"]
    assert set(_by_gid(fig, "route:")) == {
        "p2p",
        "member-manager",
        "manager-member",
        "manager-manager",
    }
    p2p_route = [p.get_height() for p in routes.patches if p.get_gid() == "route:p2p"]
    assert p2p_route[0] == pytest.approx(day_designs[0].trades["energy_kwh"].sum())
    assert "kWh" in generation.get_ylabel()
    with pytest.raises(P2PMarketError):
        design_comparison_figure([])


def test_figures_leave_global_state_alone(five: ClearingResult) -> None:
    before = dict(matplotlib.rcParams)
    standard_figures(five, bills=_bills(five), comparison=[five])
    assert dict(matplotlib.rcParams) == before


def test_the_public_surface_is_pinned() -> None:
    import p2pmarket.reports as reports

    assert sorted(reports.__all__) == sorted(reports._MODULE_OF)
    assert all(getattr(reports, name) is not None for name in reports.__all__)
    with pytest.raises(AttributeError):
        _ = reports.no_such_figure


def test_reports_use_no_pyplot_and_the_core_imports_no_report() -> None:
    code = (
        "import sys, p2pmarket\n"
        "import p2pmarket.core.solve.lp, p2pmarket.core.analysis\n"
        "assert not [m for m in sys.modules if m.startswith(('p2pmarket.reports', 'matplotlib'))]\n"
        "import p2pmarket.cli.report_cmd, p2pmarket.reports.tables\n"
        "assert 'matplotlib' not in sys.modules  # the command line starts without it\n"
        "from p2pmarket.reports import standard_figures, figure_png\n"
        "r = p2pmarket.clear(p2pmarket.cases.load('five-peer-case-2'))\n"
        "for f in standard_figures(r).values(): figure_png(f)\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# --- image baselines -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "draw"),
    [
        ("five-peer-case-2-community-network", lambda r: trade_network_figure(r)),
        ("five-peer-case-2-community-generation", lambda r: generation_load_figure(r)),
    ],
)
def test_figures_match_their_baseline_images(
    name: str, draw: Any, five_community: ClearingResult, tmp_path: Path
) -> None:
    png = figure_png(draw(five_community), dpi=BASELINE_DPI)
    expected = BASELINES / f"{name}.png"
    if os.environ.get("P2PMARKET_UPDATE_BASELINES") == "1":
        expected.parent.mkdir(exist_ok=True)
        expected.write_bytes(png)
    actual = tmp_path / f"{name}.png"
    actual.write_bytes(png)
    assert compare_images(str(expected), str(actual), tol=3.0) is None


# --- HTML ------------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _self_contained(page: _Page) -> None:
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe"), tag
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http:", "https:", "//")), value


def test_report_embeds_every_figure_and_shows_the_kpis(
    day: ClearingResult, day_designs: list[ClearingResult], tmp_path: Path
) -> None:
    kpis = {
        "social_welfare": -1234.56789,
        "savings_jain_index": 0.9312,
        "note": "<b>P3 & P6</b>",
        "communities": {"C2": {"self_sufficiency": 0.75}},
    }
    path = write_report(day, tmp_path, bills=_bills(day), kpis=kpis, comparison=day_designs)
    assert path == tmp_path / "report.html"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left
    page = _parse(path)
    _self_contained(page)
    images = [a["src"] for t, a in page.tags if t == "img"]
    expected = standard_figures(day, bills=_bills(day), comparison=day_designs)
    assert len(images) == len(expected) == 7
    for src in images:
        assert src is not None and src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    figure_ids = [a["id"] for t, a in page.tags if t == "figure"]
    assert figure_ids == [f"figure-{name}" for name in expected]
    text = "".join(page.text)
    assert "1,321.78 USD" in text  # the objective as cleared, to cents
    assert "-1,234.57 USD" in text and "0.9312" in text  # money to cents; an index as is
    assert "social welfare" in text and "C2" in text and "75.0 %" in text  # shares in %
    assert "self_sufficiency" not in text and "social_welfare" not in text  # no raw keys
    assert "<b>P3 & P6</b>" in text  # escaped in the page, so text again once parsed
    assert "&lt;b&gt;P3 &amp; P6&lt;/b&gt;" in path.read_text(encoding="utf-8")
    rows = [t for t, _ in page.tags if t == "tr"]
    assert len(rows) > len(day.trades)  # every trade is a row


def test_format_value() -> None:
    assert format_value(1321.7834358) == "1,321.78"
    assert format_value(-0.0) == format_value(1.1e-16) == "0"
    assert format_value(np.int64(305)) == "305"
    assert format_value(float("nan")) == format_value(None) == ""
    assert format_value(True) == "yes"


def test_paper_reports_write_an_index_linking_every_case(
    five: ClearingResult, five_community: ClearingResult, tmp_path: Path
) -> None:
    checks = [
        PaperCheck("five-peer-case-2", "objective, paper accounting [$]", 28.456, five.objective),
        PaperCheck(
            "five-peer-case-2/3", "made-up <check>", None, 1.0, paper_says="x", agrees=False
        ),
    ]
    reproduction = Reproduction(
        checks, {"five-peer-case-2": five, "five-peer-case-3": five_community}
    )
    seen: list[str] = []
    index = write_paper_reports(reproduction, tmp_path, on_case=seen.append)
    assert index == tmp_path / "index.html" and seen == list(reproduction.results)
    page = _parse(index)
    _self_contained(page)
    links = [a["href"] for t, a in page.tags if t == "a"]
    assert links == ["five-peer-case-2/report.html", "five-peer-case-3/report.html"]
    pages = {}
    for link in links:
        assert link is not None
        case = _parse(tmp_path / link)
        assert len([t for t, _ in case.tags if t == "img"]) == 4  # no storage, no bills
        assert ("a", {"href": "../index.html"}) in case.tags
        pages[link.split("/")[0]] = "".join(case.text)
    # Each case's report shows the checks that concern it ("case-2/3" concerns both).
    assert "objective, paper accounting [$]" in pages["five-peer-case-2"]
    assert "objective, paper accounting [$]" not in pages["five-peer-case-3"]
    assert all("made-up <check>" in text for text in pages.values())
    text = "".join(page.text)
    assert "made-up <check>" in text and "28.456" in text
    assert "1 of 2" in text and "0 of 1" in text  # checks that agree, per case


# --- tables ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tables_round_trip(fmt: str, day: ClearingResult, tmp_path: Path) -> None:
    tables = result_tables(day, bills=_bills(day))
    assert list(tables) == [
        "dispatch",
        "trades",
        "prices",
        "peer_totals",
        "storage",
        "role_changes",
        "bills",
    ]
    written = write_tables(tables, tmp_path, format=fmt)
    assert {p.name for p in written} == {*(f"{n}.{fmt}" for n in tables), "tables.json"}
    back = read_tables(tmp_path, format=fmt)
    assert list(back) == list(tables)
    exact = fmt == "parquet"  # CSV floats are rounded to 6 decimals (docs/prices.md)
    for name, table in tables.items():
        pd.testing.assert_frame_equal(back[name], table, check_exact=exact, atol=5e-7, rtol=0)


def test_tables_keep_missing_values_and_odd_names(tmp_path: Path) -> None:
    result = _clear("five-peer-case-1")  # no communities: `community` is missing everywhere
    bills = pd.DataFrame(
        {
            "peer": ["NA", "None"],
            "cost_baseline": [1.5, np.nan],
            "cost_market": [1.0, 2.0],
            "savings": [0.5, np.nan],
        }
    )
    tables = result_tables(result, bills=bills)
    assert tables["storage"].empty and tables["dispatch"]["community"].isna().all()
    write_tables(tables, tmp_path, format="csv")
    write_tables(tables, tmp_path, format="parquet")
    manifest = json.loads((tmp_path / "tables.json").read_text())["tables"]
    assert manifest["bills"]["files"] == {"csv": "bills.csv", "parquet": "bills.parquet"}
    for fmt in ("csv", "parquet"):
        back = read_tables(tmp_path, format=fmt)
        assert list(back["bills"]["peer"]) == ["NA", "None"]
        exact = fmt == "parquet"  # CSV floats are rounded to 6 decimals (docs/prices.md)
        for name, table in tables.items():
            pd.testing.assert_frame_equal(back[name], table, check_exact=exact, atol=5e-7, rtol=0)


def test_parquet_without_pyarrow_says_how_to_get_it(
    five: ClearingResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'p2pmarket\[parquet\]'") as missing:
        write_tables(result_tables(five), tmp_path, format="parquet")
    assert (missing.value.package, missing.value.extra) == ("pyarrow", "parquet")
    assert not list(tmp_path.iterdir())
    with pytest.raises(OptionError, match="'xlsx' is not one of csv, parquet"):
        write_tables(result_tables(five), tmp_path, format="xlsx")


# --- the `report` command ----------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(errors_to_exit_codes(report))
    return app


def test_report_command_rebuilds_a_run_directory(
    five_community: ClearingResult, tmp_path: Path
) -> None:
    write_run(five_community, tmp_path)
    (tmp_path / "kpis.json").write_text(json.dumps({"social_welfare": -42.125}))
    # A settlement's bills, every column (the command checks bills.csv has them all).
    settle_result(five_community).bills.to_csv(tmp_path / "bills.csv", index=False)
    done = CliRunner().invoke(_cli(), [str(tmp_path), "--format", "parquet"])
    assert done.exit_code == 0, done.output
    assert "report.html" in done.output
    rebuilt = rebuild_result(tmp_path)
    assert rebuilt.design == "community" and rebuilt.objective == pytest.approx(
        five_community.objective
    )
    page = _parse(tmp_path / "report.html")
    assert len([t for t, _ in page.tags if t == "img"]) == 5  # with the bills
    assert "-42.12 USD" in "".join(page.text)  # social welfare to cents (half to even)
    assert (tmp_path / "dispatch.parquet").is_file() and (tmp_path / "bills.parquet").is_file()


def test_report_command_refuses_a_directory_that_is_no_run(tmp_path: Path) -> None:
    done = CliRunner().invoke(_cli(), [str(tmp_path)])
    assert done.exit_code == 2
    assert "no scenario.yaml" in done.output and len(done.output.strip().splitlines()) == 1
    (tmp_path / "scenario.yaml").write_text("peers: []\n")
    (tmp_path / "summary.json").write_text(
        json.dumps({"design": "auction", "objective_kind": "paper"})
    )
    with pytest.raises(ScenarioError, match=r"summary\.json\.design"):
        rebuild_result(tmp_path)


# --- issue 11: the prices a report shows, steps, labels --------------------------------------


def test_a_paper_report_shows_the_billed_prices_and_says_so(
    day: ClearingResult, tmp_path: Path
) -> None:
    priced = p2pmarket.clear(day.scenario, design=day.design, objective="system-cost")
    fig = standard_figures(day, priced=priced)["prices"]
    mesh = next(a for a in fig.findobj(QuadMesh) if a.get_gid() == "prices")
    values = np.asarray(mesh.get_array()).reshape(17, 24)
    np.testing.assert_allclose(values[1], _price_of(priced, "peer", "P2"))
    assert not np.allclose(values[1], _price_of(day, "peer", "P2"))  # not the paper's duals
    seen: list[str] = []
    path = write_report(day, tmp_path, priced=priced, on_step=seen.append)
    assert seen == report_steps(day)
    text = "".join(_parse(path).text)
    largest = np.nanmax(day.prices["price_per_kwh"].to_numpy(float))
    assert "Prices shown are the system-cost prices that the bills use" in text
    assert f"up to {largest:.4f} USD/kWh" in text
    assert "1,321.78 USD" in text  # the objective as cleared, under the paper's objective


def test_the_report_writes_words_units_and_hides_timings(
    five: ClearingResult, tmp_path: Path
) -> None:
    kpis = settle_kpis(five)
    assert kpis["baseline_note"] == ""
    page = write_report(five, tmp_path, kpis=kpis).read_text(encoding="utf-8")
    visible, technical = page.split("<details class='technical'>", 1)
    for raw in ("traded_energy_kwh", "build_seconds", "self_sufficiency", "baseline_note"):
        assert raw not in visible, raw
    assert "time to build the model (s)" in technical.split("</details>", 1)[0]
    assert "note on the baseline" not in page  # an empty value is no row
    assert "energy traded" in visible and " kWh<" in visible and " %<" in visible
    assert " USD<" in visible


def settle_kpis(result: ClearingResult) -> dict[str, Any]:
    from p2pmarket.core.kpis import kpis

    return kpis(result, settle_result(result)).to_dict()
