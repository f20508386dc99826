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
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from p2pmarket.core.results import ClearingResult
from p2pmarket.errors import P2PMarketError
from p2pmarket.reports.network import trade_network_figure
from p2pmarket.reports.style import (
    BUY_COLOUR,
    SELL_COLOUR,
    Node,
    PeerStyle,
    as_node,
    community_groups,
    new_figure,
    node_label,
    peer_styles,
    with_community,
)
from p2pmarket.types import NodeKind

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

BILL_COLUMNS = ("peer", "cost_baseline", "cost_market", "savings")
"""Columns a bills table must have for `bills_figure` (costs in the scenario's currency)."""
_EPS = 1e-6
_WIDTH = 10.0
_MANAGER_COLOUR = "#BBBBBB"
_NO_PRICE_COLOUR = "#E4E4E4"


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


def _pivot(result: ClearingResult, column: str) -> pd.DataFrame:
    """Period x peer table of one dispatch column, peers in scenario order."""
    table = result.dispatch.pivot(index="period", columns="peer", values=column)
    return table.reindex(columns=list(result.scenario.peer_ids)).fillna(0.0)


def _edges(result: ClearingResult) -> npt.NDArray[np.float64]:
    """Period boundaries in hours: n + 1 values."""
    s = result.scenario
    return np.arange(s.periods + 1, dtype=float) * s.period_hours


def _steps(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Values per period, the last repeated, to draw as steps over `_edges` (where='post')."""
    v = np.asarray(values, dtype=float)
    return np.append(v, v[-1])


def _time_axis(ax: Axes, result: ClearingResult, ticks: int = 12) -> None:
    edges = _edges(result)
    ax.set_xlim(edges[0], edges[-1])
    ax.xaxis.set_major_locator(MaxNLocator(nbins=ticks, integer=True, steps=[1, 2, 3, 6, 10]))
    ax.set_xlabel("time (h)")
    ax.grid(axis="y", color="#E5E5E5", linewidth=0.8)
    ax.set_axisbelow(True)


def _one_period(result: ClearingResult) -> str:
    return f"(one period of {result.scenario.period_hours:g} h)"


def _title(fig: Figure, result: ClearingResult, what: str) -> None:
    fig.suptitle(f"{what}\n{result.scenario.name}, {result.design} design", fontsize=12)


def _reversed_legend(fig: Figure, ax: Axes, title: str) -> None:
    """Legend outside on the right, top entry first (the order of a stack read downwards)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles[::-1],
        labels[::-1],
        loc="outside right upper",
        title=title,
        fontsize=9,
        frameon=False,
    )


