"""Details of the figures that once went wrong, each checked on the matplotlib objects drawn.

One test per defect of the figures issue: node labels spilling out of their circles, the
design comparison's x labels colliding, a single battery drawn pale on white with a legend
that does not match, the price heat map squeezed by one outlier row and without values, and
the savings drawn in the colour of "in the market". Geometry is measured on the rendered
figure (`get_window_extent`); colours are judged by WCAG contrast, computed here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path
from matplotlib.patheffects import Stroke
from matplotlib.text import Text
from matplotlib.transforms import Bbox

import p2pmarket
from p2pmarket.core.results import ClearingResult
from p2pmarket.reports import (
    PALETTE,
    bills_figure,
    design_comparison_figure,
    price_figure,
    state_of_charge_figure,
    trade_network_figure,
)

# --- helpers ---------------------------------------------------------------------------------


def renderer_of(fig: Figure) -> RendererBase:
    fig.canvas.draw()
    return fig.canvas.get_renderer()  # type: ignore[attr-defined,no-any-return]


def relative_luminance(rgba: Sequence[float], background: float = 1.0) -> float:
    """WCAG 2 relative luminance of `rgba` composited over a grey `background` (1: white)."""

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    alpha = rgba[3]
    r, g, b = (alpha * c + (1 - alpha) * background for c in rgba[:3])
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast_on_white(colour: Any) -> float:
    """WCAG contrast ratio of `colour` against white (1 to 21)."""
    return 1.05 / (relative_luminance(to_rgba(colour)) + 0.05)


def test_the_contrast_helper_matches_known_ratios() -> None:
    assert contrast_on_white("black") == pytest.approx(21.0)
    assert contrast_on_white("white") == pytest.approx(1.0)
    assert contrast_on_white("#767676") == pytest.approx(4.54, abs=0.01)
    assert contrast_on_white("#ffffb3") < 1.1  # the pale yellow of the issue
    assert contrast_on_white((0, 0, 0, 0.0)) == pytest.approx(1.0)  # transparent


def text_polygon(text: Text, renderer: RendererBase) -> Path:
    """The rotated rectangle a text covers on the canvas (pixels).

    `get_window_extent` gives the axis-aligned box around the rotated rectangle; with the
    rotation θ (not 45°), W = w·cosθ + h·sinθ and H = w·sinθ + h·cosθ give back w and h."""
    box = text.get_window_extent(renderer)
    theta = math.radians(text.get_rotation() % 180)
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    if s < 1e-9 or c < 1e-9:
        return Path(box.corners()[[0, 1, 3, 2, 0]], closed=True)
    det = c * c - s * s
    assert abs(det) > 0.05, "rotation too close to 45° to recover the text's rectangle"
    w = (box.width * c - box.height * s) / det
    h = (box.height * c - box.width * s) / det
    ux, uy = math.cos(theta), math.sin(theta)  # along the text
    vx, vy = -uy, ux  # across it
    cx, cy = box.x0 + box.width / 2, box.y0 + box.height / 2
    corners = [
        (cx + a * w / 2 * ux + b * h / 2 * vx, cy + a * w / 2 * uy + b * h / 2 * vy)
        for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))
    ]
    return Path(corners, closed=True)


def polygons_overlap(a: Path, b: Path, tolerance: float = 0.5) -> bool:
    """Whether two convex polygons (pixels) overlap by more than `tolerance` px (separating
    axis theorem: disjoint iff some edge normal separates their projections)."""
    for polygon in (a, b):
        points = polygon.vertices
        for p, q in itertools.pairwise(points):
            normal = np.array([q[1] - p[1], p[0] - q[0]])
            length = float(np.hypot(*normal))
            if length < 1e-9:
                continue
            normal /= length
            pa, pb = a.vertices @ normal, b.vertices @ normal
            if pa.max() <= pb.min() + tolerance or pb.max() <= pa.min() + tolerance:
                return False
    return True


def clear(
    scenario: p2pmarket.Scenario | dict[str, Any], design: str | None = None
) -> ClearingResult:
    if isinstance(scenario, dict):
        scenario = p2pmarket.Scenario.from_dict(scenario)
    return p2pmarket.clear(scenario, design)


def renamed(scenario: p2pmarket.Scenario, rename: Callable[[str], str]) -> p2pmarket.Scenario:
    """`scenario` with every peer id `p` replaced by `rename(p)` wherever it occurs."""
    data = scenario.to_dict()
    for peer in data["peers"]:
        peer["id"] = rename(peer["id"])
    for community in data["communities"]:
        community["members"] = [rename(p) for p in community["members"]]
    if data.get("links") is not None:
        data["links"] = [[rename(a), rename(b)] for a, b in data["links"]]
    if data.get("fee_collector") is not None:
        data["fee_collector"] = rename(data["fee_collector"])
    return p2pmarket.Scenario.from_dict(data)


# --- node labels -----------------------------------------------------------------------------


def _long_names(peer: str) -> str:
    """Ids of three, four and more characters (`Q02`, `P003`, `household-4`); the grid's
    (four characters) as it is."""
    if peer == "grid":
        return peer
    number = int(peer.removeprefix("P"))
    return (f"P{number:03d}", f"household-{number}", f"Q{number:02d}")[number % 3]


@pytest.mark.parametrize(
    ("case", "design"),
    [
        ("five-peer-case-2", "community"),
        ("five-peer-case-1", "p2p"),
        ("seventeen-peer-case-2", "hybrid"),
        ("seventeen-peer-case-1", "p2p"),
    ],
)
def test_node_labels_fit_inside_their_node_or_stay_clear_of_every_node(
    case: str, design: str
) -> None:
    scenario = renamed(p2pmarket.cases.load(case), _long_names)
    assert any(len(p) > 4 for p in scenario.peer_ids)
    result = clear(scenario, design)
    fig = trade_network_figure(result)
    renderer = renderer_of(fig)
    ax = fig.axes[0]
    nodes: dict[str, Path] = {}  # each node's outline on the canvas
    node_boxes: dict[str, Bbox] = {}
    for patch in ax.patches:
        gid = patch.get_gid() or ""
        if gid.startswith("node:"):
            node = gid.removeprefix("node:")
            nodes[node] = patch.get_path().transformed(patch.get_transform())
            node_boxes[node] = patch.get_window_extent(renderer)
    assert len(nodes) >= len(scenario.peers)
    labels = {
        (text.get_gid() or "").removeprefix("label:"): text
        for text in ax.texts
        if (text.get_gid() or "").startswith("label:")
    }
    assert set(labels) == set(nodes), "one label per node"
    figure_box = fig.bbox
    long = 0
    for node, text in labels.items():
        name = node.split(":", 1)[1]
        long += len(name) > 4
        box = text.get_window_extent(renderer)
        inside = node_boxes[node].contains(box.x0, box.y0) and node_boxes[node].contains(
            box.x1, box.y1
        )
        touched = [other for other, path in nodes.items() if path.intersects_bbox(box)]
        assert inside or not touched, (
            f"label {text.get_text()!r} of {node} neither fits inside its node nor stays "
            f"clear of the nodes {touched}"
        )
        assert figure_box.contains(box.x0, box.y0) and figure_box.contains(box.x1, box.y1), (
            f"label {text.get_text()!r} of {node} leaves the figure"
        )
    assert long >= 1


# --- design comparison -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def six_designs() -> list[ClearingResult]:
    """Three designs x two scenarios with long names (five-peer Case II, renamed)."""
    base = p2pmarket.cases.load("five-peer-case-2")
    return [
        clear(base.replace(name=name), design)
        for name in ("a-rather-long-scenario-name", "another-rather-long-scenario-name")
        for design in ("p2p", "community", "hybrid")
    ]


@pytest.mark.parametrize(
    "labels",
    [
        None,
        ["community design / a-rather-long-scenario-name"] * 3
        + ["hybrid design / another-rather-long-scenario-name"] * 3,
        ["averyveryverylongunbreakablelabel"] * 6,
    ],
    ids=["default-labels", "slashed-labels", "unbreakable-labels"],
)
def test_design_comparison_x_labels_do_not_collide(
    six_designs: list[ClearingResult], labels: list[str] | None
) -> None:
    fig = design_comparison_figure(six_designs, labels)
    renderer = renderer_of(fig)
    panels = [ax for ax in fig.axes if ax.get_xticklabels()]
    assert len(panels) == 3
    placed: list[tuple[str, Path, Bbox]] = []
    for n, ax in enumerate(panels):
        ticks = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        assert len(ticks) == len(six_designs)
        for tick in ticks:
            box = tick.get_window_extent(renderer)
            placed.append((f"panel {n}: {tick.get_text()!r}", text_polygon(tick, renderer), box))
    for i, (name, polygon, box) in enumerate(placed):
        assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1), (
            f"{name} leaves the figure: {box.bounds} outside {fig.bbox.bounds}"
        )
        for other, other_polygon, _ in placed[i + 1 :]:
            assert not polygons_overlap(polygon, other_polygon), f"{name} overlaps {other}"


def test_the_overlap_helper_sees_rotated_text_collide() -> None:
    fig = Figure(figsize=(3, 2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    a = ax.text(0.3, 0.5, "a long label here", rotation=35, ha="right", rotation_mode="anchor")
    b = ax.text(0.35, 0.5, "a long label here", rotation=35, ha="right", rotation_mode="anchor")
    c = ax.text(0.3, 0.1, "x", rotation=35)
    renderer = renderer_of(fig)
    assert polygons_overlap(text_polygon(a, renderer), text_polygon(b, renderer))
    assert not polygons_overlap(text_polygon(a, renderer), text_polygon(c, renderer))


# --- a single battery ------------------------------------------------------------------------


def one_battery_market(position: int, periods: int = 3) -> dict[str, Any]:
    """The grid and seven peers (one of each palette colour); only peer `position` (0-6 among
    the non-grid peers) has a battery, 25 kWh, which cheap energy in period 0 fills."""
    offers = [0.05] + [0.25] * (periods - 1)
    peers: list[dict[str, Any]] = [
        {"id": "grid", "role": "grid", "generation": {"max_kw": 500, "offer_per_kwh": offers}}
    ]
    for i in range(len(PALETTE)):
        peer: dict[str, Any] = {"id": f"P{i + 1}", "role": "consumer", "load_kw": 5 + i}
        if i == position:
            peer["role"] = "prosumer"
            peer["load_kw"] = [0.0] + [8.0] * (periods - 1)
            peer["storage"] = {"capacity_kwh": 25, "power_kw": 20, "initial_soc": 0.2}
        peers.append(peer)
    return {"name": "one-battery", "periods": periods, "peers": peers}


def _visible_colours(artist: Artist) -> list[tuple[float, ...]]:
    """Colours that draw `artist`'s shape: a line's colour, its markers' edge and a darker
    outline stroked under it; a patch's face and (if stroked) its edge."""
    if isinstance(artist, Line2D):
        colours = [to_rgba(artist.get_color(), artist.get_alpha())]
        if artist.get_marker() not in (None, "", "None", " "):
            colours.append(to_rgba(artist.get_markeredgecolor(), artist.get_alpha()))
        for effect in artist.get_path_effects():
            if isinstance(effect, Stroke):
                foreground = effect._gc.get("foreground")
                if foreground is not None:
                    colours.append(to_rgba(foreground))
        return colours
    assert isinstance(artist, Patch)
    colours = []
    if artist.get_fill():
        colours.append(tuple(artist.get_facecolor()))
    if artist.get_linewidth() > 0:
        colours.append(tuple(artist.get_edgecolor()))
    return colours


