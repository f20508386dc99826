"""Figures of a long horizon (issue 14): a year of hours read at a glance (docs/year-report.md).

A report of a horizon of at least `LONG_DAYS` days (`is_long`) draws these instead of the
figures with a bar, a step or a cell per period, which at 8,760 periods are unreadable and
slow: energy per day, prices as a day x hour-of-day heat map, self-sufficiency and
self-consumption per month, and each peer's savings sorted. Every figure is bounded in size
whatever the number of periods and peers, and built from whole-table operations (no Python
loop over periods or peers).

Time. A scenario holds no calendar (only `periods` and `period_hours`): period t starts
t * period_hours hours after the start of the horizon. Given `start` (a timestamp: the
start of period 0; the generator's period 0 is 1 January 00:00 of its year), days are
calendar days and "months" calendar months; without it, day d covers hours [24 d, 24 d + 24)
of the horizon and a "month" is a block of `BLOCK_DAYS` days (the last one shorter).

Equipment. A peer "has PV" when it has generation capacity (`generation.max_kw` above zero
in some period) and "a battery" when it has storage; nothing else (e.g. a households table)
is needed. Grid peers are left out of every per-peer figure.

Shares (as `p2pmarket.core.kpis`, month by month; energy in kWh over the month): a
community's self-sufficiency is 1 - energy its members buy from outside it / their demand
(load, flexible load and storage charging); its self-consumption is 1 - energy its members
sell outside it / their generation and discharge. Trades are the bilateral ones (seller to
final buyer, community managers traced through, `p2pmarket.core.flows.bilateral_trades`).
"The market" treats every grid peer as the outside. A share is undefined (NaN, a gap in the
line) in a month without demand (or generation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from p2pmarket.core.flows import bilateral_trades
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.errors import P2PMarketError
from p2pmarket.reports.axes import WIDTH, figure_title
from p2pmarket.reports.markets import SAVINGS_COLOUR
from p2pmarket.reports.style import BUY_COLOUR, PALETTE, SELL_COLOUR, bottom_legend, new_figure
from p2pmarket.types import NodeKind

__all__ = [
    "BLOCK_DAYS",
    "EQUIPMENT",
    "LONG_DAYS",
    "YEAR_CAPTIONS",
    "YEAR_FIGURE_STEPS",
    "daily_energy_figure",
    "day_hour_grid",
    "draw_year_figure",
    "equipment_of",
    "is_long",
    "long_horizon_note",
    "market_price",
    "monthly_shares",
    "monthly_shares_figure",
    "price_heatmap_figure",
    "savings_figure",
    "sorted_savings",
    "year_figure_steps",
]

LONG_DAYS = 7
"""A horizon of at least this many days (periods x period_hours >= 24 * LONG_DAYS hours) is
long: its report draws the figures of this module (`is_long`)."""
BLOCK_DAYS = 30
"""A "month" of a horizon without a calendar: this many days."""
MAX_LINES = 8
"""Communities drawn each in its own colour at most; past this, each a thin grey line."""
MAX_LABELS = 40
"""Peers named under the savings bars at most."""
EQUIPMENT = ("PV and battery", "PV", "battery", "neither")
"""The kinds of peer the savings figure tells apart, in this order (module docstring)."""
_EQUIPMENT_COLOURS = {
    "PV and battery": PALETTE[1],  # orange
    "PV": PALETTE[6],  # yellow
    "battery": PALETTE[3],  # reddish purple
    "neither": "#8C8C8C",
}
_HOUR = pd.Timedelta(hours=1)
_EPS = 1e-9


def is_long(scenario: Scenario) -> bool:
    """Whether `scenario`'s horizon lasts at least `LONG_DAYS` days (its report then draws
    this module's figures instead of the figures with a bar or cell per period)."""
    return scenario.periods > 1 and scenario.periods * scenario.period_hours >= 24 * LONG_DAYS


# --- time --------------------------------------------------------------------------------


def _hours_since_day_start(
    scenario: Scenario, start: pd.Timestamp | None
) -> npt.NDArray[np.float64]:
    """The start of each period in hours after midnight of the first day."""
    offset = 0.0
    if start is not None:
        offset = (start - start.normalize()) / _HOUR
    hours: npt.NDArray[np.float64] = (
        np.arange(scenario.periods, dtype=float) * scenario.period_hours + offset
    )
    return hours


