"""Figures of prices and money (SPEC C7): prices per node and period, bills and savings, and
markets side by side. Each returns a `Figure`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, to_rgba
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
from p2pmarket.reports.scale import (
    MAX_ROWS,
    OTHERS,
    PER_PEER,
    group_of,
    group_styles,
    is_large,
    keep_largest,
)
from p2pmarket.reports.style import (
    BUY_COLOUR,
    Node,
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


def _price_text(value: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}g}"


def _grouped_rows(
    result: ClearingResult, rows: Sequence[Node], values: npt.NDArray[np.float64]
) -> tuple[list[str], list[str | None], npt.NDArray[np.float64]]:
    """Rows of a large market: the mean price of each community's members (and its manager's
    own row), at most `MAX_ROWS` rows (the smallest communities averaged as others). Returns
    labels, the community of each row and the table."""
    groups = group_of(result.scenario)
    keys: list[str] = []
    for kind, name in rows:
        keys.append(f"manager {name}" if kind == NodeKind.MANAGER else groups.get(name, name))
    order = list(dict.fromkeys(keys))
    size = {k: keys.count(k) for k in order}
    if len(order) > MAX_ROWS:
        kept = set(sorted(order, key=lambda k: -size[k])[: MAX_ROWS - 1])
        rest = [k for k in order if k not in kept]
        keys = [k if k in kept else f"{OTHERS} ({len(rest)})" for k in keys]
        order = list(dict.fromkeys(keys))
        size = {k: keys.count(k) for k in order}
    table = np.full((len(order), values.shape[1]), np.nan)
    index = np.array([order.index(k) for k in keys])
    for i in range(len(order)):
        block = values[index == i]
        known = ~np.isnan(block)
        count = known.sum(axis=0)
        total = np.where(known, block, 0.0).sum(axis=0)
        table[i] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    labels = [
        k if k.startswith(("manager ", OTHERS)) or size[k] == 1 else f"{k}: mean of {size[k]}"
        for k in order
    ]
    community = [k.removeprefix("manager ") for k in order]
    return labels, list(community), table + 0.0


_OUTLIER_SPREADS = 10.0
"""A row whose median price is more than this many spreads from the median price is left out
of the colour scale (spread: the prices' median absolute deviation, else their mean one)."""


def _robust_range(values: npt.NDArray[np.float64]) -> tuple[float, float, str]:
    """Colour limits from the 2nd to the 98th percentile of the prices in `values` (rows x
    periods, NaN: no price) outside outlier rows (`_OUTLIER_SPREADS`), and which ends the
    colour bar extends (an outlier row then does not squeeze every other colour into one)."""
    known = values[~np.isnan(values)]
    if not known.size:
        return 0.0, 1.0, "neither"
    priced = values[~np.isnan(values).all(axis=1)]
    centre = float(np.median(known))
    spread = float(np.median(np.abs(known - centre))) or float(np.mean(np.abs(known - centre)))
    usual_rows = np.abs(np.nanmedian(priced, axis=1) - centre) <= _OUTLIER_SPREADS * spread
    usual = priced[usual_rows] if usual_rows.any() else priced
    usual = usual[~np.isnan(usual)]
    low, high = (float(v) for v in np.percentile(usual, [2, 98]))
    if high - low < 1e-9:
        low, high = float(usual.min()), float(usual.max())
    if high - low < 1e-9:
        low, high = low - 0.01, high + 0.01
    below, above = bool(known.min() < low - 1e-12), bool(known.max() > high + 1e-12)
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}
    return low, high, extend.get((below, above), "neither")


