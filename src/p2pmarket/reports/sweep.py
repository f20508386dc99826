"""The report of a sweep (issue 14; docs/sweeps.md): KPIs against each swept parameter, and a
self-contained HTML page of the variants, the failed ones with their errors, and the figures.

It reads nothing but the sweep's table (`p2pmarket.app.sweep`, `TABLE_COLUMNS`), as
`p2pmarket sweep --out DIR` writes it to `DIR/sweep.csv`. The swept parameters are the
columns between `variant` and `status` that take more than one value (blanks aside);
`design` is drawn as one series per design rather than along an axis, unless it is the only
one swept.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from p2pmarket.errors import P2PMarketError
from p2pmarket.io.atomic import write_bytes_atomic, write_text_atomic
from p2pmarket.reports.html import (
    FULL_ROWS,
    REPORT_NAME,
    Column,
    figure_html,
    format_value,
    page_html,
    rows_table,
)
from p2pmarket.reports.labels import format_share
from p2pmarket.reports.style import PALETTE, bottom_legend, new_figure

__all__ = [
    "KPIS",
    "SWEEP_FIGURE",
    "kpi_figure",
    "sweep_report_html",
    "swept_parameters",
    "write_sweep_report",
]

KPIS = {
    "savings_total": "total savings against grid only",
    "self_sufficiency": "self-sufficiency of the market",
}
"""The KPIs a sweep figure draws (those with a value in some variant), and their words."""
SWEEP_FIGURE = "sweep-kpis.png"
"""The figure's file beside the report."""
_AXIS_WORDS = {"savings_total": "total savings", "self_sufficiency": "self-sufficiency"}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_REQUIRED = ("variant", "status", "error")


def swept_parameters(table: pd.DataFrame) -> list[str]:
    """The table's swept parameters (module docstring), in the order of the grid."""
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise P2PMarketError(
            f"sweep table: no column {', '.join(map(repr, missing))} (is it a sweep's table?)"
        )
    columns = list(table.columns)
    between = columns[columns.index("variant") + 1 : columns.index("status")]
    # An unswept `design`, `objective_kind` or `rule` is blank in failed rows: not a value.
    return [c for c in between if table[c].nunique(dropna=True) > 1]


def _axes_parameters(table: pd.DataFrame) -> tuple[list[str], bool]:
    """The parameters along an x axis, and whether designs are series."""
    swept = swept_parameters(table)
    by_design = "design" in table.columns and "design" in swept
    along = [p for p in swept if p != "design"]
    if not along:
        return (["design"] if by_design else []), False
    return along, by_design


def kpi_figure(table: pd.DataFrame, *, currency: str | None = None) -> Figure:
    """Each KPI of `KPIS` (a row of panels) against each swept parameter (a column): one
    series per design, a line through the mean over the variants that share the value (and
    the design) with each variant a small dot. A numeric parameter is a numeric axis, any
    other one category per value. Failed variants are left out. Lines have gids
    `KPI:PARAMETER:DESIGN`."""
    ok = table[table["status"] == "ok"]
    kpis = [k for k in KPIS if k in ok.columns and ok[k].notna().any()]
    along, by_design = _axes_parameters(table)
    if currency is None and "currency" in ok.columns and ok["currency"].notna().any():
        currency = str(ok["currency"].dropna().iloc[0])
    if not kpis or not along or ok.empty:
        fig = new_figure(7.0, 2.5)
        ax = fig.subplots()
        ax.set_axis_off()
        why = "no variant succeeded" if ok.empty else "nothing swept with a KPI to show"
        ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=12)
        return fig
    designs = list(dict.fromkeys(ok["design"])) if by_design else [None]
    fig = new_figure(max(6.0, 4.6 * len(along)), 1.2 + 3.2 * len(kpis))
    axes = fig.subplots(len(kpis), len(along), squeeze=False)
    for row, kpi in enumerate(kpis):
        for col, parameter in enumerate(along):
            ax = axes[row][col]
            values = list(dict.fromkeys(table[parameter]))
            numeric = pd.api.types.is_numeric_dtype(table[parameter])
            if numeric:
                values = sorted(values)
            position = {v: (float(v) if numeric else float(i)) for i, v in enumerate(values)}
            for i, design in enumerate(designs):
                mine = ok if design is None else ok[ok["design"] == design]
                x = mine[parameter].map(position).to_numpy(dtype=float)
                y = mine[kpi].to_numpy(dtype=float)
                colour = PALETTE[i % len(PALETTE)]
                ax.scatter(x, y, s=12, color=colour, alpha=0.5, linewidths=0)
                mean = pd.Series(y).groupby(x).mean()
                ax.plot(
                    mean.index.to_numpy(),
                    mean.to_numpy(),
                    color=colour,
                    marker=_MARKERS[i % len(_MARKERS)],
                    linewidth=1.6,
                    label="all variants" if design is None else f"design {design}",
                    gid=f"{kpi}:{parameter}:{design or 'all'}",
                )
            if not numeric:
                ax.set_xticks([position[v] for v in values], [str(v) for v in values])
                ax.set_xlim(-0.5, len(values) - 0.5)
            ax.set_xlabel(parameter)
            if kpi == "self_sufficiency":
                ax.set_ylim(0, 1.02)
                ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f} %")
            if col == 0:
                unit = "" if kpi == "self_sufficiency" else f" ({currency or 'currency'})"
                ax.set_ylabel(f"{_AXIS_WORDS[kpi]}{unit}")
            ax.grid(color="#E5E5E5")
            ax.set_axisbelow(True)
    handles, names = axes[0][0].get_legend_handles_labels()
    if by_design:
        bottom_legend(fig, handles, names)
    words = " and ".join(KPIS[k] for k in kpis)
    fig.suptitle(
        f"Sweep: {words}\nlines: mean over the other swept parameters; dots: each variant",
        fontsize=11,
    )
    return fig