def _storage_artists(fig: Figure) -> list[Artist]:
    found = fig.findobj(
        lambda a: (
            isinstance(a, (Line2D, Patch))
            and (a.get_gid() or "").startswith(("soc:", "capacity:", "charge:", "discharge:"))
        )
    )
    return [a for a in found if a.axes is not None and a.get_visible()]


@pytest.mark.parametrize("position", range(len(PALETTE)))
def test_a_single_battery_is_drawn_in_contrast_with_its_capacity_and_a_matching_legend(
    position: int,
) -> None:
    data = one_battery_market(position)
    result = clear(data)
    peer = f"P{position + 1}"
    capacity = float(data["peers"][position + 1]["storage"]["capacity_kwh"])
    fig = state_of_charge_figure(result)
    renderer_of(fig)
    artists = _storage_artists(fig)
    gids = {a.get_gid() for a in artists}
    assert {f"soc:{peer}", f"capacity:{peer}", f"charge:{peer}"} <= gids
    for artist in artists:
        best = max(contrast_on_white(c) for c in _visible_colours(artist))
        assert best >= 3.0, f"{artist.get_gid()} has contrast {best:.2f}:1 on white"
    # The capacity: a line drawn at the capacity, opaque enough to be seen.
    capacity_lines = [
        a
        for a in artists
        if isinstance(a, Line2D)
        and (a.get_alpha() if a.get_alpha() is not None else 1.0) >= 0.5
        and np.allclose(np.asarray(a.get_ydata(), dtype=float), capacity)
    ]
    assert capacity_lines, f"no line at the capacity {capacity} kWh"
    top = capacity_lines[0].axes
    assert top is not None and top.get_ylim()[1] > capacity, "the capacity line is cut off"
    # The legend: every entry drawn as the artists it names.
    (legend,) = fig.legends
    soc_line = next(a for a in artists if a.get_gid() == f"soc:{peer}")
    charge = [a for a in artists if a.get_gid() == f"charge:{peer}"]
    discharge = [a for a in artists if a.get_gid() == f"discharge:{peer}"]
    labelled: dict[str, list[Artist]] = {
        peer: [soc_line],
        "capacity": capacity_lines,
        "charge (solid bars)": charge,
        "discharge (hatched bars)": discharge,
    }
    entries = _legend_entries(legend)
    assert set(entries) == set(labelled)
    for label, handle in entries.items():
        for drawn in labelled[label]:
            _assert_drawn_alike(label, handle, drawn)


