"""Figures of a cleared market over its horizon (SPEC C7), each returning a `Figure`.

Time runs along x in hours from the start of the horizon; period p covers [p·Δt, (p+1)·Δt],
so the paper's "hour 7" is period 6. A horizon of one period is drawn with bars per peer
instead of series over time. Colours and the canvas come from `p2pmarket.reports.style`;
the trade network of a period from `p2pmarket.reports.network`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from p2pmarket.core.results import ClearingResult
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
from p2pmarket.reports.style import (
    BUY_COLOUR,
    SELL_COLOUR,
    PeerStyle,
    new_figure,
    peer_styles,
    with_community,
)

__all__ = [
    "BILL_COLUMNS",
    "bills_figure",
    "design_comparison_figure",
    "generation_load_figure",
    "imports_exports_figure",
    "price_figure",
    "standard_figures",
    "state_of_charge_figure",
]


def standard_figures(
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    comparison: Sequence[ClearingResult] = (),
    period: int | None = None,
) -> dict[str, Figure]:
    """Every figure that applies to `result`, by name, in reading order.

    The state of charge only with storage, bills only when given, the design comparison only
    with `comparison` (results of the same scenario under other designs).
    """
    figures = {
        "trade-network": trade_network_figure(result, period),
        "generation-load": generation_load_figure(result),
        "imports-exports": imports_exports_figure(result),
    }
    if any(p.storage is not None for p in result.scenario.peers):
        figures["state-of-charge"] = state_of_charge_figure(result)
    figures["prices"] = price_figure(result)
    if bills is not None:
        figures["bills"] = bills_figure(
            bills, currency=result.scenario.currency, styles=peer_styles(result.scenario)
        )
    if comparison:
        figures["design-comparison"] = design_comparison_figure(comparison)
    return figures


def generation_load_figure(result: ClearingResult) -> Figure:
    """Generation stacked by peer against the total load over the horizon (Figure 10).

    With storage, discharge is stacked on top of generation and a dashed line adds charging
    (and what the grid absorbs) to the load, so the stack meets the dashed line every period.
    With one period: one bar of generation and one of load, each stacked by peer.
    """
    styles = peer_styles(result.scenario)
    gen = pivot(result, "generation_kw")
    load = pivot(result, "load_kw") + pivot(result, "flexible_load_kw")
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
        figure_title(fig, result, f"Generation and load by peer {one_period(result)}")
        handles = [
            Patch(facecolor=styles[p].colour, hatch=styles[p].hatch, edgecolor="white", label=p)
            for p in gen.columns
            if gen[p].iloc[0] > EPS or load[p].iloc[0] > EPS
        ]
        fig.legend(
            handles=handles[::-1],
            loc="outside right upper",
            title="peer",
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
        what = [
            w for w, v in (("charging", charging), ("grid absorption", absorbed)) if v.max() > EPS
        ]
        ax.step(
            edges,
            steps(total_load + extra),
            where="post",
            color="black",
            linewidth=1.4,
            linestyle="--",
            label=f"load + {' + '.join(what)}",
            gid="load+charging",
        )
    time_axis(ax, result)
    ax.set_ylim(bottom=0)
    figure_title(fig, result, "Generation by peer and total load")
    reversed_legend(fig, ax, "generation")
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
    downwards (blue). With one period: one axes, a pair of bars per peer.
    """
    imports = pivot(result, "import_kw")
    exports = pivot(result, "export_kw")
    owner = result.scenario.community_of()
    peers = list(result.scenario.peer_ids)
    if result.scenario.periods == 1:
        fig = new_figure(WIDTH if len(peers) > 8 else 8.0, 5.0)
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
                fontsize=8,
            )
        ax.set_xticks(
            x,
            [with_community(p, owner) for p in peers],
            rotation=0 if len(peers) <= 8 else 45,
            ha="center" if len(peers) <= 8 else "right",
        )
        ax.axhline(0, color="black", linewidth=0.8)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
        ax.set_ylabel("power (kW): export up, import down")
        ax.margins(y=0.12)
        ax.grid(axis="y", color="#E5E5E5")
        ax.set_axisbelow(True)
        figure_title(fig, result, f"Imports and exports per peer {one_period(result)}")
        fig.legend(loc="outside right upper", frameon=False)
        return fig
    ncols = len(peers) if len(peers) <= 6 else 6
    nrows = math.ceil(len(peers) / ncols)
    fig = new_figure(WIDTH + 2 if ncols > 4 else WIDTH, 1.0 + 2.0 * nrows)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
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
        ax.set_title(with_community(peer, owner), fontsize=9, pad=3)
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
    axes[0, 0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
    fig.supylabel("power (kW): export up, import down", fontsize=10)
    fig.supxlabel("time (h)", fontsize=10)
    figure_title(fig, result, "Imports and exports per peer")
    fig.legend(
        handles=[Patch(color=SELL_COLOUR, label="export"), Patch(color=BUY_COLOUR, label="import")],
        loc="outside right upper",
        frameon=False,
    )
    return fig


def state_of_charge_figure(result: ClearingResult) -> Figure:
    """State of charge of every storage unit over the horizon, and its charge and discharge.

    Top: state of charge (kWh) at the end of each period, starting from the initial state,
    with the capacity dotted. Bottom: charge upwards, discharge downwards (kW).
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
                edgecolor="#777777",
                linestyle="--",
                label="capacity" if i == 0 else None,
            )
            bars = ax.bar(
                i,
                soc[peer].iloc[0],
                width=0.6,
                color=style.colour,
                hatch=style.hatch,
                edgecolor="white",
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
    for i, (peer, unit) in enumerate(units):
        style = styles[peer]
        start = unit.initial_soc * unit.capacity_kwh
        top.plot(
            edges,
            np.concatenate([[start], soc[peer].to_numpy()]),
            color=style.colour,
            linestyle=style.linestyle,
            marker="o",
            markersize=4,
            linewidth=2,
            label=peer,
            gid=f"soc:{peer}",
        )
        top.axhline(
            unit.capacity_kwh,
            color=style.colour,
            linestyle=":",
            linewidth=1.2,
            label=f"{peer} capacity",
            gid=f"capacity:{peer}",
        )
        offset = (i - (len(units) - 1) / 2) * width
        bottom.bar(
            centres + offset,
            charge[peer],
            width=width,
            color=style.colour,
            hatch=style.hatch,
            edgecolor="white",
            gid=f"charge:{peer}",
        )
        bottom.bar(
            centres + offset,
            -discharge[peer],
            width=width,
            color=style.colour,
            hatch=style.hatch or "//",
            edgecolor="white",
            alpha=0.6,
            gid=f"discharge:{peer}",
        )
    top.set_ylabel("state of charge (kWh)")
    top.set_ylim(bottom=0)
    top.grid(axis="y", color="#E5E5E5")
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.set_ylabel("charge up, discharge\ndown (kW)")
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
    time_axis(bottom, result)
    top.set_xlim(edges[0], edges[-1])
    figure_title(fig, result, "State of charge of each storage unit")
    handles, labels = top.get_legend_handles_labels()
    handles.append(Patch(facecolor="#999999", label="charge (solid)"))
    handles.append(
        Patch(
            facecolor="#999999",
            hatch="//",
            alpha=0.6,
            edgecolor="white",
            label="discharge (hatched)",
        )
    )
    fig.legend(
        handles,
        [*labels, "charge (solid)", "discharge (hatched)"],
        loc="outside right upper",
        frameon=False,
        fontsize=9,
    )
    return fig