def price_figure(result: ClearingResult, *, note: str = "") -> Figure:
    """Price per peer and community manager (dual of its balance, per kWh) over the horizon.

    A heat map, nodes grouped by community (members, then the manager), one column per
    period, on a colour scale from the 2nd to the 98th percentile of the prices, outlier
    rows left out (the bar's arrows mark prices beyond); values written in the cells when
    the grid is small. With one period: one horizontal bar per node in the peer's colour
    (managers grey). A node without a buying price in a period (a peer that can never buy)
    is a light grey cell, or a bar labelled `n/a`. A large market has a row per community
    (its members' mean price) and per manager, at most `MAX_ROWS`. `note` goes into the
    title (e.g. which prices).
    """
    currency = result.scenario.currency
    rows = _price_rows(result)
    values = _price_table(result, rows)
    owner = result.scenario.community_of()
    styles = peer_styles(result.scenario)
    if len(rows) > MAX_ROWS:
        labels, group, values = _grouped_rows(result, rows, values)
        styles = group_styles(labels)
        grouped = True
    else:
        labels = [node_label(node, owner) for node in rows]
        group = [name if kind == NodeKind.MANAGER else owner.get(name) for kind, name in rows]
        grouped = False
    suffix = f", {note}" if note else ""
    title = "Price per community and manager" if grouped else "Price per peer and community manager"
    fig = new_figure(WIDTH if result.scenario.periods > 1 else 8.0, 1.6 + 0.3 * len(labels))
    ax = fig.subplots()
    if result.scenario.periods == 1:
        column = values[:, 0]
        y = np.arange(len(labels))
        if grouped:
            colours = [styles[label].colour for label in labels]
            hatches = [styles[label].hatch for label in labels]
        else:
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
        figure_title(fig, result, f"{title} {one_period(result)}{suffix}")
        return fig
    edges = period_edges(result)
    known = values[~np.isnan(values)]
    low, high, extend = _robust_range(values)
    cmap = colormaps["cividis"].with_extremes(bad=_NO_PRICE_COLOUR)
    norm = Normalize(low, high)
    mesh = ax.pcolormesh(
        edges,
        np.arange(len(labels) + 1),
        np.ma.masked_invalid(values),
        cmap=cmap,
        norm=norm,
        edgecolors="white",
        linewidth=0.3,
    )
    mesh.set_gid("prices")
    ax.set_yticks(np.arange(len(labels)) + 0.5, labels, fontsize=9 if len(labels) <= 30 else 8)
    ax.set_ylim(len(labels), 0)
    time_axis(ax, result)
    ax.grid(False)
    ax.set_ylabel("community or manager" if grouped else "peer or community manager")
    bar = fig.colorbar(mesh, ax=ax, pad=0.01, extend=extend)
    bar.set_label(f"price ({currency}/kWh)")
    periods = result.scenario.periods
    if periods <= 24 and len(labels) <= 30:
        digits, size = (4, 8) if periods <= 8 else (3, 6.5 if periods <= 12 else 5.5)
        for i in range(len(labels)):
            for j in range(periods):
                v = values[i, j]
                shade = cmap(norm(v)) if not math.isnan(v) else to_rgba(_NO_PRICE_COLOUR)
                dark = 0.2126 * shade[0] + 0.7152 * shade[1] + 0.0722 * shade[2] < 0.5
                ax.text(
                    (edges[j] + edges[j + 1]) / 2,
                    i + 0.5,
                    _price_text(v, digits),
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if dark else "black",
                )
    if known.size < values.size:
        no_price = Patch(
            facecolor=_NO_PRICE_COLOUR, edgecolor="#999999", label="n/a: no price (never buys)"
        )
        fig.legend(handles=[no_price], loc="outside lower right", frameon=False, fontsize=9)
    # A line between communities.
    for i in range(1, len(labels)):
        if group[i] != group[i - 1] and (group[i] or group[i - 1]):
            ax.axhline(i, color="black", linewidth=1.5)
    figure_title(fig, result, f"{title}{suffix}")
    return fig


# --- settlement and comparisons ------------------------------------------------------------


SAVINGS_COLOUR = "#009E73"
"""Savings (bluish green): a colour of their own, not the blue of "in the market"."""
LOSS_COLOUR = "#CC79A7"
"""Negative savings (reddish purple)."""
BASELINE_COLOUR = "#BBBBBB"


def _bill_rows(
    bills: pd.DataFrame, groups: Mapping[str, str] | None
) -> tuple[list[str], pd.DataFrame, str]:
    """The rows a bills figure draws: a row per peer, or for more than `PER_PEER` peers one
    per group of `groups` (peer -> community) summed, at most `MAX_ROWS` (the largest by
    their savings' size; the rest summed as others). Returns labels, the costs (columns
    `cost_baseline`, `cost_market`, `savings`) and what a row is."""
    peers = [str(p) for p in bills["peer"]]
    costs = bills.loc[:, ["cost_baseline", "cost_market", "savings"]].astype(float)
    costs.index = pd.Index(peers)
    if len(peers) <= PER_PEER:
        return peers, costs.reset_index(drop=True), "peer"
    what = "peer"
    if groups is not None:
        keys = [groups.get(p, p) for p in peers]
        counts = pd.Series(keys).value_counts()
        costs = costs.groupby(keys, sort=False).sum(min_count=1)
        costs.index = pd.Index([f"{k} ({counts[k]} peers)" for k in costs.index])
        what = "community"
    if len(costs) > MAX_ROWS:
        size = costs["savings"].abs().fillna(0.0).to_numpy()
        keep = np.sort(np.argsort(-size, kind="stable")[: MAX_ROWS - 1])
        rest = costs.drop(index=costs.index[keep])
        costs = costs.iloc[keep]
        costs.loc[f"{OTHERS} ({len(rest)} {what}s)"] = rest.sum(min_count=1)
    return [str(i) for i in costs.index], costs.reset_index(drop=True), what


