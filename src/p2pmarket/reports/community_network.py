"""The trade network of a large market: communities, not peers (see `p2pmarket.reports.scale`).

Hundreds of peers and thousands of trades drawn one by one are a tangle. Here each
community (and the grid, and the peers in no community) is one node on a ring, sized by its
number of members and coloured by its net position in the period (it sells more to other
groups than it buys from them, or the reverse); an arrow is the energy one group sells to
another, the largest `MAX_FLOWS` drawn and the rest counted in the title. Energy traded
inside a group is written beside its node.
"""

from __future__ import annotations

import math

import networkx as nx
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, Patch, RegularPolygon

from p2pmarket.core.results import ClearingResult
from p2pmarket.reports.scale import MAX_PANELS, NO_COMMUNITY, OTHERS, group_of
from p2pmarket.reports.style import BUY_COLOUR, SELL_COLOUR, new_figure, period_label
from p2pmarket.types import NodeKind

__all__ = ["MAX_FLOWS", "community_network_figure", "group_flows"]

MAX_FLOWS = 30
"""Arrows drawn at most; the largest flows are kept."""
_LABELLED_FLOWS = 12
NEUTRAL_COLOUR = "#D9D9D9"
ARROW_COLOUR = "#333333"
_RING = 4.0
_LABEL_FITS = 4


def group_flows(result: ClearingResult, period: int) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """The trades of `period` by group: flows between groups (`seller`, `buyer`,
    `energy_kwh`, largest first), the energy traded inside each group, and the groups in
    scenario order (at most `MAX_PANELS`: past that the groups trading least are `others`).
    A manager belongs to its community's group."""
    groups = group_of(result.scenario)
    order = list(dict.fromkeys(groups.values()))
    owner_group = {c.id: groups[c.members[0]] for c in result.scenario.communities if c.members}
    trades = result.trades[result.trades["period"] == period]

    def group(kind: pd.Series, name: pd.Series) -> list[str]:
        return [
            owner_group.get(str(n), str(n)) if k == NodeKind.MANAGER else groups[str(n)]
            for k, n in zip(kind, name, strict=True)
        ]

    energy = trades["energy_kwh"].to_numpy(dtype=float)
    frame = pd.DataFrame(
        {
            "seller": group(trades["seller_kind"], trades["seller"]),
            "buyer": group(trades["buyer_kind"], trades["buyer"]),
            "energy_kwh": energy,
        }
    )
    if len(order) > MAX_PANELS:
        volume = pd.concat(
            [
                frame.groupby("seller")["energy_kwh"].sum(),
                frame.groupby("buyer")["energy_kwh"].sum(),
            ]
        )
        volume = volume.groupby(level=0).sum().reindex(order).fillna(0.0)
        keep = set(volume.sort_values(ascending=False, kind="stable").index[: MAX_PANELS - 1])
        keep.add("grid")
        others = f"{OTHERS} ({len([g for g in order if g not in keep])})"
        frame["seller"] = [g if g in keep else others for g in frame["seller"]]
        frame["buyer"] = [g if g in keep else others for g in frame["buyer"]]
        order = [g for g in order if g in keep] + [others]
    inside = frame[frame["seller"] == frame["buyer"]].groupby("seller")["energy_kwh"].sum()
    between = (
        frame[frame["seller"] != frame["buyer"]]
        .groupby(["seller", "buyer"], sort=False)["energy_kwh"]
        .sum()
        .sort_values(ascending=False, kind="stable")
        .reset_index()
    )
    return between, inside.reindex(order).fillna(0.0), order