def _days(scenario: Scenario, start: pd.Timestamp | None) -> npt.NDArray[np.int64]:
    """The day (0: the first) in which each period starts."""
    return np.floor(_hours_since_day_start(scenario, start) / 24 + _EPS).astype(np.int64)


def _blocks(
    scenario: Scenario, start: pd.Timestamp | None
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """The "month" of each period (0: the first) and each month's label (module docstring)."""
    if start is not None:
        stamps = start + pd.to_timedelta(
            np.arange(scenario.periods) * scenario.period_hours, unit="h"
        )
        index = ((stamps.year - start.year) * 12 + stamps.month - start.month).to_numpy()
        block = index.astype(np.int64)
        first = pd.Series(stamps).groupby(block).first()
        return block, [f"{t:%b %Y}" for t in first]
    days = _days(scenario, None)
    block = days // BLOCK_DAYS
    last_day = int(days[-1])
    labels = [
        f"days {b * BLOCK_DAYS + 1}-{min((b + 1) * BLOCK_DAYS, last_day + 1)}"
        for b in range(int(block[-1]) + 1)
    ]
    return block, labels


def _day_axis(ax: Axes, days: int, start: pd.Timestamp | None) -> None:
    """x in days from the first: month names at their first day with `start`, else days."""
    ax.set_xlim(0, days)
    if start is None:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True, steps=[1, 2, 5, 10]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v + 1:g}"))
        ax.set_xlabel("day of the horizon")
        return
    first = start.normalize()
    months = pd.date_range(first, first + pd.Timedelta(days=days), freq="MS")
    if len(months) < 2:
        ax.set_xlabel(f"days from {first:%d %b %Y}")
        return
    positions = ((months - first) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    ax.set_xticks(positions, [f"{m:%b}" for m in months])
    ax.set_xlabel(f"{first:%Y}" if first.year == months[-1].year else "month")


# --- energy per day ----------------------------------------------------------------------


def daily_energy_figure(result: ClearingResult, *, start: pd.Timestamp | None = None) -> Figure:
    """Energy per day over the horizon, all non-grid peers together.

    Top: demand (load and flexible load, black line) against the peers' own generation
    (green). Middle: energy bought from the grid (upwards, blue) and sold to it (downwards,
    vermillion), i.e. what every grid peer sells and buys. Bottom, with storage: the energy
    all units charge (upwards) and discharge (downwards), against their capacity (dashed:
    one full cycle a day).
    """
    s = result.scenario
    d = result.dispatch
    dt = s.period_hours
    day = _days(s, start)
    days = int(day[-1]) + 1
    per_period = d["period"].to_numpy()
    grid = d["peer"].isin(set(s.grid_ids)).to_numpy()

    def daily(values: npt.ArrayLike, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        energy = np.asarray(values, dtype=float)[mask] * dt
        summed: npt.NDArray[np.float64] = np.bincount(
            day[per_period[mask]], weights=energy, minlength=days
        ).astype(float)
        return summed

    members = ~grid
    demand = daily(d["load_kw"] + d["flexible_load_kw"], members)
    generation = daily(d["generation_kw"], members)
    bought = daily(d["export_kw"], grid)
    sold = daily(d["import_kw"] + d["absorbed_kw"], grid)
    units = [p for p in s.peers if p.storage is not None]
    fig = new_figure(WIDTH, 7.0 if units else 5.2)
    axes = fig.subplots(
        3 if units else 2, 1, sharex=True, height_ratios=[3, 2, 2][: 3 if units else 2]
    )
    top, middle = axes[0], axes[1]
    edges = np.arange(days + 1, dtype=float)
    top.stairs(
        generation,
        edges,
        fill=True,
        color=SAVINGS_COLOUR,
        alpha=0.8,
        label="own generation",
        gid="generation",
    )
    top.stairs(demand, edges, color="black", linewidth=1.4, label="demand (load)", gid="demand")
    top.set_ylabel("energy per day (kWh)")
    top.set_ylim(0, 1.2 * max(float(demand.max()), float(generation.max()), _EPS))
    middle.margins(y=0.22)
    middle.stairs(
        bought, edges, fill=True, color=BUY_COLOUR, label="bought from the grid (up)", gid="bought"
    )
    middle.stairs(
        -sold, edges, fill=True, color=SELL_COLOUR, label="sold to the grid (down)", gid="sold"
    )
    middle.axhline(0, color="black", linewidth=0.6)
    middle.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
    middle.set_ylabel("grid (kWh per day)")
    if units:
        bottom = axes[2]
        ids = set(p.id for p in units)
        capacity = float(sum(p.storage.capacity_kwh for p in units if p.storage is not None))
        held = d["peer"].isin(ids).to_numpy()
        charged = daily(d["charge_kw"], held)
        discharged = daily(d["discharge_kw"], held)
        bottom.stairs(
            charged, edges, fill=True, color="#4D4D4D", label="charged (up)", gid="charged"
        )
        bottom.stairs(
            -discharged,
            edges,
            fill=True,
            color="#AAAAAA",
            label="discharged (down)",
            gid="discharged",
        )
        for level in (capacity, -capacity):
            bottom.axhline(level, color="#333333", linestyle="--", linewidth=1.0)
        bottom.plot(
            [],
            [],
            color="#333333",
            linestyle="--",
            linewidth=1.0,
            label=f"capacity of the {len(units)} units (a full cycle)",
        )
        bottom.axhline(0, color="black", linewidth=0.6)
        bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}"))
        bottom.set_ylim(
            -1.25 * max(capacity, discharged.max()), 1.25 * max(capacity, charged.max())
        )
        bottom.set_ylabel("storage (kWh per day)")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8, ncols=3, framealpha=0.85, edgecolor="none")
        ax.grid(axis="y", color="#E5E5E5", linewidth=0.8)
        ax.set_axisbelow(True)
    _day_axis(axes[-1], days, start)
    figure_title(fig, result, f"Energy per day, all {sum(~np.isin(s.peer_ids, s.grid_ids))} peers")
    return fig


