"""Shared pieces of the figures over a horizon: time axes, titles, legends, steps."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from p2pmarket.core.results import ClearingResult

__all__ = [
    "EPS",
    "WIDTH",
    "figure_title",
    "one_period",
    "period_edges",
    "pivot",
    "reversed_legend",
    "steps",
    "time_axis",
]

EPS = 1e-6
WIDTH = 10.0


def pivot(result: ClearingResult, column: str) -> pd.DataFrame:
    """Period x peer table of one dispatch column, peers in scenario order."""
    table = result.dispatch.pivot(index="period", columns="peer", values=column)
    return table.reindex(columns=list(result.scenario.peer_ids)).fillna(0.0)


def period_edges(result: ClearingResult) -> npt.NDArray[np.float64]:
    """Period boundaries in hours: n + 1 values."""
    s = result.scenario
    return np.arange(s.periods + 1, dtype=float) * s.period_hours


def steps(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Values per period, the last repeated, to draw as steps over `period_edges` (where='post')."""
    v = np.asarray(values, dtype=float)
    return np.append(v, v[-1])


def time_axis(ax: Axes, result: ClearingResult, ticks: int = 12) -> None:
    edges = period_edges(result)
    ax.set_xlim(edges[0], edges[-1])
    ax.xaxis.set_major_locator(MaxNLocator(nbins=ticks, integer=True, steps=[1, 2, 3, 6, 10]))
    ax.set_xlabel("time (h)")
    ax.grid(axis="y", color="#E5E5E5", linewidth=0.8)
    ax.set_axisbelow(True)


def one_period(result: ClearingResult) -> str:
    return f"(one period of {result.scenario.period_hours:g} h)"


def figure_title(fig: Figure, result: ClearingResult, what: str) -> None:
    fig.suptitle(f"{what}\n{result.scenario.name}, {result.design} design", fontsize=12)


def reversed_legend(fig: Figure, ax: Axes, title: str) -> None:
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
