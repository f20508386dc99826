"""Shared look of every figure: one style per peer, colours of roles, the canvas.

Each peer keeps one style (`peer_styles`) in every figure, taken from the Okabe-Ito palette
(safe for colour-blind readers); past seven peers the colours repeat with a hatch (areas,
bars) and a dash pattern (lines), and the grid is always dark grey. Roles and directions have
fixed colours: sellers and exports vermillion, buyers and imports blue.

Nodes of the trade network (peers and community managers) are `Node`s: a kind and a name.
A manager is named by its community's id and a peer id may be any string, so only the pair
tells a node apart, never its name alone (`node_label` and `node_gid` show it to people and
to tests).

Figures are built with matplotlib's object-oriented API on an Agg canvas (`new_figure`): no
pyplot, no global state, no display needed.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.types import NodeKind

__all__ = [
    "BUY_COLOUR",
    "GRID_COLOUR",
    "PALETTE",
    "SELL_COLOUR",
    "Node",
    "PeerStyle",
    "as_node",
    "community_groups",
    "figure_png",
    "new_figure",
    "node_gid",
    "node_label",
    "peer_colours",
    "peer_styles",
    "period_label",
    "with_community",
]

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
"""Okabe-Ito's colours without black, ordered so that small markets avoid the pale yellow."""
GRID_COLOUR = "#4D4D4D"
SELL_COLOUR = "#D55E00"  # sellers, exports
BUY_COLOUR = "#0072B2"  # buyers, imports
_HATCHES = ("", "///", "...", "xxx")
Node = tuple[NodeKind, str]
"""A node of the trade network: its kind and its name (a peer's id, a manager's community)."""
_DASHES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class PeerStyle:
    """How one peer is drawn: its colour, the hatch of its areas and the dashes of its lines."""

    colour: str
    hatch: str = ""
    linestyle: str = "-"


def peer_styles(peers: Scenario | Sequence[str]) -> dict[str, PeerStyle]:
    """Peer id -> style, in the order given; the grid (a peer of role `grid`) is dark grey.

    Styles depend only on a peer's position among the non-grid peers, so every figure of one
    scenario — and of the same scenario under another design — draws a peer alike.
    """
    if isinstance(peers, Scenario):
        ids = [p.id for p in peers.peers]
        grid = {p.id for p in peers.peers if p.role == "grid"}
    else:
        ids, grid = list(peers), set()
    styles: dict[str, PeerStyle] = {}
    i = 0
    for peer in ids:
        if peer in grid:
            styles[peer] = PeerStyle(GRID_COLOUR)
            continue
        cycle = (i // len(PALETTE)) % len(_HATCHES)
        styles[peer] = PeerStyle(PALETTE[i % len(PALETTE)], _HATCHES[cycle], _DASHES[cycle])
        i += 1
    return styles


def peer_colours(peers: Scenario | Sequence[str]) -> dict[str, str]:
    """Peer id -> colour (hex), as used by every figure; see `peer_styles`."""
    return {peer: style.colour for peer, style in peer_styles(peers).items()}


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, rendered by Agg, without a timestamp or software tag."""
    buffer = io.BytesIO()
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with warnings.catch_warnings():
        # a peer id's control character has no glyph; the warning would print it raw
        warnings.filterwarnings("ignore", r"Glyph \d+ .* missing from font", UserWarning)
        fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def bottom_legend(
    fig: Figure,
    handles: Sequence[Any],
    labels: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    title: str | None = None,
) -> None:
    """One legend for the whole figure, centred below its axes, at most `ncols` columns."""
    extra: dict[str, Any] = {} if labels is None else {"labels": labels}
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(ncols, max(1, len(handles))),
        frameon=False,
        fontsize=9,
        title=title,
        **extra,
    )


def new_figure(width: float, height: float) -> Figure:
    """An empty figure (inches) with constrained layout on its own Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def period_label(result: ClearingResult, period: int) -> str:
    """`period 6 (6-7 h)`: a period and the hours it covers."""
    dt = result.scenario.period_hours
    return f"period {period} ({period * dt:g}-{(period + 1) * dt:g} h)"


def with_community(peer: str, owner: Mapping[str, str | None]) -> str:
    """`P6 (C2)`, or the bare id of a peer with no community."""
    community = owner.get(peer)
    return peer if community is None else f"{peer} ({community})"


def as_node(kind: object, name: object) -> Node:
    """The node of a `kind` column's value and a name column's value (refusing other kinds)."""
    return NodeKind(str(kind)), str(name)


def node_label(of: Node, owner: Mapping[str, str | None]) -> str:
    """`manager C3` for a manager, `P6 (C2)` for a peer (see `with_community`)."""
    kind, name = of
    return f"manager {name}" if kind == NodeKind.MANAGER else with_community(name, owner)


def node_gid(of: Node) -> str:
    """`peer:P2`, `manager:C3`: a node as (part of) a matplotlib gid, its kind first.

    One string per node whatever the names: the kind holds no `:`, and a name's `%` and `>`
    are written `%25` and `%3E`, so `->` between two of these never occurs inside one."""
    kind, name = of
    return f"{kind.value}:{name.replace('%', '%25').replace('>', '%3E')}"


def community_groups(scenario: Scenario) -> list[tuple[str | None, list[str]]]:
    """Communities with their members in scenario order; a peer listed nowhere stands alone."""
    owner = scenario.community_of()
    groups: dict[str, list[str]] = {}
    out: list[tuple[str | None, list[str]]] = []
    for peer in scenario.peer_ids:
        community = owner[peer]
        if community is None:
            out.append((None, [peer]))
        elif community not in groups:
            groups[community] = [peer]
            out.append((community, groups[community]))
        else:
            groups[community].append(peer)
    return out