# --- prices ------------------------------------------------------------------------------


def market_price(result: ClearingResult) -> npt.NDArray[np.float64]:
    """The price of each period (currency/kWh): the mean buying price (the dual of the
    balance) of the non-grid peers that have one in that period; NaN where none has."""
    p = result.prices
    grids = set(result.scenario.grid_ids)
    peers = p[(p["kind"] == NodeKind.PEER) & ~p["node"].isin(grids)]
    mean = peers.groupby("period", sort=True)["price_per_kwh"].mean()
    values: npt.NDArray[np.float64] = mean.reindex(range(result.scenario.periods)).to_numpy(
        dtype=float
    )
    return values + 0.0


def day_hour_grid(
    values: npt.ArrayLike, scenario: Scenario, *, start: pd.Timestamp | None = None
) -> npt.NDArray[np.float64]:
    """One value per period laid out as (slot of the day) x day: row r holds the periods
    starting r * period_hours hours after midnight (rows: ceil(24 / period_hours)), column d
    those of day d; NaN where no period starts."""
    v = np.asarray(values, dtype=float)
    hours = _hours_since_day_start(scenario, start)
    day = np.floor(hours / 24 + _EPS).astype(np.int64)
    slot = np.floor((hours - 24 * day) / scenario.period_hours + _EPS).astype(np.int64)
    slots = max(1, math.ceil(24 / scenario.period_hours - _EPS))
    grid = np.full((slots, int(day[-1]) + 1), np.nan)
    grid[slot, day] = v
    return grid