def _legend_entries(legend: Legend) -> dict[str, Artist]:
    handles = legend.legend_handles
    return {t.get_text(): h for t, h in zip(legend.get_texts(), handles, strict=True) if h}


def _assert_drawn_alike(label: str, handle: Artist, drawn: Artist) -> None:
    if isinstance(drawn, Line2D):
        assert isinstance(handle, Line2D), label
        assert to_rgba(handle.get_color()) == to_rgba(drawn.get_color()), label
        assert handle.get_linestyle() == drawn.get_linestyle(), label
    else:
        assert isinstance(drawn, Patch) and isinstance(handle, Patch), label
        assert tuple(handle.get_facecolor()) == tuple(drawn.get_facecolor()), label
        assert (handle.get_hatch() or "") == (drawn.get_hatch() or ""), label


def test_a_single_battery_over_one_period_shows_its_capacity() -> None:
    data = one_battery_market(position=6, periods=1)  # the pale yellow peer
    data["peers"][7]["storage"]["initial_soc"] = 0.6
    fig = state_of_charge_figure(clear(data))
    renderer_of(fig)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    outlines = [b for b in bars if not b.get_fill()]
    assert [b.get_height() for b in outlines] == pytest.approx([25.0])
    for bar in bars:
        best = max(contrast_on_white(c) for c in _visible_colours(bar))
        assert best >= 3.0, f"{bar.get_gid()} has contrast {best:.2f}:1 on white"
    (legend,) = fig.legends
    entries = _legend_entries(legend)
    assert set(entries) == {"capacity"}
    assert tuple(entries["capacity"].get_edgecolor()) == tuple(outlines[0].get_edgecolor())