def generation_load_figure(result: ClearingResult) -> Figure:
    """Generation stacked by peer against the total load over the horizon (Figure 10).

    With storage, discharge is stacked on top of generation and a dashed line adds charging
    (and what the grid absorbs) to the load, so the stack meets the dashed line every period.
    With one period: one bar of generation and one of load, each stacked by peer.
    """
    styles = peer_styles(result.scenario)
    gen = _pivot(result, "generation_kw")
    load = _pivot(result, "load_kw") + _pivot(result, "flexible_load_kw")
    producing = [p for p in gen.columns if gen[p].max() > _EPS]
    fig = new_figure(_WIDTH, 5.0)
    ax = fig.subplots()
    ax.set_ylabel("power (kW)")
    if result.scenario.periods == 1:
        _stacked_bar(ax, 0, gen.iloc[0], styles, "generation")
        _stacked_bar(ax, 1, load.iloc[0], styles, "load")
        ax.set_xticks([0, 1], ["generation", "load"])
        ax.set_xlim(-0.8, 1.8)
        ax.grid(axis="y", color="#E5E5E5")
        ax.set_axisbelow(True)
        _title(fig, result, f"Generation and load by peer {_one_period(result)}")
        handles = [
            Patch(facecolor=styles[p].colour, hatch=styles[p].hatch, edgecolor="white", label=p)
            for p in gen.columns
            if gen[p].iloc[0] > _EPS or load[p].iloc[0] > _EPS
        ]
        fig.legend(
            handles=handles[::-1],
            loc="outside right upper",
            title="peer",
            fontsize=9,
            frameon=False,
        )
        return fig
    edges = _edges(result)
    layers = [_steps(gen[p]) for p in producing]
    colours = [styles[p].colour for p in producing]
    labels = list(producing)
    discharge = _pivot(result, "discharge_kw").sum(axis=1)
    if discharge.max() > _EPS:
        layers.append(_steps(discharge))
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
        _steps(total_load),
        where="post",
        color="black",
        linewidth=2.2,
        label="load (incl. flexible)",
        gid="load",
    )
    charging = _pivot(result, "charge_kw").sum(axis=1)
    absorbed = _pivot(result, "absorbed_kw").sum(axis=1)
    extra = charging + absorbed
    if extra.max() > _EPS:
        what = [
            w for w, v in (("charging", charging), ("grid absorption", absorbed)) if v.max() > _EPS
        ]
        ax.step(
            edges,
            _steps(total_load + extra),
            where="post",
            color="black",
            linewidth=1.4,
            linestyle="--",
            label=f"load + {' + '.join(what)}",
            gid="load+charging",
        )
    _time_axis(ax, result)
    ax.set_ylim(bottom=0)
    _title(fig, result, "Generation by peer and total load")
    _reversed_legend(fig, ax, "generation")
    return fig