def price_heatmap_figure(
    result: ClearingResult, *, start: pd.Timestamp | None = None, note: str = ""
) -> Figure:
    """The price of every period (`market_price`) as a heat map: one column per day, one row
    per hour of the day (midnight at the top), colour bar in currency/kWh from the 1st to
    the 99th percentile (arrows: prices beyond). `note` goes into the title."""
    s = result.scenario
    grid = day_hour_grid(market_price(result), s, start=start)
    slots, days = grid.shape
    known = grid[~np.isnan(grid)]
    if known.size:
        low, high = (float(v) for v in np.percentile(known, [1, 99]))
    else:
        low, high = 0.0, 1.0
    if high - low < _EPS:
        low, high = low - 0.01, high + 0.01
    below = bool(known.size and known.min() < low - 1e-12)
    above = bool(known.size and known.max() > high + 1e-12)
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}
    fig = new_figure(WIDTH, 4.6)
    ax = fig.subplots()
    hours = np.arange(slots + 1) * s.period_hours
    mesh = ax.pcolormesh(
        np.arange(days + 1),
        np.minimum(hours, 24.0),
        np.ma.masked_invalid(grid),
        cmap=colormaps["cividis"].with_extremes(bad="#E4E4E4"),
        norm=Normalize(low, high),
        shading="flat",
        rasterized=True,
    )
    mesh.set_gid("price-heatmap")
    ax.set_ylim(min(24.0, float(hours[-1])), 0)
    ax.set_yticks(np.arange(0, 25, 6))
    ax.set_ylabel("hour of the day")
    _day_axis(ax, days, start)
    bar = fig.colorbar(mesh, ax=ax, pad=0.01, extend=extend.get((below, above), "neither"))
    bar.set_label(f"price ({s.currency}/kWh)")
    suffix = f", {note}" if note else ""
    figure_title(fig, result, f"Price of each hour: mean buying price of the peers{suffix}")
    return fig


# --- self-sufficiency and self-consumption per month --------------------------------------


