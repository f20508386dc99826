"""Figures of prices and money (SPEC C7): prices per node and period, bills and savings, and
markets side by side. Each returns a `Figure`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from p2pmarket.core.results import ClearingResult
from p2pmarket.errors import P2PMarketError
from p2pmarket.reports.axes import (
    EPS,
    WIDTH,
    figure_title,
    one_period,
    period_edges,
    time_axis,
)
from p2pmarket.reports.style import (
    BUY_COLOUR,
    Node,
    PeerStyle,
    as_node,
    community_groups,
    new_figure,
    node_label,
    peer_styles,
)
from p2pmarket.types import NodeKind

__all__ = ["BILL_COLUMNS", "bills_figure", "design_comparison_figure", "price_figure"]

BILL_COLUMNS = ("peer", "cost_baseline", "cost_market", "savings")
"""Columns a bills table must have for `bills_figure` (costs in the scenario's currency)."""
_MANAGER_COLOUR = "#BBBBBB"
_NO_PRICE_COLOUR = "#E4E4E4"


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
    fig = new_figure(WIDTH if result.scenario.periods > 1 else 8.0, 1.6 + 0.3 * len(rows))
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
        figure_title(fig, result, f"Price per peer and manager {one_period(result)}")
        return fig
    edges = period_edges(result)
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
    time_axis(ax, result)
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
    figure_title(fig, result, "Price per peer and community manager")
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
    fig = new_figure(WIDTH, 1.8 + 0.32 * len(peers))
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
    fig = new_figure(WIDTH + 2, 4.8)
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
        if energy.max() <= EPS:
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
        if energy.max() <= EPS:
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