def community_network_figure(result: ClearingResult, period: int) -> Figure:
    """Who sells to whom in `period`, community by community (module docstring)."""
    s = result.scenario
    between, inside, order = group_flows(result, period)
    groups = group_of(s)
    members = pd.Series(list(groups.values())).value_counts()
    size = {g: int(members.get(g, 0)) for g in order}
    if order and order[-1].startswith(OTHERS):
        size[order[-1]] = sum(int(v) for g, v in members.items() if g not in size)
    layout = nx.circular_layout(order, scale=_RING) if len(order) > 1 else {order[0]: (0, 0)}
    # Clockwise from the top, like the network of peers.
    at = {
        g: (float(p[1]), float(p[0])) if len(order) > 1 else (0.0, 0.0) for g, p in layout.items()
    }
    biggest = max(size.values()) if size else 1
    # Neighbours on the ring never overlap: the largest node takes 45% of the spacing.
    spacing = 2 * math.pi * _RING / max(len(order), 3)
    most = min(0.75, 0.45 * spacing)
    radius = {
        g: most * 0.6 if g == "grid" else most * (0.45 + 0.55 * math.sqrt(size[g] / biggest))
        for g in order
    }
    sold = between.groupby("seller")["energy_kwh"].sum().reindex(order).fillna(0.0)
    bought = between.groupby("buyer")["energy_kwh"].sum().reindex(order).fillna(0.0)
    fig = new_figure(10.0, 9.5)
    ax = fig.subplots()
    ax.set_aspect("equal")
    ax.set_axis_off()
    shapes: dict[str, Patch] = {}
    for g in order:
        x, y = at[g]
        net = float(sold[g] - bought[g])
        face = SELL_COLOUR if net > 1e-6 else BUY_COLOUR if net < -1e-6 else NEUTRAL_COLOUR
        shape: Patch
        if g == "grid":
            shape = RegularPolygon((x, y), 6, radius=radius[g], facecolor=face, edgecolor="black")
        else:
            shape = Circle((x, y), radius[g], facecolor=face, edgecolor="black")
        shape.set_gid(f"node:group:{g}")
        shape.set_zorder(3)
        ax.add_patch(shape)
        shapes[g] = shape
        short = len(g) <= _LABEL_FITS
        if short:
            ax.text(
                x,
                y,
                g,
                ha="center",
                va="center",
                fontsize=9,
                fontweight="bold",
                color="black" if face == NEUTRAL_COLOUR else "white",
                zorder=4,
                gid=f"label:group:{g}",
            )
        # Beyond the ring of nodes, along the node's own ray: clear of every node.
        angle = math.atan2(y, x) if (x, y) != (0.0, 0.0) else -math.pi / 2
        reach = (_RING + most + 0.2 - math.hypot(x, y)) if len(order) > 1 else radius[g] + 0.12
        detail = [] if short else [g]
        if g != "grid":
            detail.append(f"{size[g]} peers")
        if inside[g] > 1e-6:
            detail.append(f"{_energy(float(inside[g]))} kWh inside")
        c, sn = math.cos(angle), math.sin(angle)
        ax.text(
            x + reach * c,
            y + reach * sn,
            "\n".join(detail),
            fontsize=8,
            color="#333333",
            ha="left" if c > 0.4 else "right" if c < -0.4 else "center",
            va="bottom" if sn > 0.4 else "top" if sn < -0.4 else "center",
            gid=f"detail:group:{g}",
        )
    drawn = between.head(MAX_FLOWS)
    largest = float(drawn["energy_kwh"].max()) if len(drawn) else 1.0
    for rank, (seller, buyer, energy) in enumerate(
        zip(drawn["seller"], drawn["buyer"], drawn["energy_kwh"].to_numpy(float), strict=True)
    ):
        share = energy / largest
        ax.add_patch(
            FancyArrowPatch(
                at[seller],
                at[buyer],
                patchA=shapes[seller],
                patchB=shapes[buyer],
                arrowstyle="-|>",
                mutation_scale=8 + 10 * share,
                linewidth=0.5 + 4.5 * share,
                color=ARROW_COLOUR,
                alpha=0.55 + 0.45 * share,
                connectionstyle="arc3,rad=0.12",
                shrinkA=1,
                shrinkB=1,
                zorder=2,
                gid=f"trade:group:{seller}->group:{buyer}",
            )
        )
        if rank < _LABELLED_FLOWS:
            (x0, y0), (x1, y1) = at[seller], at[buyer]
            ax.text(
                (x0 + x1) / 2 + 0.06 * (y1 - y0),
                (y0 + y1) / 2 - 0.06 * (x1 - x0),
                _energy(energy),
                ha="center",
                va="center",
                fontsize=8,
                zorder=5,
                bbox={
                    "boxstyle": "round,pad=0.15",
                    "facecolor": "white",
                    "edgecolor": "none",
                    "alpha": 0.85,
                },
            )
    if between.empty and inside.sum() <= 1e-6:
        ax.text(0.5, 0.5, "no trades in this period", transform=ax.transAxes, ha="center")
    reach = _RING + most + 1.4
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    trades = result.trades[result.trades["period"] == period]
    energy = float(trades["energy_kwh"].sum())
    when = f" in {period_label(result, period)}" if s.periods > 1 else ""
    hidden = len(between) - len(drawn)
    small = float(between["energy_kwh"].iloc[len(drawn) :].sum())
    rest = f"; {hidden} smaller flows ({_energy(small)} kWh) not drawn" if hidden > 0 else ""
    fig.suptitle(
        f"Trades{when} between communities: {len(trades):,} trades, {energy:,.1f} kWh{rest}\n"
        f"{s.name}, {result.design} design, {len(s.peers):,} peers",
        fontsize=12,
    )
    handles: list[Artist] = [
        Patch(facecolor=SELL_COLOUR, edgecolor="black", label="sells more than it buys"),
        Patch(facecolor=BUY_COLOUR, edgecolor="black", label="buys more than it sells"),
        Patch(facecolor=NEUTRAL_COLOUR, edgecolor="black", label="neither"),
        Line2D(
            [],
            [],
            marker="h",
            linestyle="",
            markersize=13,
            markerfacecolor="white",
            markeredgecolor="black",
            label="main grid",
        ),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=11,
            markerfacecolor="white",
            markeredgecolor="black",
            label=f"community (size: members; {NO_COMMUNITY}: peers in none)",
        ),
        Line2D(
            [],
            [],
            color=ARROW_COLOUR,
            linewidth=2.5,
            label="energy sold from one group to another (kWh)",
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize=9)
    return fig


def _energy(value: float) -> str:
    """Whole kWh from 100 (thousands separated), one decimal from 1, two digits below."""
    if value >= 100:
        return f"{value:,.0f}"
    text = f"{value:.1f}" if value >= 1 else f"{value:.2g}"
    return text.removesuffix(".0")
