"""Figures of a cleared market over its horizon (SPEC C7), each returning a `Figure`.

Time runs along x in hours from the start of the horizon; period p covers [p·Δt, (p+1)·Δt],
so the paper's "hour 7" is period 6. A horizon of one period is drawn with bars per peer
instead of series over time. Colours and the canvas come from `p2pmarket.reports.style`;
the trade network of a period from `p2pmarket.reports.network`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.patheffects import AbstractPathEffect
from matplotlib.ticker import FuncFormatter

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Storage
from p2pmarket.reports.axes import (
    EPS,
    WIDTH,
    figure_title,
    one_period,
    period_edges,
    pivot,
    reversed_legend,
    steps,
    time_axis,
)
from p2pmarket.reports.markets import (
    BILL_COLUMNS,
    bills_figure,
    design_comparison_figure,
    price_figure,
)
from p2pmarket.reports.network import trade_network_figure
from p2pmarket.reports.scale import (
    MAX_PANELS,
    by_group,
    group_of,
    group_styles,
    keep_largest,
    series_of,
)
from p2pmarket.reports.style import (
    BUY_COLOUR,
    SELL_COLOUR,
    PeerStyle,
    new_figure,
    peer_styles,
    with_community,
)
from p2pmarket.types import Objective

__all__ = [
    "BILL_COLUMNS",
    "FIGURE_STEPS",
    "bills_figure",
    "design_comparison_figure",
    "draw_figure",
    "figure_steps",
    "generation_load_figure",
    "imports_exports_figure",
    "price_figure",
    "shows_billed_prices",
    "standard_figures",
    "state_of_charge_figure",
]


def standard_figures(
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    comparison: Sequence[ClearingResult] = (),
    period: int | None = None,
    priced: ClearingResult | None = None,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Figure]:
    """Every figure that applies to `result`, by name, in reading order (`figure_steps`).

    The state of charge only with storage, bills only when given, the design comparison only
    with `comparison` (results of the same scenario under other designs). `priced`, the
    clearing whose prices the bills charge (the `system-cost` twin of a `paper` clearing),
    gives the prices drawn. `on_step(description)` is called before each figure is drawn.
    """
    figures: dict[str, Figure] = {}
    for name, description in figure_steps(result, bills=bills, comparison=comparison):
        if on_step is not None:
            on_step(description)
        figures[name] = draw_figure(
            name, result, bills=bills, comparison=comparison, period=period, priced=priced
        )
    return figures


FIGURE_STEPS = {
    "trade-network": "drawing the trade network",
    "generation-load": "drawing generation and load",
    "imports-exports": "drawing imports and exports",
    "state-of-charge": "drawing the state of charge",
    "prices": "drawing the prices",
    "bills": "drawing the bills",
    "design-comparison": "drawing the design comparison",
}
"""Figure name -> what `on_step` is told before it is drawn."""


def figure_steps(
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    comparison: Sequence[ClearingResult] = (),
) -> list[tuple[str, str]]:
    """(name, description) of each figure `standard_figures` draws for these arguments."""
    names = ["trade-network", "generation-load", "imports-exports"]
    if any(p.storage is not None for p in result.scenario.peers):
        names.append("state-of-charge")
    names.append("prices")
    if bills is not None:
        names.append("bills")
    if comparison:
        names.append("design-comparison")
    return [(name, FIGURE_STEPS[name]) for name in names]


def shows_billed_prices(result: ClearingResult, priced: ClearingResult | None) -> bool:
    """Whether `priced` is another clearing than `result` whose prices a report shows."""
    return (
        priced is not None
        and priced is not result
        and result.objective_kind == Objective.PAPER
        and priced.objective_kind != Objective.PAPER
    )


def draw_figure(
    name: str,
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    comparison: Sequence[ClearingResult] = (),
    period: int | None = None,
    priced: ClearingResult | None = None,
) -> Figure:
    """The figure `name` of `standard_figures` (one of `FIGURE_STEPS`), drawn alone."""
    if name == "trade-network":
        return trade_network_figure(result, period)
    if name == "generation-load":
        return generation_load_figure(result)
    if name == "imports-exports":
        return imports_exports_figure(result)
    if name == "state-of-charge":
        return state_of_charge_figure(result)
    if name == "prices":
        if priced is not None and shows_billed_prices(result, priced):
            return price_figure(priced, note="system-cost prices, as billed")
        return price_figure(result)
    if name == "bills" and bills is not None:
        return bills_figure(
            bills, currency=result.scenario.currency, groups=group_of(result.scenario)
        )
    return design_comparison_figure(comparison)


def generation_load_figure(result: ClearingResult) -> Figure:
    """Generation stacked by peer against the total load over the horizon (Figure 10).

    With storage, discharge is stacked on top of generation and a dashed line adds charging
    (and what the grid absorbs) to the load, so the stack meets the dashed line every period.
    With one period: one bar of generation and one of load, each stacked by peer.
    """
    (gen, load), styles, what = series_of(
        result,
        pivot(result, "generation_kw"),
        pivot(result, "load_kw") + pivot(result, "flexible_load_kw"),
    )
    producing = [p for p in gen.columns if gen[p].max() > EPS]
    fig = new_figure(WIDTH, 5.0)
    ax = fig.subplots()
    ax.set_ylabel("power (kW)")
    if result.scenario.periods == 1:
        _stacked_bar(ax, 0, gen.iloc[0], styles, "generation")
        _stacked_bar(ax, 1, load.iloc[0], styles, "load")
        ax.set_xticks([0, 1], ["generation", "load"])
        ax.set_xlim(-0.8, 1.8)
        ax.grid(axis="y", color="#E5E5E5")
        ax.set_axisbelow(True)
        figure_title(fig, result, f"Generation and load by {what} {one_period(result)}")
        handles = [
            Patch(facecolor=styles[p].colour, hatch=styles[p].hatch, edgecolor="white", label=p)
            for p in gen.columns
            if gen[p].iloc[0] > EPS or load[p].iloc[0] > EPS
        ]
        fig.legend(
            handles=handles[::-1],
            loc="outside right upper",
            title=what,
            fontsize=9,
            frameon=False,
        )
        return fig
    edges = period_edges(result)
    layers = [steps(gen[p]) for p in producing]
    colours = [styles[p].colour for p in producing]
    labels = list(producing)
    discharge = pivot(result, "discharge_kw").sum(axis=1)
    if discharge.max() > EPS:
        layers.append(steps(discharge))
        colours.append("#BBBBBB")
        labels.append("storage discharge")
    polys = ax.stackplot(
        edges, layers, colors=colours, labels=labels, step="post", edgecolor="white", linewidth=0.4
    )
    for poly, label in zip(polys, labels, strict=True):
        hatch = styles[label].hatch if label in styles else "xx"
        poly.set_hatch(hatch)
        poly.set_gid(f"generation:{label}")
    total_load = load.sum(axis=1)
    ax.step(
        edges,
        steps(total_load),
        where="post",
        color="black",
        linewidth=2.2,
        label="load (incl. flexible)",
        gid="load",
    )
    charging = pivot(result, "charge_kw").sum(axis=1)
    absorbed = pivot(result, "absorbed_kw").sum(axis=1)
    extra = charging + absorbed
    if extra.max() > EPS:
        extras = [
            w for w, v in (("charging", charging), ("grid absorption", absorbed)) if v.max() > EPS
        ]
        ax.step(
            edges,
            steps(total_load + extra),
            where="post",
            color="black",
            linewidth=1.4,
            linestyle="--",
            label=f"load + {' + '.join(extras)}",
            gid="load+charging",
        )
    time_axis(ax, result)
    ax.set_ylim(bottom=0)
    figure_title(fig, result, f"Generation by {what} and total load")
    reversed_legend(fig, ax, f"generation by {what}")
    return fig


def _stacked_bar(
    ax: Axes, x: float, values: pd.Series, styles: Mapping[str, PeerStyle], what: str
) -> None:
    bottom = 0.0
    for peer, value in values.items():
        if value <= EPS:
            continue
        style = styles[str(peer)]
        bar = ax.bar(
            x,
            value,
            bottom=bottom,
            width=0.6,
            color=style.colour,
            hatch=style.hatch,
            edgecolor="white",
            linewidth=0.6,
            gid=f"{what}:{peer}",
        )
        if value > 0.06 * values.sum():
            ax.bar_label(
                bar,
                [f"{peer}\n{value:,.0f}"],
                label_type="center",
                fontsize=8,
                color="black",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1},
            )
        bottom += float(value)
    ax.text(x, bottom, f"{bottom:,.1f} kW", ha="center", va="bottom", fontsize=9)


def imports_exports_figure(result: ClearingResult) -> Figure:
    """Imports and exports of every peer over the horizon (Figure 11).

    One small panel per peer on a shared scale: exports upwards (vermillion), imports
    downwards (blue). With one period: one axes, a pair of bars per peer. A large market
    (`p2pmarket.reports.scale`) has one panel per community, its members' imports and
    exports summed, at most `MAX_PANELS` (the smallest summed as others).
    """
    (imports, exports), _, what = series_of(
        result, pivot(result, "import_kw"), pivot(result, "export_kw"), limit=MAX_PANELS
    )
    owner = result.scenario.community_of()
    if what == "peer":
        names = {p: with_community(p, owner) for p in imports.columns}
    else:
        groups = group_of(result.scenario)
        size = pd.Series(groups).value_counts()
        names = {
            g: f"{g} ({size[g]} peers)" if g in size.index and g != "grid" else str(g)
            for g in imports.columns
        }
    peers = [str(p) for p in imports.columns]
    many = len(peers) > 8
    if result.scenario.periods == 1:
        fig = new_figure(WIDTH if many else 8.0, 5.0)
        ax = fig.subplots()
        x = np.arange(len(peers))
        up = ax.bar(x, exports.iloc[0], width=0.7, color=SELL_COLOUR, label="export", gid="export")
        down = ax.bar(
            x, -imports.iloc[0], width=0.7, color=BUY_COLOUR, label="import", gid="import"
        )
        for bars, values in ((up, exports.iloc[0]), (down, imports.iloc[0])):
            ax.bar_label(
                bars,
                [f"{v:,.0f}" if v > EPS else "" for v in values.to_numpy(float)],
                padding=2,
                fontsize=8 if len(peers) <= 16 else 6,
            )
        ax.set_xticks(
            x,
            [names[p] for p in peers],
            rotation=45 if many else 0,
            ha="right" if many else "center",
            rotation_mode="anchor",
            fontsize=9 if len(peers) <= 16 else 8,
        )
        ax.axhline(0, color="black", linewidth=0.8)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
        ax.set_ylabel("power (kW): export up, import down")
        ax.margins(y=0.12)
        ax.grid(axis="y", color="#E5E5E5")
        ax.set_axisbelow(True)
        figure_title(fig, result, f"Imports and exports per {what} {one_period(result)}")
        fig.legend(loc="outside right upper", frameon=False)
        return fig
    ncols = len(peers) if len(peers) <= 6 else 6
    nrows = math.ceil(len(peers) / ncols)
    fig = new_figure(WIDTH + 2 if ncols > 4 else WIDTH, 1.0 + 2.0 * nrows)
    # One scale for all panels; by community, the grid (which serves them all) has its own.
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=what == "peer", squeeze=False)
    if what != "peer":
        scaled = [ax for ax, p in zip(axes.flat, peers, strict=False) if p != "grid"]
        for ax in scaled[1:]:
            ax.sharey(scaled[0])
    centres = (period_edges(result)[:-1] + period_edges(result)[1:]) / 2
    width = 0.85 * result.scenario.period_hours
    for ax, peer in zip(axes.flat, peers, strict=False):
        ax.bar(
            centres,
            exports[peer],
            width=width,
            color=SELL_COLOUR,
            gid=f"export:{peer}",
            label="export",
        )
        ax.bar(
            centres,
            -imports[peer],
            width=width,
            color=BUY_COLOUR,
            gid=f"import:{peer}",
            label="import",
        )
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(_fit(names[peer], 22), fontsize=9, pad=3)
        if exports[peer].max() <= EPS and imports[peer].max() <= EPS:
            ax.text(
                0.5,
                0.5,
                "no trades",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=8,
                color="#888888",
            )
        time_axis(ax, result, ticks=4)
        ax.set_xlabel("")
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(peers) :]:
        ax.set_axis_off()
    for ax in axes.flat:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
    summed = "" if what == "peer" else ", members summed"
    fig.supylabel(f"power (kW): export up, import down{summed}", fontsize=10)
    fig.supxlabel("time (h)", fontsize=10)
    figure_title(fig, result, f"Imports and exports per {what}")
    fig.legend(
        handles=[Patch(color=SELL_COLOUR, label="export"), Patch(color=BUY_COLOUR, label="import")],
        loc="outside right upper",
        frameon=False,
    )
    return fig


def _fit(text: str, chars: int) -> str:
    """`text` cut to `chars` characters with an ellipsis, so that it fits its place."""
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"


MAX_UNITS = 6
"""Storage units drawn one by one at most; past this, their sum by community."""
CHARGE_COLOUR = "#4D4D4D"
DISCHARGE_COLOUR = "#AAAAAA"
CAPACITY_COLOUR = "#333333"


def state_of_charge_figure(result: ClearingResult) -> Figure:
    """State of charge of every storage unit over the horizon, and its charge and discharge.

    Top: state of charge (kWh) at the end of each period, starting from the initial state,
    with each unit's capacity dashed in dark grey. Bottom: charge upwards, discharge
    downwards (kW). Past `MAX_UNITS` units: the energy stored, stacked by community, against
    the capacity of all units, and the charge and discharge of all units.
    """
    styles = peer_styles(result.scenario)
    units = [(p.id, p.storage) for p in result.scenario.peers if p.storage is not None]
    if not units:
        fig = new_figure(7.0, 2.5)
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no storage in this scenario", ha="center", va="center", fontsize=12)
        figure_title(fig, result, "State of charge")
        return fig
    soc = pivot(result, "soc_kwh")
    if len(units) > MAX_UNITS:
        return _pooled_storage_figure(result, units, soc)
    if result.scenario.periods == 1:
        fig = new_figure(7.5, 4.5)
        ax = fig.subplots()
        x = np.arange(len(units))
        for i, (peer, unit) in enumerate(units):
            style = styles[peer]
            ax.bar(
                i,
                unit.capacity_kwh,
                width=0.6,
                fill=False,
                edgecolor=CAPACITY_COLOUR,
                linestyle="--",
                label="capacity" if i == 0 else None,
            )
            bars = ax.bar(
                i,
                soc[peer].iloc[0],
                width=0.6,
                color=style.colour,
                hatch=style.hatch,
                edgecolor=_edge(style.colour),
                gid=f"soc:{peer}",
            )
            ax.bar_label(bars, [f"{soc[peer].iloc[0]:,.1f} kWh"], fontsize=8)
        ax.set_xticks(x, [peer for peer, _ in units])
        ax.set_ylabel("state of charge at the end of the period (kWh)")
        figure_title(fig, result, f"State of charge {one_period(result)}")
        fig.legend(loc="outside right upper", frameon=False)
        return fig
    fig = new_figure(WIDTH, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    edges = period_edges(result)
    charge = pivot(result, "charge_kw")
    discharge = pivot(result, "discharge_kw")
    centres = (edges[:-1] + edges[1:]) / 2
    width = 0.85 * result.scenario.period_hours / len(units)
    handles: list[Artist] = []
    for i, (peer, unit) in enumerate(units):
        style = styles[peer]
        start = unit.initial_soc * unit.capacity_kwh
        outline = _outline(style.colour)
        (line,) = top.plot(
            edges,
            np.concatenate([[start], soc[peer].to_numpy()]),
            color=style.colour,
            linestyle=style.linestyle,
            marker="o",
            markersize=4,
            markeredgecolor=_edge(style.colour),
            linewidth=2,
            label=peer,
            gid=f"soc:{peer}",
            path_effects=outline,
        )
        handles.append(line)
        capacity = top.axhline(
            unit.capacity_kwh,
            color=CAPACITY_COLOUR,
            linestyle="--",
            linewidth=1.2,
            label=f"{peer} capacity",
            gid=f"capacity:{peer}",
        )
        top.annotate(
            f"{peer} capacity {unit.capacity_kwh:,.4g} kWh",
            (1.0, unit.capacity_kwh),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color=CAPACITY_COLOUR,
        )
        if i == 0:
            capacity.set_label("capacity" if len(units) == 1 else "capacity of each unit")
            handles.append(capacity)
        offset = (i - (len(units) - 1) / 2) * width
        bottom.bar(
            centres + offset,
            charge[peer],
            width=width,
            color=style.colour,
            hatch=style.hatch,
            edgecolor=_edge(style.colour),
            linewidth=0.5,
            gid=f"charge:{peer}",
        )
        bottom.bar(
            centres + offset,
            -discharge[peer],
            width=width,
            color=style.colour,
            hatch=(style.hatch or "") + "//",
            edgecolor=_edge(style.colour),
            linewidth=0.5,
            gid=f"discharge:{peer}",
        )
    top.set_ylabel("state of charge (kWh)")
    top.set_ylim(0, 1.12 * max(unit.capacity_kwh for _, unit in units))
    top.grid(axis="y", color="#E5E5E5")
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.set_ylabel("charge up, discharge\ndown (kW)")
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
    time_axis(bottom, result)
    top.set_xlim(edges[0], edges[-1])
    figure_title(fig, result, "State of charge of each storage unit")
    face = styles[units[0][0]].colour if len(units) == 1 else "white"
    handles.append(Patch(facecolor=face, edgecolor="#555555", label="charge (solid bars)"))
    handles.append(
        Patch(facecolor=face, hatch="//", edgecolor="#555555", label="discharge (hatched bars)")
    )
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=9)
    return fig


def _luminance(colour: str) -> float:
    red, green, blue = to_rgb(colour)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _edge(colour: str) -> str:
    """The edge of a shape of `colour`: white, or dark grey for a pale colour (on white)."""
    return "#555555" if _luminance(colour) > 0.6 else "white"


def _outline(colour: str) -> list[AbstractPathEffect]:
    """A dark outline under a line of a pale `colour`, so that it shows on white."""
    if _luminance(colour) <= 0.6:
        return []
    return [patheffects.Stroke(linewidth=3.6, foreground="#555555"), patheffects.Normal()]


def _pooled_storage_figure(
    result: ClearingResult, units: Sequence[tuple[str, Storage]], soc: pd.DataFrame
) -> Figure:
    """Many storage units: energy stored stacked by community, against the total capacity;
    the charge and discharge of every unit summed."""
    ids = [peer for peer, _ in units]
    groups = group_of(result.scenario)
    start = pd.DataFrame(
        [[unit.initial_soc * unit.capacity_kwh for _, unit in units]], columns=ids, index=[-1]
    )
    stored = keep_largest(by_group(pd.concat([start, soc[ids]]), groups))
    group_style = group_styles([str(c) for c in stored.columns])
    edges = period_edges(result)
    total_capacity = sum(unit.capacity_kwh for _, unit in units)
    fig = new_figure(WIDTH, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    layers = top.stackplot(
        edges,
        [stored[c].to_numpy(float) for c in stored.columns],
        colors=[group_style[str(c)].colour for c in stored.columns],
        labels=[str(c) for c in stored.columns],
        edgecolor="white",
        linewidth=0.4,
    )
    for layer, name in zip(layers, stored.columns, strict=True):
        layer.set_hatch(group_style[str(name)].hatch)
        layer.set_gid(f"soc:{name}")
    top.axhline(
        total_capacity,
        color=CAPACITY_COLOUR,
        linestyle="--",
        linewidth=1.4,
        label=f"capacity of the {len(units)} units",
        gid="capacity:all",
    )
    top.set_ylim(0, 1.12 * total_capacity)
    top.set_ylabel("energy stored (kWh)")
    top.grid(axis="y", color="#E5E5E5")
    centres = (edges[:-1] + edges[1:]) / 2
    width = 0.85 * result.scenario.period_hours
    charge = pivot(result, "charge_kw")[ids].sum(axis=1)
    discharge = pivot(result, "discharge_kw")[ids].sum(axis=1)
    bottom.bar(centres, charge, width=width, color=CHARGE_COLOUR, label="charge", gid="charge")
    bottom.bar(
        centres, -discharge, width=width, color=DISCHARGE_COLOUR, label="discharge", gid="discharge"
    )
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.set_ylabel("charge up, discharge\ndown (kW), all units")
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
    time_axis(bottom, result)
    top.set_xlim(edges[0], edges[-1])
    figure_title(fig, result, f"Energy stored in {len(units)} storage units, by community")
    handles, labels = top.get_legend_handles_labels()
    more, names = bottom.get_legend_handles_labels()
    fig.legend(
        [*handles[::-1], *more],
        [*labels[::-1], *names],
        loc="outside right upper",
        frameon=False,
        fontsize=9,
        title="stored by community",
    )
    return fig