def bills_figure(
    bills: pd.DataFrame,
    *,
    currency: str = "USD",
    groups: Mapping[str, str] | None = None,
    title: str = "Bills and savings",
) -> Figure:
    """Each peer's cost in the market against its grid-only baseline, and its savings.

    `bills` has one row per peer with `peer`, `cost_baseline`, `cost_market` and `savings`
    (in `currency`; negative costs are revenues). Left: baseline (grey) and market (blue)
    cost per peer; right: savings (green, losses purple). Past `PER_PEER` peers a row per
    community of `groups` (peer -> community, e.g. `scale.group_of(scenario)`), its members
    summed; at most `MAX_ROWS` rows.
    """
    missing = [c for c in BILL_COLUMNS if c not in bills.columns]
    if missing:
        raise P2PMarketError(f"bills: missing column(s) {', '.join(missing)}")
    labels, costs, what = _bill_rows(bills, groups)
    fig = new_figure(WIDTH, 1.8 + 0.32 * max(len(labels), 3))
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    y = np.arange(len(labels))
    h = 0.38
    left.barh(
        y - h / 2,
        costs["cost_baseline"],
        height=h,
        color=BASELINE_COLOUR,
        label="grid only (baseline)",
        gid="cost_baseline",
    )
    left.barh(
        y + h / 2,
        costs["cost_market"],
        height=h,
        color=BUY_COLOUR,
        label="in the market",
        gid="cost_market",
    )
    left.set_yticks(y, labels)
    left.invert_yaxis()
    left.axvline(0, color="black", linewidth=0.6)
    left.set_xlabel(f"net cost ({currency}); negative: revenue")
    left.set_title(f"Cost per {what}", fontsize=10)
    savings = costs["savings"].to_numpy(dtype=float)
    bars = right.barh(
        y,
        np.nan_to_num(savings, nan=0.0),
        color=[LOSS_COLOUR if v < 0 else SAVINGS_COLOUR for v in savings],
        edgecolor="white",
        gid="savings",
    )
    right.bar_label(
        bars, [f"{v:,.2f}" if v == v else "n/a" for v in savings], padding=3, fontsize=8
    )
    right.axvline(0, color="black", linewidth=0.6)
    right.set_xlabel(f"savings against the baseline ({currency})")
    right.set_title(f"Savings per {what}", fontsize=10)
    right.margins(x=0.2)
    for ax in (left, right):
        ax.grid(axis="x", color="#E5E5E5")
        ax.set_axisbelow(True)
    handles = [
        Patch(color=BASELINE_COLOUR, label="grid only (baseline)"),
        Patch(color=BUY_COLOUR, label="in the market"),
        Patch(color=SAVINGS_COLOUR, label="savings"),
    ]
    if (savings < 0).any():
        handles.append(Patch(color=LOSS_COLOUR, label="loss (negative savings)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize=9)
    fig.suptitle(f"{title} per {what}", fontsize=12)
    return fig


_ROUTES = {
    "p2p": ("peer to peer", "#333333", ""),
    "member-manager": ("member to manager", "#8C8C8C", ""),
    "manager-member": ("manager to member", "#C8C8C8", "///"),
    "manager-manager": ("between managers", "#E8E8E8", "..."),
}
"""Kinds of route: label, colour and hatch (greys, so as not to be read as peers)."""


def _design_labels(results: Sequence[ClearingResult]) -> list[str]:
    """What tells the results apart (design, objective, scenario), each part wrapped to
    `_LABEL_CHARS` characters a line."""
    parts = [(r.design, r.objective_kind, r.scenario.name) for r in results]
    varying = [i for i in range(3) if len({p[i] for p in parts}) > 1] or [0]
    labels = ["\n".join(_wrap(str(p[i])) for i in varying) for p in parts]
    if len(set(labels)) < len(labels):
        labels = [f"{label} #{n + 1}" for n, label in enumerate(labels)]
    return labels


_LABEL_CHARS = 12


def _wrap(text: str) -> str:
    """`text` broken at hyphens, spaces and underscores into lines of at most about
    `_LABEL_CHARS` characters (a long word stays whole)."""
    words = re.findall(r"[^-_ ]+[-_ ]?", text) or [text]
    lines = [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + len(word.rstrip()) > _LABEL_CHARS:
            lines.append("")
        lines[-1] += word
    return "\n".join(line.rstrip(" ") for line in lines)


def design_comparison_figure(
    results: Sequence[ClearingResult], labels: Sequence[str] | None = None
) -> Figure:
    """Results side by side (typically one scenario under p2p, community and hybrid).

    Three panels, one bar per result: the objective; the energy each peer generates over
    the horizon (stacked, peer colours); the energy traded along each kind of route.
    `labels` (one per result, e.g. `Comparison.labels`) name the bars; by default what tells
    the results apart (design, objective, scenario name).
    """
    if not results:
        raise P2PMarketError("design comparison: no results to compare")
    if labels is not None and len(labels) != len(results):
        raise P2PMarketError("design comparison: one label per result")
    labels = (
        _design_labels(results)
        if labels is None
        else ["\n".join(_wrap(part) for part in label.split(" / ")) for label in labels]
    )
    large = any(is_large(r.scenario) for r in results)
    generated = pd.DataFrame([_generation_by(r, large) for r in results]).fillna(0.0)
    generated = keep_largest(generated)
    if large:
        styles = group_styles([str(c) for c in generated.columns])
    else:
        styles = peer_styles(results[0].scenario)
        names = [str(c) for c in generated.columns]
        styles.update({p: s for p, s in peer_styles(names).items() if p not in styles})
    lines = max(label.count("\n") + 1 for label in labels)
    fig = new_figure(min(max(WIDTH + 2, 1.3 * len(results) * 3), 22.0), 4.4 + 0.25 * lines)
    obj_ax, gen_ax, route_ax = fig.subplots(1, 3)
    x = np.arange(len(results))
    objective = [r.objective for r in results]
    bars = obj_ax.bar(x, objective, color="#777777", width=0.6, gid="objective")
    obj_ax.bar_label(bars, [f"{v:,.4g}" for v in objective], padding=2, fontsize=8)
    kinds = sorted({r.objective_kind for r in results})
    obj_ax.set_title(f"Objective ({', '.join(kinds)})", fontsize=10)
    obj_ax.set_ylabel(f"objective ({results[0].scenario.currency})")
    bottom = np.zeros(len(results))
    for peer in generated.columns:
        energy = generated[peer].to_numpy(dtype=float)
        if energy.max() <= EPS:
            continue
        style = styles[str(peer)]
        gen_ax.bar(
            x,
            energy,
            bottom=bottom,
            width=0.6,
            color=style.colour,
            hatch=style.hatch,
            edgecolor="white",
            label=str(peer),
            gid=f"generation:{peer}",
        )
        bottom += energy
    gen_ax.set_title(f"Generation by {'community' if large else 'peer'}", fontsize=10)
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
    # Labels turn when they would not fit side by side under their bars.
    width_pt = fig.get_figwidth() * 72 / 3 * 0.75
    widest = max(len(line) for label in labels for line in label.split("\n"))
    size = 9 if len(results) <= 3 else 8
    turn = widest * size * 0.6 > 0.9 * width_pt / len(results)
    for ax in (obj_ax, gen_ax, route_ax):
        ax.set_xticks(
            x,
            labels,
            fontsize=size,
            rotation=35 if turn else 0,
            ha="right" if turn else "center",
            rotation_mode="anchor",
        )
        ax.grid(axis="y", color="#E5E5E5")
        ax.set_axisbelow(True)
        ax.margins(y=0.1)
    # Legends below the figure (clear of the tick labels, however many lines they have):
    # generation in the middle, under its panel; routes on the right, under theirs.
    places: tuple[tuple[Axes, int, Literal["outside lower center", "outside lower right"]], ...]
    places = ((gen_ax, 4, "outside lower center"), (route_ax, 2, "outside lower right"))
    for ax, columns, where in places:
        handles, names = ax.get_legend_handles_labels()
        fig.legend(
            handles[::-1],
            names[::-1],
            loc=where,
            ncols=columns,
            frameon=False,
            fontsize=8,
            title=ax.get_title(),
            title_fontsize=8,
        )
    names = sorted({r.scenario.name for r in results})
    fig.suptitle(f"Designs compared: {', '.join(names)}", fontsize=12)
    return fig


def _generation_by(result: ClearingResult, large: bool) -> pd.Series:
    """Energy each peer (or, `large`, each group) generates over the horizon (kWh)."""
    d = result.dispatch
    energy = d.groupby("peer", sort=False)["generation_kw"].sum() * result.scenario.period_hours
    energy = energy.reindex(list(result.scenario.peer_ids)).fillna(0.0)
    if large:
        groups = group_of(result.scenario)
        energy = energy.groupby([groups[str(p)] for p in energy.index], sort=False).sum()
    return energy
