"""The trade network of one period: who sells to whom (the paper's Figures 3 and 5).

Communities sit on a ring, their members on a small ring around the community's manager
node; peers are coloured by their role in the period, one arrow per trade, sized and
labelled by its energy. networkx holds the trades of the period and places rings of nodes.

Nodes are `Node`s, (kind, name): a manager is named by its community's id and a peer id may
be anything (`C3`, `manager:C3`), so a node is told apart by its kind, never by its name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, Patch, RegularPolygon

from p2pmarket.core.results import ClearingResult
from p2pmarket.errors import P2PMarketError
from p2pmarket.reports.scale import is_large
from p2pmarket.reports.style import (
    BUY_COLOUR,
    SELL_COLOUR,
    Node,
    as_node,
    community_groups,
    new_figure,
    node_gid,
    period_label,
)
from p2pmarket.types import NodeKind

__all__ = ["busiest_period", "network_layout", "trade_network_figure"]

NEUTRAL_COLOUR = "#D9D9D9"
MANAGER_COLOUR = "#FFFFFF"
ARROW_COLOUR = "#333333"


def busiest_period(result: ClearingResult) -> int:
    """The period with the most traded energy (the first of equals; 0 without trades)."""
    trades = result.trades
    if trades.empty:
        return 0
    energy = trades.groupby("period")["energy_kwh"].sum()
    return int(energy.index[int(np.argmax(energy.to_numpy()))])


_SPACING = 0.95  # distance between neighbouring peers of one community (data units)
_NODE_RADIUS = 0.22
_DISC_PAD = 0.45  # from a community's ring of members to the edge of its disc (role labels)
_ROLE_COLOURS = {"seller": SELL_COLOUR, "buyer": BUY_COLOUR, "neutral": NEUTRAL_COLOUR}
_LABEL_FITS = 3  # characters of a peer's name that fit inside its circle (longer: outside)
_GRID_LABEL_FITS = 4  # the same inside the grid's larger hexagon


def _ring(
    nodes: Sequence[str], radius: float, centre: tuple[float, float], start: float
) -> dict[str, tuple[float, float]]:
    """`nodes` evenly on a circle, clockwise from the angle `start` (radians)."""
    if len(nodes) == 1:
        return {nodes[0]: centre}
    layout = nx.circular_layout(list(nodes), scale=radius, center=(0.0, 0.0))
    # networkx goes anticlockwise from angle 0: mirror it, then turn it to start at `start`.
    cos, sin = math.cos(start), math.sin(start)
    return {
        str(node): (centre[0] + cos * x + sin * y, centre[1] + sin * x - cos * y)
        for node, (x, y) in ((n, (float(p[0]), float(p[1]))) for n, p in layout.items())
    }


def _group_radius(n: int, managed: bool) -> float:
    if n == 1:
        return 0.0
    radius = _SPACING / (2 * math.sin(math.pi / n))
    return max(radius, 0.9) if managed else radius


def _managers(result: ClearingResult) -> set[str]:
    """Communities whose manager is a node of the result (it has a price or trades)."""
    prices, trades = result.prices, result.trades
    names = [prices.loc[prices["kind"] == NodeKind.MANAGER, "node"]]
    for end in ("seller", "buyer"):
        names.append(trades.loc[trades[f"{end}_kind"] == NodeKind.MANAGER, end])
    return {str(name) for column in names for name in column}


def network_layout(
    result: ClearingResult,
) -> tuple[dict[Node, tuple[float, float]], dict[str, tuple[float, float, float]]]:
    """Node positions and community discs (x, y, radius), by community id.

    Positions are keyed by node, `(NodeKind.PEER, peer id)` or `(NodeKind.MANAGER, community
    id)`. Communities (a peer with no community alone) sit clockwise on a ring in scenario
    order, the first at the top; the members of a community on a small ring around its
    manager, turned so that the middle of the figure faces a gap between members.
    """
    managers = _managers(result)
    groups = [
        (community, members, community is not None and community in managers)
        for community, members in community_groups(result.scenario)
    ]
    inner = [_group_radius(len(members), managed) for _, members, managed in groups]
    outer = [r + _NODE_RADIUS + _DISC_PAD for r in inner]
    ring = 0.0
    if len(groups) > 1:
        chord = 2 * math.sin(math.pi / len(groups))
        pairs = zip(outer, outer[1:] + outer[:1], strict=True)
        ring = max((a + b + 0.6 * _SPACING) / chord for a, b in pairs)
        if len(groups) == 2:
            ring = max(ring, (outer[0] + outer[1] + 2 * _SPACING) / 2)
    centres = _ring([str(i) for i in range(len(groups))], ring, (0.0, 0.0), math.pi / 2)
    positions: dict[Node, tuple[float, float]] = {}
    discs: dict[str, tuple[float, float, float]] = {}
    for i, (community, members, managed) in enumerate(groups):
        x, y = centres[str(i)]
        outward = math.atan2(y, x) if (x, y) != (0.0, 0.0) else math.pi / 2
        turn = math.pi / len(members) if len(members) % 2 == 0 else 0.0
        around = _ring(members, inner[i], (x, y), outward + turn)
        positions.update(((NodeKind.PEER, peer), at) for peer, at in around.items())
        if community is not None and managed:
            positions[NodeKind.MANAGER, community] = (x, y)
        if community is not None:
            discs[community] = (x, y, outer[i] if len(members) > 1 else _NODE_RADIUS + 0.3)
    return positions, discs


def trade_network_figure(result: ClearingResult, period: int | None = None) -> Figure:
    """Who sells to whom in one period (default: the busiest): the paper's Figures 3 and 5.

    Peers are placed by community and coloured by their role in the period (seller, buyer,
    neither); the grid is a hexagon and a community manager a square. One arrow per trade,
    its width proportional to the energy and labelled with it (kWh). A name longer than
    three characters (four in the grid's hexagon) is written outside its node, with the
    peer's role. A large market
    (`p2pmarket.reports.scale`) is drawn by community: `community_network_figure`.
    """
    s = result.scenario
    if period is None:
        period = busiest_period(result)
    if not 0 <= period < s.periods:
        raise P2PMarketError(f"period {period} is outside the horizon 0..{s.periods - 1}")
    if is_large(s):
        from p2pmarket.reports.community_network import community_network_figure

        return community_network_figure(result, period)
    positions, discs = network_layout(result)
    many = len(positions) > 10
    fig = new_figure(10.0 if many else 7.5, 9.0 if many else 6.6)
    ax = fig.subplots()
    ax.set_aspect("equal")
    ax.set_axis_off()
    font = 9 if many else 10
    for community, (x, y, r) in discs.items():
        ax.add_patch(
            Circle(
                (x, y),
                r,
                facecolor="#F3F3F3",
                edgecolor="#A0A0A0",
                linestyle="--",
                linewidth=0.8,
                zorder=0,
                gid=f"community:{community}",
            )
        )
        ax.text(
            x,
            y + r + 0.06,
            community,
            ha="center",
            va="bottom",
            fontsize=font + 1,
            color="#444444",
            fontweight="bold",
        )
    rows = result.dispatch[result.dispatch["period"] == period]
    roles = dict(zip(rows["peer"].astype(str), rows["role"].astype(str), strict=True))
    shapes = _draw_nodes(ax, result, positions, discs, roles, font)
    trades = result.trades[result.trades["period"] == period]
    _draw_trades(ax, trades, positions, shapes, font)
    xs = [x for x, _ in positions.values()] + [
        x + k * r for x, _, r in discs.values() for k in (-1, 1)
    ]
    ys = [y for _, y in positions.values()] + [
        y + k * r for _, y, r in discs.values() for k in (-1, 1)
    ]
    margin = 0.6
    ax.set_xlim(min(xs) - margin, max(xs) + margin)
    ax.set_ylim(min(ys) - margin, max(ys) + margin)
    when = f" in {period_label(result, period)}" if s.periods > 1 else ""
    energy = float(trades["energy_kwh"].sum())
    fig.suptitle(
        f"Trades{when}: {len(trades)} trades, {energy:,.1f} kWh\n{s.name}, {result.design} design",
        fontsize=12,
    )
    handles: list[Artist] = [
        Patch(facecolor=SELL_COLOUR, edgecolor="black", label="seller"),
        Patch(facecolor=BUY_COLOUR, edgecolor="black", label="buyer"),
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
    ]
    if any(kind == NodeKind.MANAGER for kind, _ in positions):
        handles.append(
            Line2D(
                [],
                [],
                marker="s",
                linestyle="",
                markersize=10,
                markerfacecolor="white",
                markeredgecolor="black",
                label="community manager (M)",
            )
        )
    handles.append(
        Line2D(
            [], [], color=ARROW_COLOUR, linewidth=2.5, label="trade: width and label = energy (kWh)"
        )
    )
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, fontsize=9)
    return fig


def _draw_nodes(
    ax: Axes,
    result: ClearingResult,
    positions: Mapping[Node, tuple[float, float]],
    discs: Mapping[str, tuple[float, float, float]],
    roles: Mapping[str, str],
    font: int,
) -> dict[Node, Patch]:
    """One patch per node (gid `node:<kind>:<name>`, see `node_gid`), a peer's id or `M`
    inside, a peer's declared role outside."""
    declared = {p.id: p.role for p in result.scenario.peers}
    owner = result.scenario.community_of()
    shapes: dict[Node, Patch] = {}
    for node, (x, y) in positions.items():
        kind, name = node
        shape: Patch
        if kind == NodeKind.MANAGER:
            shape = RegularPolygon(
                (x, y),
                4,
                radius=_NODE_RADIUS * 1.2,
                orientation=math.pi / 4,
                facecolor=MANAGER_COLOUR,
                edgecolor="black",
                linewidth=1.2,
            )
            label, text_colour = "M", "black"
        else:
            role = roles.get(name, "neutral")
            face = _ROLE_COLOURS.get(role, NEUTRAL_COLOUR)
            if declared[name] == "grid":
                shape = RegularPolygon(
                    (x, y),
                    6,
                    radius=_NODE_RADIUS * 1.25,
                    facecolor=face,
                    edgecolor="black",
                    linewidth=1.2,
                )
            else:
                shape = Circle((x, y), _NODE_RADIUS, facecolor=face, edgecolor="black")
            label, text_colour = name, "black" if face == NEUTRAL_COLOUR else "white"
        # A name too long for its node is written outside it, with the declared role.
        grid = kind == NodeKind.PEER and declared[name] == "grid"
        long = len(label) > (_GRID_LABEL_FITS if grid else _LABEL_FITS)
        if kind == NodeKind.PEER and (long or declared[name] != "grid"):
            # Outside the node, away from its community's middle.
            community = owner.get(name)
            cx, cy = discs[community][:2] if community is not None else (0.0, 0.0)
            angle = math.atan2(y - cy, x - cx) if (x, y) != (cx, cy) else -math.pi / 2
            reach = _NODE_RADIUS * 1.35
            role = "" if declared[name] == "grid" else declared[name]
            outside = f"{name}\n{role}".strip() if long else role
            ax.text(
                x + reach * math.cos(angle),
                y + reach * math.sin(angle),
                outside,
                fontsize=font - 1 if long else font - 2,
                color="black" if long else "#444444",
                fontweight="bold" if long else "normal",
                gid=f"label:{node_gid(node)}" if long else None,
                **_outward(angle),
            )
        shape.set_gid(f"node:{node_gid(node)}")
        shape.set_zorder(3)
        ax.add_patch(shape)
        shapes[node] = shape
        if not long:
            ax.text(
                x,
                y,
                label,
                ha="center",
                va="center",
                fontsize=font if len(label) <= 3 else font - 1,
                color=text_colour,
                fontweight="bold",
                zorder=4,
                gid=f"label:{node_gid(node)}",
            )
    return shapes


def _bend(positions: Mapping[Node, tuple[float, float]], seller: Node, buyer: Node) -> float:
    """Curvature (matplotlib's arc3 `rad`) of the arrow seller -> buyer: slight, or more
    pronounced when a slight curve would pass over another node."""
    a = np.asarray(positions[seller])
    b = np.asarray(positions[buyer])
    others = np.asarray([p for n, p in positions.items() if n not in (seller, buyer)])
    t = np.linspace(0.08, 0.92, 25)[:, None]
    normal = np.array([b[1] - a[1], a[0] - b[0]])
    for rad in (0.12, 0.35, -0.25, 0.6, -0.5):
        control = (a + b) / 2 + rad * normal
        curve = (1 - t) ** 2 * a + 2 * (1 - t) * t * control + t**2 * b
        if len(others) == 0:
            return rad
        gaps = np.linalg.norm(curve[:, None, :] - others[None, :, :], axis=2)
        if gaps.min() > 1.6 * _NODE_RADIUS:
            return rad
    return 0.12


def _outward(angle: float) -> dict[str, Any]:
    """Text alignment that puts a label on the side of its anchor facing `angle`."""
    c, s = math.cos(angle), math.sin(angle)
    ha = "left" if c > 0.4 else "right" if c < -0.4 else "center"
    va = "bottom" if s > 0.4 else "top" if s < -0.4 else "center"
    return {"ha": ha, "va": va}


def _draw_trades(
    ax: Axes,
    trades: pd.DataFrame,
    positions: Mapping[Node, tuple[float, float]],
    shapes: Mapping[Node, Patch],
    font: int,
) -> None:
    """One arrow per trade (gid `trade:<seller>-><buyer>`, each end as `node_gid` writes it),
    sized and labelled by energy."""
    if trades.empty:
        ax.text(
            0.5,
            0.5,
            "no trades in this period",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=12,
            color="#777777",
        )
        return
    graph = nx.DiGraph()
    for seller, seller_kind, buyer, buyer_kind, energy in zip(
        trades["seller"],
        trades["seller_kind"],
        trades["buyer"],
        trades["buyer_kind"],
        trades["energy_kwh"].to_numpy(float),
        strict=True,
    ):
        graph.add_edge(
            as_node(seller_kind, seller), as_node(buyer_kind, buyer), energy_kwh=float(energy)
        )
    largest = max(energy for _, _, energy in graph.edges(data="energy_kwh"))
    for seller, buyer, energy in graph.edges(data="energy_kwh"):
        share = energy / largest
        rad = _bend(positions, seller, buyer)
        ax.add_patch(
            FancyArrowPatch(
                positions[seller],
                positions[buyer],
                patchA=shapes[seller],
                patchB=shapes[buyer],
                arrowstyle="-|>",
                mutation_scale=10 + 10 * share,
                linewidth=0.8 + 4.5 * share,
                color=ARROW_COLOUR,
                connectionstyle=f"arc3,rad={rad}",
                shrinkA=1,
                shrinkB=1,
                zorder=2,
                gid=f"trade:{node_gid(seller)}->{node_gid(buyer)}",
            )
        )
        (x0, y0), (x1, y1) = positions[seller], positions[buyer]
        # Middle of the arc3 curve: the chord's midpoint moved sideways by rad/2 of the chord.
        mx = (x0 + x1) / 2 + rad / 2 * (y1 - y0)
        my = (y0 + y1) / 2 - rad / 2 * (x1 - x0)
        ax.text(
            mx,
            my,
            _energy(energy),
            ha="center",
            va="center",
            fontsize=font - 1,
            zorder=5,
            bbox={
                "boxstyle": "round,pad=0.15",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.85,
            },
        )


def _energy(value: float) -> str:
    """An energy label: whole kWh from 100, one decimal from 1, two significant digits below."""
    if value >= 100:
        return f"{value:,.0f}"
    text = f"{value:.1f}" if value >= 1 else f"{value:.2g}"
    return text.removesuffix(".0")