def monthly_shares(
    result: ClearingResult,
    *,
    start: pd.Timestamp | None = None,
    trades: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Self-sufficiency and self-consumption of each community and of the market, month by
    month (module docstring). One row per month and community, the market's rows last within
    each month: `month` (0: the first), `label`, `group` (0, 1, ...: the communities in
    scenario order, a peer in none a community of its own; the market last), `community`
    (a community's id, the id of a peer in none, or `market`), `is_market`, `demand_kwh`,
    `generation_kwh`, `bought_outside_kwh`, `sold_outside_kwh`, `self_sufficiency`,
    `self_consumption`.
    `trades`, the bilateral trades of `result` when known (a settlement's), saves tracing
    them again."""
    s = result.scenario
    dt = s.period_hours
    block, labels = _blocks(s, start)
    owner = s.community_of()
    grids = set(s.grid_ids)
    # Each community by a code, in scenario order; a peer in none is a community of its own
    # (a code of its own too, whatever its id: it never merges with a community of that id).
    identity = {
        p: ("community", c) if c is not None else ("alone", p)
        for p, c in owner.items()
        if p not in grids
    }
    code_of = {k: i for i, k in enumerate(dict.fromkeys(identity.values()))}
    names = [name for _, name in code_of]
    peers = pd.Index(list(identity))
    codes = np.array([code_of[k] for k in identity.values()] + [-1], dtype=np.int64)

    def group_of(ids: pd.Series) -> npt.NDArray[np.int64]:
        """The community code of each peer id; -1 for a grid peer (the outside: `get_indexer`
        gives it -1, which picks the last code)."""
        position, distinct = pd.factorize(ids)  # a million ids, a hundred distinct ones
        found: npt.NDArray[np.int64] = codes[peers.get_indexer(pd.Index(distinct))][position]

        return found

    d = result.dispatch
    used = ["period", "peer", "load_kw", "flexible_load_kw", "charge_kw", "generation_kw"]
    members = d.loc[~d["peer"].isin(grids).to_numpy(), [*used, "discharge_kw"]]
    month = block[members["period"].to_numpy()]
    group = group_of(members["peer"])
    demand_kwh = (
        members["load_kw"] + members["flexible_load_kw"] + members["charge_kw"]
    ).to_numpy() * dt
    supply_kwh = (members["generation_kw"] + members["discharge_kw"]).to_numpy() * dt
    t = bilateral_trades(result) if trades is None else trades
    seller, buyer = group_of(t["seller"]), group_of(t["buyer"])
    crossing = (seller != buyer) | (seller < 0) | (buyer < 0)
    t_month = block[t["period"].to_numpy(dtype=np.int64)]
    kwh = t["energy_kwh"].to_numpy(dtype=float)
    # Sums per (month, group) cell, the market a group of its own (its outside: the grid).
    width = len(names) + 1
    cells = len(labels) * width

    def summed(
        where: npt.NDArray[np.int64], at: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        total: npt.NDArray[np.float64] = np.bincount(
            where * width + at, weights=values, minlength=cells
        ).astype(float)
        return total

    market = np.full(len(month), len(names))
    grid_sells = (seller < 0) & (buyer >= 0)
    grid_buys = (buyer < 0) & (seller >= 0)
    into, out_of = crossing & (buyer >= 0), crossing & (seller >= 0)
    every = np.arange(cells)
    out = pd.DataFrame(
        {
            "month": every // width,
            "group": every % width,
            "demand_kwh": summed(month, group, demand_kwh) + summed(month, market, demand_kwh),
            "generation_kwh": summed(month, group, supply_kwh) + summed(month, market, supply_kwh),
            "bought_outside_kwh": summed(t_month[into], buyer[into], kwh[into])
            + summed(
                t_month[grid_sells], np.full(int(grid_sells.sum()), len(names)), kwh[grid_sells]
            ),
            "sold_outside_kwh": summed(t_month[out_of], seller[out_of], kwh[out_of])
            + summed(t_month[grid_buys], np.full(int(grid_buys.sum()), len(names)), kwh[grid_buys]),
        }
    )
    out["is_market"] = out["group"] == len(names)
    out["community"] = np.array([*names, "market"], dtype=object)[out["group"].to_numpy()]
    demand, supply = out["demand_kwh"], out["generation_kwh"]
    # Clipped only against rounding, as the KPIs are (the no-resale rule keeps them in range).
    out["self_sufficiency"] = (
        (1 - out["bought_outside_kwh"] / demand).clip(0, 1).where(demand > _EPS)
    )
    out["self_consumption"] = (1 - out["sold_outside_kwh"] / supply).clip(0, 1).where(supply > _EPS)
    out.insert(1, "label", [labels[m] for m in out["month"]])
    return out.loc[
        :,
        [
            "month",
            "label",
            "group",
            "community",
            "is_market",
            "demand_kwh",
            "generation_kwh",
            "bought_outside_kwh",
            "sold_outside_kwh",
            "self_sufficiency",
            "self_consumption",
        ],
    ]


def monthly_shares_figure(
    result: ClearingResult,
    *,
    start: pd.Timestamp | None = None,
    trades: pd.DataFrame | None = None,
) -> Figure:
    """Self-sufficiency (left) and self-consumption (right) per month (`monthly_shares`):
    the market as a thick black line, each community as a line of its own colour (past
    `MAX_LINES` communities, each a thin grey line). Lines have gids
    `self_sufficiency:market` and `self_sufficiency:community:ID` (and so for consumption)."""
    shares = monthly_shares(result, start=start, trades=trades)
    labels = list(dict.fromkeys(shares["label"]))
    x = np.arange(len(labels))
    fig = new_figure(WIDTH, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    own = shares[~shares["is_market"]].drop_duplicates("group")
    groups, communities = own["group"].tolist(), own["community"].tolist()
    market = int(shares.loc[shares["is_market"], "group"].iloc[0])
    many = len(groups) > MAX_LINES
    for ax, column, words in (
        (axes[0], "self_sufficiency", "Self-sufficiency: demand met from inside"),
        (axes[1], "self_consumption", "Self-consumption: generation used inside"),
    ):
        table = shares.pivot(index="month", columns="group", values=column).reindex(
            range(len(labels))
        )
        if many:
            ax.plot(
                x,
                table[groups].to_numpy(dtype=float),
                color="#AAAAAA",
                linewidth=0.8,
                gid=f"{column}:communities",
            )
            ax.plot(
                [],
                [],
                color="#AAAAAA",
                linewidth=0.8,
                label=f"each of {len(communities)} communities",
            )
        else:
            for i, (group, community) in enumerate(zip(groups, communities, strict=True)):
                ax.plot(
                    x,
                    table[group].to_numpy(dtype=float),
                    marker="o",
                    markersize=4,
                    color=PALETTE[i % len(PALETTE)],
                    linewidth=1.4,
                    label=str(community),
                    gid=f"{column}:community:{community}",
                )
        ax.plot(
            x,
            table[market].to_numpy(dtype=float),
            color="black",
            linewidth=2.4,
            marker="s",
            markersize=4,
            label="the market (outside: the grid)",
            gid=f"{column}:market",
            zorder=1.9,  # under the communities' lines, which may coincide with it
        )
        if len(labels) <= 13:
            for xi, value in zip(x, table[market].to_numpy(dtype=float), strict=True):
                if not math.isnan(value):
                    ax.annotate(
                        f"{100 * value:.0f}%",
                        (xi, value),
                        xytext=(0, 6),
                        textcoords="offset points",
                        ha="center",
                        fontsize=7,
                    )
        ax.set_title(words, fontsize=10)
        ax.set_ylim(0, 1.1)  # room for the market's values above 100 %
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        turn = len(labels) > 6
        ax.set_xticks(
            x,
            labels,
            rotation=45 if turn else 0,
            ha="right" if turn else "center",
            rotation_mode="anchor",
            fontsize=8,
        )
        ax.grid(axis="y", color="#E5E5E5")
        ax.set_axisbelow(True)
    handles, names = axes[0].get_legend_handles_labels()
    bottom_legend(fig, handles, names)
    what = "month" if start is not None else f"block of {BLOCK_DAYS} days"
    figure_title(fig, result, f"Self-sufficiency and self-consumption per {what}")
    return fig


# --- savings per peer --------------------------------------------------------------------


def equipment_of(scenario: Scenario) -> dict[str, str]:
    """Non-grid peer id -> one of `EQUIPMENT`: PV is generation capacity above zero in some
    period, a battery is storage (module docstring)."""
    out: dict[str, str] = {}
    for p in scenario.peers:
        if p.role == "grid":
            continue
        bound = p.generation.max_kw if p.generation is not None else 0.0
        pv = p.generation is not None and float(np.max(np.asarray(bound, dtype=float))) > 0
        battery = p.storage is not None and p.storage.capacity_kwh > 0
        out[p.id] = EQUIPMENT[
            {(True, True): 0, (True, False): 1, (False, True): 2}.get((pv, battery), 3)
        ]
    return out


def sorted_savings(bills: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """The non-grid peers' savings (`bills`' `savings`, currency), largest first (ties in
    scenario order), with each peer's `equipment`: columns `peer`, `savings`, `equipment`."""
    kinds = equipment_of(scenario)
    rows = bills.loc[bills["peer"].astype(str).isin(kinds.keys()), ["peer", "savings"]].copy()
    rows["peer"] = rows["peer"].astype(str)
    rows["savings"] = rows["savings"].astype(float)
    rows["equipment"] = rows["peer"].map(kinds)
    return rows.sort_values("savings", ascending=False, kind="stable", ignore_index=True)


def savings_figure(bills: pd.DataFrame, scenario: Scenario, *, title: str | None = None) -> Figure:
    """Each non-grid peer's savings against its grid-only baseline over the horizon, one bar
    per peer sorted from the largest, coloured by its equipment (PV and battery, PV,
    battery, neither); the legend gives each kind's number of peers and mean savings. Peers
    are named under their bars up to `MAX_LABELS` of them. Bars have gids `savings:KIND`."""
    if "savings" not in bills.columns or "peer" not in bills.columns:
        raise P2PMarketError("savings figure: bills need the columns peer and savings")
    rows = sorted_savings(bills, scenario)
    currency = scenario.currency
    n = len(rows)
    fig = new_figure(WIDTH, 4.8)
    ax = fig.subplots()
    x = np.arange(n)
    handles = []
    for kind in EQUIPMENT:
        mine = (rows["equipment"] == kind).to_numpy()
        if not mine.any():
            continue
        colour = _EQUIPMENT_COLOURS[kind]
        ax.bar(
            x[mine],
            rows["savings"].to_numpy()[mine],
            width=0.8 if n <= 100 else 1.0,
            color=colour,
            edgecolor="white" if n <= 100 else "none",
            linewidth=0.4,
            gid=f"savings:{kind}",
        )
        mean = float(rows.loc[mine, "savings"].mean())
        handles.append(
            Patch(color=colour, label=f"{kind} ({int(mine.sum())}): mean {mean:,.2f} {currency}")
        )
    ax.axhline(0, color="black", linewidth=0.8)
    if n <= MAX_LABELS:
        ax.set_xticks(
            x, rows["peer"].tolist(), rotation=60, ha="right", rotation_mode="anchor", fontsize=8
        )
        ax.set_xlabel("peer, by savings")
    else:
        step = _nice_step(n / 10)
        ranks = [1, *range(step, n + 1, step)]
        ax.set_xticks([r - 1 for r in ranks], [f"{r:,}" for r in ranks])
        ax.set_xlabel(f"rank of the peer by savings (of {n:,})")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel(f"savings against grid only ({currency})")
    ax.grid(axis="y", color="#E5E5E5")
    ax.set_axisbelow(True)
    bottom_legend(fig, handles, ncols=3, title="equipment (PV: generation capacity)")
    total = float(rows["savings"].sum())
    fig.suptitle(
        f"{title or 'Savings of each peer over the horizon'}: {total:,.2f} {currency} in all\n"
        f"{scenario.name}",
        fontsize=12,
    )
    return fig


def _nice_step(size: float) -> int:
    """The whole number of the form 1, 2 or 5 x 10^k nearest above `size` (at least 1)."""
    if size <= 1:
        return 1
    power = 10 ** math.floor(math.log10(size))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= size))