def _columns(table: pd.DataFrame) -> list[Column]:
    """The columns of the variants' table: the parameters, the status and the main KPIs."""
    columns = [Column("variant", "variant")]
    for name in swept_parameters(table):
        numeric = pd.api.types.is_numeric_dtype(table[name])
        columns.append(Column(name, name, format_value, numeric))
    shown = [
        ("status", "status", format_value, False),
        ("objective", "objective", _decimals(2), True),
        ("savings_total", "total savings", _decimals(2), True),
        ("self_sufficiency", "self-sufficiency", _share, True),
        ("self_consumption", "self-consumption", _share, True),
        ("traded_total_kwh", "traded (kWh)", _decimals(1), True),
        ("run_time_s", "run time (s)", _decimals(1), True),
    ]
    return columns + [Column(*c) for c in shown if c[0] in table.columns]


def _decimals(digits: int) -> Callable[[object], str]:
    def write(value: object) -> str:
        number = _number(value)
        return "" if number is None else f"{number:,.{digits}f}"

    return write


def _share(value: object) -> str:
    number = _number(value)
    return "" if number is None else format_share(number)


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def sweep_report_html(
    table: pd.DataFrame, *, title: str = "Sweep", figure: bytes | None = None
) -> str:
    """The report of a sweep's table as a self-contained HTML page: counts, what was swept,
    the figure (`kpi_figure` rendered as PNG, drawn here unless given), every variant, and
    the failed ones with their errors."""
    from p2pmarket.reports.style import figure_png

    swept = swept_parameters(table)
    failed = table[table["status"] != "ok"]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<p class='lead'>"
        + html.escape(
            f"{len(table):,} variants: {len(table) - len(failed):,} ok, {len(failed):,} failed."
        )
        + "</p>",
        '<nav><a href="#swept">Swept</a><a href="#figures">Figures</a>'
        '<a href="#variants">Variants</a><a href="#failed">Failed</a></nav>',
        '<h2 id="swept">Swept parameters</h2>',
    ]
    grid = pd.DataFrame(
        {
            "parameter": swept,
            "values": [", ".join(format_value(v) for v in dict.fromkeys(table[p])) for p in swept],
        }
    )
    parts.append(rows_table(grid, [Column("parameter", "parameter"), Column("values", "values")]))
    parts.append('<h2 id="figures">Figures</h2>')
    png = figure if figure is not None else figure_png(kpi_figure(table))
    parts.append(
        figure_html(
            "sweep-kpis",
            png,
            "Each KPI against each swept parameter, one series per design: the line joins the "
            "mean over the variants that share the value (the other parameters vary), each "
            "dot is one variant. Failed variants are left out.",
        )
    )
    parts.append(f'<h2 id="variants">Variants ({len(table):,})</h2>')
    shown = table.head(FULL_ROWS)
    if len(table) > FULL_ROWS:
        parts.append(
            f"<p class='note'>The first {FULL_ROWS:,} of {len(table):,} variants; every one is "
            "in sweep.csv and sweep.parquet.</p>"
        )
    parts.append(rows_table(shown, _columns(table), scroll=len(shown) > 25))
    parts.append(f'<h2 id="failed">Failed variants ({len(failed):,})</h2>')
    failed_columns = [
        Column("variant", "variant"),
        *(Column(p, p) for p in swept),
        Column("error", "error"),
    ]
    parts.append(rows_table(failed.head(FULL_ROWS), failed_columns, scroll=len(failed) > 25))
    return page_html(title, parts)


def write_sweep_report(
    table: pd.DataFrame, out_dir: Path, *, title: str | None = None
) -> list[Path]:
    """Write `out_dir/report.html` and its figure `out_dir/sweep-kpis.png` (also embedded in
    the page) for a sweep's table; the paths written."""
    from p2pmarket.reports.style import figure_png

    out_dir = Path(out_dir)
    fig = kpi_figure(table)
    png = figure_png(fig)
    fig.clear()
    name = title or f"Sweep of {', '.join(swept_parameters(table)) or 'nothing'}"
    figure_path = out_dir / SWEEP_FIGURE
    write_bytes_atomic(figure_path, png)
    page = out_dir / REPORT_NAME
    write_text_atomic(page, sweep_report_html(table, title=name, figure=png))
    return [page, figure_path]