# --- price heat map --------------------------------------------------------------------------


def outlier_market(periods: int = 6, others: int = 4) -> dict[str, Any]:
    """Consumers paying the grid's price, which climbs by 0.03 a period, and one prosumer `Z`
    linked to nobody, serving itself at 10 $/kWh: one outlier row of prices."""
    ids = [f"P{i + 2}" for i in range(others)]
    peers: list[dict[str, Any]] = [
        {
            "id": "grid",
            "role": "grid",
            "generation": {
                "max_kw": 1000,
                "offer_per_kwh": [round(0.05 + 0.03 * t, 4) for t in range(periods)],
            },
        }
    ]
    peers += [{"id": p, "role": "consumer", "load_kw": 10 + i} for i, p in enumerate(ids)]
    peers.append(
        {
            "id": "Z",
            "role": "prosumer",
            "load_kw": 5,
            "generation": {"max_kw": 50, "offer_per_kwh": 10.0},
        }
    )
    nodes = ["grid", *ids]
    links = [[a, b] for a in nodes for b in nodes if a != b]
    return {"name": "outlier", "periods": periods, "links": links, "peers": peers}


def _heat_map(fig: Figure) -> tuple[Axes, QuadMesh]:
    for ax in fig.axes:
        for mesh in ax.collections:
            if isinstance(mesh, QuadMesh) and mesh.get_gid() == "prices":
                return ax, mesh
    raise AssertionError("no price heat map")


def _price_grid(result: ClearingResult) -> pd.DataFrame:
    p = result.prices
    peers = p[p["kind"] == p2pmarket.NodeKind.PEER]
    return peers.pivot_table(index="node", columns="period", values="price_per_kwh")