# --- the figures of a long report ----------------------------------------------------------

YEAR_FIGURE_STEPS = {
    "daily-energy": "drawing the energy per day",
    "price-heatmap": "drawing the prices of each hour",
    "monthly-shares": "drawing self-sufficiency per month",
    "savings": "drawing the savings of each peer",
}
"""Figure name -> what a report's `on_step` is told before it is drawn."""
YEAR_CAPTIONS = {
    "daily-energy": (
        "Energy per day, every peer but the grid together: their demand against their own "
        "generation; what they buy from the grid and sell to it; with storage, what all "
        "units charge and discharge."
    ),
    "price-heatmap": (
        "Price of every period: the mean buying price (the dual of the balance) of the peers "
        "that are not the grid, one column per day and one row per hour of the day."
    ),
    "monthly-shares": (
        "Self-sufficiency (the share of the members' demand, storage charging included, met "
        "from inside their community) and self-consumption (the share of their generation "
        "and discharge used inside it) per {month}, for each community and for the market "
        "(whose outside is the grid)."
    ),
    "savings": (
        "Each peer's savings against trading with the grid alone over the horizon, largest "
        "first, coloured by what it has: PV (generation capacity), a battery (storage), both "
        "or neither."
    ),
}
"""Figure name -> its caption in a report (`{month}`: what a month is)."""


