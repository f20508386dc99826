"""Figures and report section of the feeder (SPEC C12): the feeder drawn with its voltages
and loadings, and what the feeder changed in the market (docs/feeder.md).

- `feeder_figure`: buses coloured by LinDistFlow voltage (pu), branches by loading (% of
  rating), each with its colour bar; the peers' buses labelled. Drawn at pandapower's
  geodata where every bus has coordinates, else as a tree (root on top, one row per depth).
- `feeder_comparison_figure`: energy each peer sold and bought, and its price in the
  period shown, with and without the feeder; the price's energy, congestion and voltage terms.
- `feeder_report_parts`: the report's section (figures, decomposition and validation
  tables) for `p2pmarket.reports.html`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from p2pmarket.app.feeder import FeederRun
from p2pmarket.core.feeder import FeederOutcome
from p2pmarket.io.atomic import write_bytes_atomic
from p2pmarket.reports.style import figure_png, new_figure

__all__ = [
    "FEEDER_COMPARISON_FIGURE",
    "FEEDER_FIGURE",
    "feeder_comparison_figure",
    "feeder_figure",
    "feeder_report_parts",
    "shown_period",
    "write_feeder_figures",
]

FEEDER_FIGURE = "feeder.png"
FEEDER_COMPARISON_FIGURE = "feeder_comparison.png"
_DPI = 110


def shown_period(outcome: FeederOutcome) -> int:
    """The period the figures show: the one whose limits cost most (largest sum of shadow
    prices), else the one with the largest voltage deviation from 1 pu."""
    binding = outcome.binding
    if len(binding):
        cost = binding.groupby("period")["shadow_price"].sum()
        return int(cost.index[int(np.argmax(cost.to_numpy()))])
    deviation = (outcome.buses["vm_pu"] - 1.0).abs().to_numpy()
    return int(outcome.buses["period"].to_numpy()[int(np.argmax(deviation))])


def feeder_figure(outcome: FeederOutcome, period: int | None = None) -> Figure:
    """The feeder in `period` (default `shown_period`): bus voltage and branch loading."""
    t = shown_period(outcome) if period is None else period
    model = outcome.model
    topo = model.topology
    section = model.section
    pos = _positions(outcome)
    vm = outcome.buses[outcome.buses.period == t].set_index("bus")["vm_pu"]
    loading = outcome.branches[outcome.branches.period == t].set_index("branch")
    fig = new_figure(10, 6.5)
    ax = fig.add_subplot()
    graph = nx.Graph()
    graph.add_nodes_from(topo.buses)
    edges = list(zip(loading["from_bus"], loading["to_bus"], strict=True))
    graph.add_edges_from(edges)
    percent = loading["loading_percent"].to_numpy(dtype=float)
    finite = np.where(np.isfinite(percent), percent, 0.0)
    line_norm = Normalize(0.0, max(100.0, float(finite.max(initial=0.0))))
    line_map = mpl.colormaps["YlOrRd"]
    nx.draw_networkx_edges(
        graph, pos, edgelist=edges, ax=ax, width=2.2,
        edge_color=[line_map(line_norm(v)) for v in finite],
    )  # fmt: skip
    low, high = section.vmin_pu, section.vmax_pu
    volt_norm = TwoSlopeNorm(vcenter=1.0, vmin=min(low, vm.min()), vmax=max(high, vm.max()))
    volt_map = mpl.colormaps["coolwarm"]
    peer_buses = set(topo.buses[model.bus])
    sizes = [60 if b in peer_buses else 14 for b in topo.buses]
    nx.draw_networkx_nodes(
        graph, pos, ax=ax, node_size=sizes, linewidths=0.4, edgecolors="#333333",
        node_color=[volt_map(volt_norm(vm[b])) for b in topo.buses],
    )  # fmt: skip
    labels: dict[str, str] = {}
    for peer, b in zip(model.peers, topo.buses[model.bus], strict=True):
        labels[b] = f"{labels[b]}, {peer}" if b in labels else str(peer)
    nx.draw_networkx_labels(
        graph, {b: (x, y) for b, (x, y) in pos.items()}, labels=labels, ax=ax, font_size=7,
        verticalalignment="bottom",
    )  # fmt: skip
    root = topo.buses[topo.root]
    ax.annotate("grid", pos[root], xytext=(6, 6), textcoords="offset points", fontsize=8)
    ax.set_axis_off()
    over = vm[vm > high + 1e-9].size
    ax.set_title(
        f"{section.network.name}, period {t}: bus voltage (LinDistFlow) and branch loading"
        + (f"; {over} buses above {high:g} pu" if over else ""),
        fontsize=10,
    )
    volt_bar = fig.colorbar(mpl.cm.ScalarMappable(volt_norm, volt_map), ax=ax, shrink=0.7)
    volt_bar.set_label("bus voltage (pu)")
    for level in (low, high):
        volt_bar.ax.axhline(level, color="black", linewidth=1.0)
    line_bar = fig.colorbar(
        mpl.cm.ScalarMappable(line_norm, line_map),
        ax=ax,
        shrink=0.5,
        location="bottom",
        pad=0.02,
    )
    line_bar.set_label("branch loading (% of rating)")
    return fig


def _positions(outcome: FeederOutcome) -> dict[str, tuple[float, float]]:
    """Bus coordinates from the feeder where every bus has them, else a tree layout."""
    network = outcome.model.section.network
    if all(b.x is not None and b.y is not None for b in network.buses):
        return {b.id: (float(b.x or 0.0), float(b.y or 0.0)) for b in network.buses}
    topo = outcome.model.topology
    children: dict[int, list[int]] = {}
    for parent, child in zip(topo.parent, topo.child, strict=True):
        children.setdefault(int(parent), []).append(int(child))
    x: dict[int, float] = {}
    next_leaf = 0.0
    stack: list[tuple[int, bool]] = [(topo.root, False)]
    while stack:  # depth first: leaves get consecutive columns, a parent the mean of its own
        bus, done = stack.pop()
        kids = children.get(bus, [])
        if done or not kids:
            if kids:
                x[bus] = float(np.mean([x[k] for k in kids]))
            else:
                x[bus], next_leaf = next_leaf, next_leaf + 1.0
            continue
        stack.append((bus, True))
        stack.extend((k, False) for k in reversed(kids))
    return {str(topo.buses[b]): (x[b], -float(topo.depth[b])) for b in range(len(topo.buses))}


def feeder_comparison_figure(run: FeederRun, period: int | None = None) -> Figure:
    """What the feeder changed: energy sold and bought per peer over the horizon and the
    price in `period` (default `shown_period`), with and without the feeder; the price's
    terms with it."""
    t = shown_period(run.outcome) if period is None else period
    peers = list(run.outcome.model.peers)
    fig = new_figure(11, 7.5)
    top, middle, bottom = fig.subplots(3, 1)
    hours = run.constrained.scenario.period_hours
    width = 0.38
    x = np.arange(len(peers))
    for offset, result, name, colour in (
        (-width / 2, run.unconstrained, "without feeder", "#9aa5b1"),
        (width / 2, run.constrained, "with feeder", "#1f6fb2"),
    ):
        d = result.dispatch.set_index(["peer", "period"])
        net = d["net_import_kw"].unstack("period").reindex(peers) * hours
        top.bar(x + offset, net.clip(lower=0).sum(axis=1), width, color=colour, label=name)
        top.bar(x + offset, net.clip(upper=0).sum(axis=1), width, color=colour, alpha=0.55)
        price = d["price_per_kwh"].fillna(d["sell_price_per_kwh"]).xs(t, level="period")
        middle.bar(x + offset, price.reindex(peers), width, color=colour, label=name)
    currency = run.constrained.scenario.currency
    _peer_axis(top, peers, "energy bought (+) and sold (-), kWh")
    top.axhline(0, color="black", linewidth=0.6)
    top.legend(fontsize=8, frameon=False)
    top.set_title("Net energy per peer over the horizon", fontsize=10)
    _peer_axis(middle, peers, f"price ({currency}/kWh)")
    middle.set_title(f"Price per peer in period {t}", fontsize=10)
    middle.legend(fontsize=8, frameon=False)
    terms = run.outcome.prices[run.outcome.prices.period == t].set_index("peer").reindex(peers)
    _stacked_terms(bottom, x, terms)
    _peer_axis(bottom, peers, f"{currency}/kWh")
    bottom.set_title(
        f"Price with the feeder, period {t}: energy + congestion + voltage", fontsize=10
    )
    return fig


def _stacked_terms(ax: Axes, x: np.ndarray, terms: pd.DataFrame) -> None:
    """Energy, congestion and voltage terms as bars stacked from zero, positive parts up and
    negative parts down, with the price they sum to as a marker."""
    up = np.zeros(len(x))
    down = np.zeros(len(x))
    for column, label, colour in (
        ("energy_per_kwh", "energy", "#4c956c"),
        ("congestion_per_kwh", "congestion", "#d1495b"),
        ("voltage_per_kwh", "voltage", "#edae49"),
    ):
        values = terms[column].to_numpy(dtype=float)
        values = np.nan_to_num(values)
        base = np.where(values >= 0, up, down)
        ax.bar(x, values, 0.6, bottom=base, color=colour, label=label)
        up = np.where(values >= 0, up + values, up)
        down = np.where(values < 0, down + values, down)
    price = terms["price_per_kwh"].to_numpy(dtype=float)
    ax.scatter(x, price, color="black", marker="_", s=200, label="price", zorder=3)
    ax.axhline(0, color="black", linewidth=0.6)
    # Room above the tallest bar and below the deepest for the legend (no bar clipped).
    top = max(float(up.max(initial=0.0)), float(np.nanmax(price, initial=0.0)))
    ax.set_ylim(min(float(down.min(initial=0.0)) * 1.2, 0.0), top * 1.3 if top > 0 else 1.0)
    ax.legend(fontsize=8, frameon=False, ncols=4, loc="upper right")


def _peer_axis(ax: Axes, peers: Sequence[str], ylabel: str) -> None:
    ax.set_xticks(np.arange(len(peers)), peers, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def write_feeder_figures(run: FeederRun, out: Path) -> list[Path]:
    """`feeder.png` and `feeder_comparison.png` in `out`, for the period `shown_period`."""
    t = shown_period(run.outcome)
    written = []
    for name, fig in (
        (FEEDER_FIGURE, feeder_figure(run.outcome, t)),
        (FEEDER_COMPARISON_FIGURE, feeder_comparison_figure(run, t)),
    ):
        write_bytes_atomic(out / name, figure_png(fig, dpi=_DPI))
        fig.clear()
        written.append(out / name)
    return written


def feeder_report_parts(run: FeederRun) -> list[str]:
    """The report's feeder section: both figures, the binding limits, the price
    decomposition of the period shown, and the AC validation (HTML, escaped)."""
    from p2pmarket.reports.html import figure_html

    t = shown_period(run.outcome)
    parts = ['<h2 id="feeder">The feeder</h2>']
    section = run.outcome.model.section
    parts.append(
        "<p>"
        + html.escape(
            f"{section.network.name} ({section.source or 'inline'}): voltages kept within"
            f" {section.vmin_pu:g}-{section.vmax_pu:g} pu, lines and transformers within"
            f" {section.max_loading_percent:g} % of their rating, by LinDistFlow in the"
            f" market's LP. Objective {run.constrained.objective:,.4f} with the feeder,"
            f" {run.unconstrained.objective:,.4f} without."
        )
        + "</p>"
    )
    for name, fig, caption in (
        ("feeder", feeder_figure(run.outcome, t), f"The feeder in period {t}."),
        (
            "feeder-comparison",
            feeder_comparison_figure(run, t),
            "Trades and prices with and without the feeder.",
        ),
    ):
        parts.append(figure_html(name, figure_png(fig, dpi=_DPI), caption))
        fig.clear()
    binding = run.outcome.binding
    parts.append(f"<h3>Binding limits ({len(binding)} row-periods)</h3>")
    if len(binding):
        parts.append(_html_table(binding.head(50)))
    parts.append(f"<h3>Price decomposition, period {t}</h3>")
    parts.append(_html_table(run.outcome.prices[run.outcome.prices.period == t]))
    parts.append("<h3>LinDistFlow against AC power flow (pandapower)</h3>")
    if run.validation is None:
        parts.append(f"<p class='note'>{html.escape(run.note)}</p>")
    else:
        v = run.validation
        parts.append(
            "<p>"
            + html.escape(
                f"Largest |dV| {v['max_abs_dv_pu'].max():.5f} pu, largest loading error"
                f" {v['max_loading_error_percent'].max():.3f} percentage points over"
                f" {len(v)} periods."
            )
            + "</p>"
        )
        parts.append(_html_table(v))
    return parts


def _html_table(frame: pd.DataFrame) -> str:
    """A plain escaped HTML table (numbers to 6 significant digits)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = "".join(
            f"<td class='num'>{v:.6g}</td>"
            if isinstance(v, float)
            else f"<td>{html.escape(str(v))}</td>"
            for v in record
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