def _stacked_bar(
    ax: Axes, x: float, values: pd.Series, styles: Mapping[str, PeerStyle], what: str
) -> None:
    bottom = 0.0
    for peer, value in values.items():
        if value <= _EPS:
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
    imports = _pivot(result, "import_kw")
    exports = _pivot(result, "export_kw")
    owner = result.scenario.community_of()
    peers = list(result.scenario.peer_ids)
    if result.scenario.periods == 1:
        fig = new_figure(_WIDTH if len(peers) > 8 else 8.0, 5.0)
        ax = fig.subplots()
        x = np.arange(len(peers))
        up = ax.bar(x, exports.iloc[0], width=0.7, color=SELL_COLOUR, label="export", gid="export")
        down = ax.bar(
            x, -imports.iloc[0], width=0.7, color=BUY_COLOUR, label="import", gid="import"
        )
        for bars, values in ((up, exports.iloc[0]), (down, imports.iloc[0])):
            ax.bar_label(
                bars,
                [f"{v:,.0f}" if v > _EPS else "" for v in values.to_numpy(float)],
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
        _title(fig, result, f"Imports and exports per peer {_one_period(result)}")
        fig.legend(loc="outside right upper", frameon=False)
        return fig
    ncols = len(peers) if len(peers) <= 6 else 6
    nrows = math.ceil(len(peers) / ncols)
    fig = new_figure(_WIDTH + 2 if ncols > 4 else _WIDTH, 1.0 + 2.0 * nrows)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    centres = (_edges(result)[:-1] + _edges(result)[1:]) / 2
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
        if exports[peer].max() <= _EPS and imports[peer].max() <= _EPS:
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
        _time_axis(ax, result, ticks=4)
        ax.set_xlabel("")
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(peers) :]:
        ax.set_axis_off()
    axes[0, 0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
    fig.supylabel("power (kW): export up, import down", fontsize=10)
    fig.supxlabel("time (h)", fontsize=10)
    _title(fig, result, "Imports and exports per peer")
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
        _title(fig, result, "State of charge")
        return fig
    soc = _pivot(result, "soc_kwh")
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
        _title(fig, result, f"State of charge {_one_period(result)}")
        fig.legend(loc="outside right upper", frameon=False)
        return fig
    fig = new_figure(_WIDTH, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    edges = _edges(result)
    charge = _pivot(result, "charge_kw")
    discharge = _pivot(result, "discharge_kw")
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
    _time_axis(bottom, result)
    top.set_xlim(edges[0], edges[-1])
    _title(fig, result, "State of charge of each storage unit")
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


def _price_rows(result: ClearingResult) -> list[Node]:
    """Price nodes grouped by community: its members, then its manager."""
    prices = result.prices
    nodes = {as_node(k, n) for k, n in zip(prices["kind"], prices["node"], strict=True)}
    rows: list[Node] = []
    for community, members in community_groups(result.scenario):
        rows += [(NodeKind.PEER, peer) for peer in members]
        if community is not None and (NodeKind.MANAGER, community) in nodes:
            rows.append((NodeKind.MANAGER, community))
    return rows + sorted(nodes - set(rows))


def _price_table(result: ClearingResult, rows: Sequence[Node]) -> npt.NDArray[np.float64]:
    """Node x period buying prices, NaN where a node has none (a peer that can never buy)."""
    index = {node: i for i, node in enumerate(rows)}
    table = np.full((len(rows), result.scenario.periods), np.nan)
    p = result.prices
    for kind, name, period, price in zip(
        p["kind"], p["node"], p["period"], p["price_per_kwh"].to_numpy(float), strict=True
    ):
        table[index[as_node(kind, name)], int(period)] = price
    return table + 0.0  # + 0.0 turns -0.0 into 0.0


def _price_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def price_figure(result: ClearingResult) -> Figure:
    """Price per peer and community manager (dual of its balance, per kWh) over the horizon.

    A heat map, nodes grouped by community (members, then the manager), one column per
    period; values written in the cells when there are few periods. With one period:
    one horizontal bar per node in the peer's colour (managers grey). A node without a
    buying price in a period (a peer that can never buy) is a light grey cell, or a bar
    labelled `n/a`.
    """
    currency = result.scenario.currency
    rows = _price_rows(result)
    values = _price_table(result, rows)
    owner = result.scenario.community_of()
    labels = [node_label(node, owner) for node in rows]
    styles = peer_styles(result.scenario)
    fig = new_figure(_WIDTH if result.scenario.periods > 1 else 8.0, 1.6 + 0.3 * len(rows))
    ax = fig.subplots()
    if result.scenario.periods == 1:
        column = values[:, 0]
        y = np.arange(len(rows))
        peer_rows = [kind == NodeKind.PEER and name in styles for kind, name in rows]
        colours = [
            styles[name].colour if is_peer else _MANAGER_COLOUR
            for (_, name), is_peer in zip(rows, peer_rows, strict=True)
        ]
        hatches = [
            styles[name].hatch if is_peer else ""
            for (_, name), is_peer in zip(rows, peer_rows, strict=True)
        ]
        bars = ax.barh(
            y,
            np.nan_to_num(column, nan=0.0),
            color=colours,
            hatch=hatches,
            edgecolor="white",
            gid="prices",
        )
        ax.bar_label(bars, [_price_text(v) for v in column], padding=3, fontsize=8)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel(f"price ({currency}/kWh)")
        ax.margins(x=0.15)
        ax.grid(axis="x", color="#E5E5E5")
        ax.set_axisbelow(True)
        _title(fig, result, f"Price per peer and manager {_one_period(result)}")
        return fig
    edges = _edges(result)
    known = values[~np.isnan(values)]
    low, high = (float(known.min()), float(known.max())) if known.size else (0.0, 1.0)
    cmap = colormaps["cividis"].with_extremes(bad=_NO_PRICE_COLOUR)
    mesh = ax.pcolormesh(
        edges,
        np.arange(len(rows) + 1),
        np.ma.masked_invalid(values),
        cmap=cmap,
        vmin=low,
        vmax=high,
        edgecolors="white",
        linewidth=0.3,
    )
    mesh.set_gid("prices")
    ax.set_yticks(np.arange(len(rows)) + 0.5, labels, fontsize=9)
    ax.set_ylim(len(rows), 0)
    _time_axis(ax, result)
    ax.grid(False)
    ax.set_ylabel("peer or community manager")
    bar = fig.colorbar(mesh, ax=ax, pad=0.01)
    bar.set_label(f"price ({currency}/kWh)")
    if result.scenario.periods <= 8:
        mid = (low + high) / 2
        for i in range(len(rows)):
            for j in range(result.scenario.periods):
                v = values[i, j]
                ax.text(
                    (edges[j] + edges[j + 1]) / 2,
                    i + 0.5,
                    _price_text(v),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if math.isnan(v) or v > mid else "white",
                )
    if known.size < values.size:
        no_price = Patch(
            facecolor=_NO_PRICE_COLOUR, edgecolor="#999999", label="n/a: no price (never buys)"
        )
        fig.legend(handles=[no_price], loc="outside lower right", frameon=False, fontsize=9)
    # A line between communities.
    group = [name if kind == NodeKind.MANAGER else owner.get(name) for kind, name in rows]
    for i in range(1, len(rows)):
        if group[i] != group[i - 1] and (group[i] or group[i - 1]):
            ax.axhline(i, color="black", linewidth=1.5)
    _title(fig, result, "Price per peer and community manager")
    return fig


# --- settlement and comparisons ------------------------------------------------------------


def bills_figure(
    bills: pd.DataFrame,
    *,
    currency: str = "USD",
    styles: Mapping[str, PeerStyle] | None = None,
    title: str = "Bills and savings per peer",
) -> Figure:
    """Each peer's cost in the market against its grid-only baseline, and its savings.

    `bills` has one row per peer with `peer`, `cost_baseline`, `cost_market` and `savings`
    (in `currency`; negative costs are revenues). Left: baseline (grey) and market (blue)
    cost per peer; right: savings in the peer's style (`styles`, e.g.
    `peer_styles(scenario)` to match the other figures; by default the order of `bills`).
    """
    missing = [c for c in BILL_COLUMNS if c not in bills.columns]
    if missing:
        raise P2PMarketError(f"bills: missing column(s) {', '.join(missing)}")
    peers = [str(p) for p in bills["peer"]]
    styles = dict(styles) if styles is not None else peer_styles(peers)
    plain = PeerStyle("#999999")
    fig = new_figure(_WIDTH, 1.8 + 0.32 * len(peers))
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    y = np.arange(len(peers))
    h = 0.38
    left.barh(
        y - h / 2,
        bills["cost_baseline"],
        height=h,
        color="#BBBBBB",
        label="grid only (baseline)",
        gid="cost_baseline",
    )
    left.barh(
        y + h / 2,
        bills["cost_market"],
        height=h,
        color=BUY_COLOUR,
        label="in the market",
        gid="cost_market",
    )
    left.set_yticks(y, peers)
    left.invert_yaxis()
    left.axvline(0, color="black", linewidth=0.6)
    left.set_xlabel(f"net cost ({currency}); negative: revenue")
    left.set_title("Cost per peer", fontsize=10)
    fig.legend(
        *left.get_legend_handles_labels(),
        loc="outside lower center",
        ncols=2,
        frameon=False,
        fontsize=9,
    )
    savings = bills["savings"].to_numpy(dtype=float)
    bars = right.barh(
        y,
        savings,
        color=[styles.get(p, plain).colour for p in peers],
        hatch=[styles.get(p, plain).hatch for p in peers],
        edgecolor="white",
        gid="savings",
    )
    right.bar_label(
        bars, [f"{v:,.2f}" if v == v else "n/a" for v in savings], padding=3, fontsize=8
    )
    right.axvline(0, color="black", linewidth=0.6)
    right.set_xlabel(f"savings against the baseline ({currency})")
    right.set_title("Savings per peer", fontsize=10)
    right.margins(x=0.2)
    for ax in (left, right):
        ax.grid(axis="x", color="#E5E5E5")
        ax.set_axisbelow(True)
    fig.suptitle(title, fontsize=12)
    return fig


_ROUTES = {
    "p2p": ("peer to peer", "#333333", ""),
    "member-manager": ("member to manager", "#8C8C8C", ""),
    "manager-member": ("manager to member", "#C8C8C8", "///"),
    "manager-manager": ("between managers", "#E8E8E8", "..."),
}
"""Kinds of route: label, colour and hatch (greys, so as not to be read as peers)."""


def _design_labels(results: Sequence[ClearingResult]) -> list[str]:
    parts = [(r.design, r.objective_kind, r.scenario.name) for r in results]
    varying = [i for i in range(3) if len({p[i] for p in parts}) > 1] or [0]
    labels = ["\n".join(p[i] for i in varying) for p in parts]
    if len(set(labels)) < len(labels):
        labels = [f"{label} #{n + 1}" for n, label in enumerate(labels)]
    return labels


def design_comparison_figure(results: Sequence[ClearingResult]) -> Figure:
    """Results side by side (typically one scenario under p2p, community and hybrid).

    Three panels, one bar per result: the objective; the energy each peer generates over
    the horizon (stacked, peer colours); the energy traded along each kind of route.
    """
    if not results:
        raise P2PMarketError("design comparison: no results to compare")
    labels = _design_labels(results)
    peers = list(dict.fromkeys(p for r in results for p in r.scenario.peer_ids))
    styles = peer_styles(results[0].scenario)
    styles.update({p: s for p, s in peer_styles(peers).items() if p not in styles})
    fig = new_figure(_WIDTH + 2, 4.8)
    obj_ax, gen_ax, route_ax = fig.subplots(1, 3)
    x = np.arange(len(results))
    objective = [r.objective for r in results]
    bars = obj_ax.bar(x, objective, color="#777777", width=0.6, gid="objective")
    obj_ax.bar_label(bars, [f"{v:,.4g}" for v in objective], padding=2, fontsize=8)
    kinds = sorted({r.objective_kind for r in results})
    obj_ax.set_title(f"Objective ({', '.join(kinds)})", fontsize=10)
    obj_ax.set_ylabel(f"objective ({results[0].scenario.currency})")
    bottom = np.zeros(len(results))
    for peer in peers:
        energy = np.array([_energy_of(r, peer, "generation_kw") for r in results])
        if energy.max() <= _EPS:
            continue
        gen_ax.bar(
            x,
            energy,
            bottom=bottom,
            width=0.6,
            color=styles[peer].colour,
            hatch=styles[peer].hatch,
            edgecolor="white",
            label=peer,
            gid=f"generation:{peer}",
        )
        bottom += energy
    gen_ax.set_title("Generation by peer", fontsize=10)
    gen_ax.set_ylabel("energy over the horizon (kWh)")
    bottom = np.zeros(len(results))
    for route, (name, colour, hatch) in _ROUTES.items():
        energy = np.array(
            [float(r.trades.loc[r.trades["route"] == route, "energy_kwh"].sum()) for r in results]
        )
        if energy.max() <= _EPS:
            continue
        route_ax.bar(
            x,
            energy,
            bottom=bottom,
            width=0.6,
            color=colour,
            hatch=hatch,
            edgecolor="#555555",
            linewidth=0.5,
            label=name,
            gid=f"route:{route}",
        )
        bottom += energy
    route_ax.set_title("Traded energy by route", fontsize=10)
    route_ax.set_ylabel("energy over the horizon (kWh)")
    for ax in (obj_ax, gen_ax, route_ax):
        ax.set_xticks(x, labels, fontsize=9)
        ax.grid(axis="y", color="#E5E5E5")
        ax.set_axisbelow(True)
        ax.margins(y=0.1)
    for ax, columns in ((gen_ax, 4), (route_ax, 2)):
        handles, names = ax.get_legend_handles_labels()
        ax.legend(
            handles[::-1],
            names[::-1],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.1),
            ncols=columns,
            frameon=False,
            fontsize=8,
        )
    names = sorted({r.scenario.name for r in results})
    fig.suptitle(f"Designs compared: {', '.join(names)}", fontsize=12)
    return fig


def _energy_of(result: ClearingResult, peer: str, column: str) -> float:
    d = result.dispatch
    return float(d.loc[d["peer"] == peer, column].sum() * result.scenario.period_hours)