def long_horizon_note(scenario: Scenario) -> str:
    """What a report says of a long horizon's figures."""
    days = scenario.periods * scenario.period_hours / 24
    return (
        f"A horizon of {days:,.4g} days (at least {LONG_DAYS}) is drawn by day and by month: "
        "the figures with a bar or a cell per period (imports and exports per peer, state of "
        "charge, price per peer) are left out; the tables hold every period."
    )


def year_figure_steps(bills: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """(name, description) of each figure of this module a long report draws: savings only
    with `bills`."""
    names = ["daily-energy", "price-heatmap", "monthly-shares"]
    if bills is not None:
        names.append("savings")
    return [(name, YEAR_FIGURE_STEPS[name]) for name in names]


def draw_year_figure(
    name: str,
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    priced: ClearingResult | None = None,
    start: pd.Timestamp | None = None,
    notes: Mapping[str, str] | None = None,
) -> Figure:
    """The figure `name` of `YEAR_FIGURE_STEPS`. `priced`: the clearing whose prices to draw
    (the bills' prices, when they are not `result`'s own); `notes`: words for a title."""
    if name == "daily-energy":
        return daily_energy_figure(result, start=start)
    if name == "price-heatmap":
        return price_heatmap_figure(priced or result, start=start, note=(notes or {}).get(name, ""))
    if name == "monthly-shares":
        return monthly_shares_figure(result, start=start)
    if name == "savings" and bills is not None:
        return savings_figure(bills, result.scenario)
    raise P2PMarketError(f"no year figure {name!r} (or it needs bills)")