@pytest.mark.parametrize("others", [2, 4, 16])
def test_one_outlier_row_does_not_squeeze_the_price_colours(others: int) -> None:
    result = clear(outlier_market(others=others))
    grid = _price_grid(result)
    assert grid.loc["Z"].min() > 5.0, "the test needs Z's prices to be an outlier"
    rest = grid.drop(index="Z")
    assert rest.to_numpy().max() < 0.5
    fig = price_figure(result)
    ax, mesh = _heat_map(fig)
    renderer_of(fig)
    norm = mesh.norm
    assert norm.vmax < grid.loc["Z"].min(), f"the colour scale spans the outlier ({norm.vmax})"
    # The other rows' cells: their colours as drawn, one per distinct price at least six.
    labels = [t.get_text() for t in ax.get_yticklabels()]
    values = np.ma.filled(mesh.get_array().astype(float), np.nan).reshape(len(labels), -1)
    others_rows = [i for i, label in enumerate(labels) if label in rest.index]
    cells = values[others_rows]
    colours = {tuple(np.round(mesh.cmap(norm(v)), 4)) for v in cells[~np.isnan(cells)]}
    distinct_prices = len(np.unique(np.round(rest.to_numpy(), 6)))
    assert distinct_prices >= 6
    assert len(colours) >= distinct_prices, (
        f"{distinct_prices} distinct prices drawn in only {len(colours)} colours"
    )
    # The outlier itself is still told apart: the colour bar extends beyond its top.
    colorbar = mesh.colorbar
    assert colorbar is not None and colorbar.extend in ("max", "both")


@pytest.mark.parametrize(
    "scenario",
    ["outlier", "five-peer-case-2"],
)
def test_a_small_price_heat_map_writes_every_price_in_its_cell(scenario: str) -> None:
    if scenario == "outlier":
        result = clear(outlier_market())
    else:
        case = p2pmarket.cases.load(scenario)
        result = clear(case.replace(periods=3, name="three-periods"), "community")
    fig = price_figure(result)
    ax, _ = _heat_map(fig)
    renderer_of(fig)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    dt = result.scenario.period_hours
    written: dict[tuple[str, int], str] = {}
    for text in ax.texts:
        x, y = text.get_position()
        written[labels[math.floor(y)], math.floor(x / dt)] = text.get_text()
    owner = result.scenario.community_of()
    expected: dict[tuple[str, int], float] = {}
    for kind, node, period, price in zip(
        result.prices["kind"],
        result.prices["node"],
        result.prices["period"],
        result.prices["price_per_kwh"],
        strict=True,
    ):
        if kind == p2pmarket.NodeKind.MANAGER:
            label = f"manager {node}"
        else:
            label = node if owner.get(node) is None else f"{node} ({owner[node]})"
        expected[label, int(period)] = float(price)
    assert set(expected) <= set(written), "a price has no value written in its cell"
    for key, price in expected.items():
        if math.isnan(price):
            assert written[key] == "n/a", key
        else:
            assert float(written[key]) == pytest.approx(price, rel=5e-4, abs=1e-9), key
    missing = set(written) - {key for key, price in expected.items() if not math.isnan(price)}
    assert all(written[key] == "n/a" for key in missing), "a cell without a price is not n/a"


# --- savings colour --------------------------------------------------------------------------


def _bars(ax: Axes, gid: str) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == gid]


def _bills(case: str) -> tuple[pd.DataFrame, ClearingResult]:
    run = p2pmarket.run_market(p2pmarket.cases.load(case))
    return run.settlement.bills, run.result


@pytest.mark.parametrize("case", ["five-peer-case-2", "seventeen-peer-case-1"])
def test_savings_have_a_colour_of_their_own(case: str) -> None:
    bills, result = _bills(case)
    fig = bills_figure(bills, currency=result.scenario.currency)
    renderer_of(fig)
    left, right = fig.axes[:2]
    baseline = {to_rgba(b.get_facecolor()) for b in _bars(left, "cost_baseline")}
    market = {to_rgba(b.get_facecolor()) for b in _bars(left, "cost_market")}
    savings_bars = _bars(right, "savings")
    assert len(baseline) == 1 and len(market) == 1 and savings_bars
    savings = {to_rgba(b.get_facecolor()) for b in savings_bars if b.get_width() > 0}
    assert savings, "the test needs a peer that saves"
    assert not savings & market, "savings are drawn in the colour of 'in the market'"
    assert not savings & baseline, "savings are drawn in the colour of the baseline"
    # The legend names each colour once, and each as drawn.
    (legend,) = fig.legends
    entries = {label: to_rgba(h.get_facecolor()) for label, h in _legend_entries(legend).items()}
    assert entries["in the market"] in market
    assert entries["grid only (baseline)"] in baseline
    assert entries["savings"] in savings
    assert len(set(entries.values())) == len(entries)
