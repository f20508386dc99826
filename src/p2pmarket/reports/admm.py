"""What a decentralised (ADMM) run writes besides its market tables (SPEC C9, docs/admm.md).

- `history_table`: the residual history, one row per iteration, with the cost gap to the
  central optimum when it is known and the trades agreed so far.
- `admm_summary`: iterations, messages and bytes, what was not agreed, the leftover
  settled with the grid (`admm.json`).
- `convergence_figure`: primal and dual residuals, cost gap and the largest copy gap
  against iterations, on log axes.
- `write_admm_outputs`: `admm.json`, `admm_history.csv`, `admm_not_agreed.csv`,
  `admm_imbalance.csv` and, with `figure`, `admm_convergence.png`.
- `admm_report_parts`: the report's section (figure, summary, what was not agreed and the
  leftover) for `p2pmarket.reports.html`.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.solve.admm import AdmmReport
from p2pmarket.io.atomic import write_bytes_atomic, write_text_atomic
from p2pmarket.reports.style import bottom_legend, figure_png, new_figure

__all__ = [
    "ADMM_FIGURE",
    "ADMM_HISTORY",
    "ADMM_IMBALANCE",
    "ADMM_NOT_AGREED",
    "ADMM_SUMMARY",
    "admm_report_parts",
    "admm_summary",
    "convergence_figure",
    "history_table",
    "write_admm_outputs",
]

ADMM_SUMMARY = "admm.json"
ADMM_HISTORY = "admm_history.csv"
ADMM_NOT_AGREED = "admm_not_agreed.csv"
ADMM_IMBALANCE = "admm_imbalance.csv"
ADMM_FIGURE = "admm_convergence.png"
_DPI = 110


def _trades(result: ClearingResult, report: AdmmReport) -> int:
    """Trades negotiated: one per link and period."""
    return int(report.rho_final.size * result.scenario.periods)


def history_table(
    result: ClearingResult, report: AdmmReport, central_objective: float | None
) -> pd.DataFrame:
    """One row per iteration: `primal_residual`, `dual_residual` (in units of the stopping
    tolerances: 1 is the stopping level), `cost` (the agents' total, the scenario's
    currency), `cost_gap` (relative to `central_objective`; empty without it),
    `agreed`/`not_agreed` (trades), `max_gap_kwh` (the largest copy gap of a trade), and
    the links' penalties `rho_min`, `rho_geomean`, `rho_max`."""
    h = report.history
    cost = h["cost"].to_numpy(dtype=float)
    if central_objective is None:
        gap = np.full(cost.size, np.nan)
    else:
        gap = np.abs(cost - central_objective) / max(abs(central_objective), 1e-12)
    trades = _trades(result, report)
    return pd.DataFrame(
        {
            "iteration": h["iteration"].to_numpy(),
            "primal_residual": h["primal_residual"].to_numpy(),
            "dual_residual": h["dual_residual"].to_numpy(),
            "cost": cost,
            "cost_gap": gap,
            "agreed": trades - h["not_agreed"].to_numpy(),
            "not_agreed": h["not_agreed"].to_numpy(),
            "max_gap_kwh": h["max_gap_kwh"].to_numpy(),
            "rho_min": h["rho_min"].to_numpy(),
            "rho_geomean": h["rho_geomean"].to_numpy(),
            "rho_max": h["rho_max"].to_numpy(),
        }
    )


def admm_summary(
    result: ClearingResult, report: AdmmReport, central_objective: float | None
) -> dict[str, Any]:
    """What `admm.json` holds (docs/admm.md, "Outputs")."""
    trades = _trades(result, report)
    imbalance = report.imbalance
    rho = report.rho_final
    gap = None
    if central_objective is not None:
        gap = abs(result.objective - central_objective) / max(abs(central_objective), 1e-12)
    return {
        "method": "admm",
        "runner": report.runner,
        "converged": report.converged,
        "termination": result.termination,
        "iterations": report.iterations,
        "max_iterations": report.options.max_iterations,
        "trades": trades,
        "agreed_trades": trades - len(report.not_agreed),
        "not_agreed_trades": len(report.not_agreed),
        "messages": report.messages,
        "message_bytes": report.message_bytes,
        "control_messages": report.control_messages,
        "control_bytes": report.control_bytes,
        "objective": result.objective,
        "central_objective": central_objective,
        "objective_gap": gap,
        "imbalance_kwh": report.imbalance_kwh,
        "with_grid_kwh": float(imbalance["with_grid_kwh"].abs().sum()),
        "curtailed_kwh": float(imbalance["curtailed_kwh"].abs().sum()),
        "unsettled_kwh": report.unsettled_kwh,
        "rho_final": {
            "min": float(rho.min()) if rho.size else None,
            "geomean": float(np.exp(np.log(rho).mean())) if rho.size else None,
            "max": float(rho.max()) if rho.size else None,
        },
        "newton_steps": report.newton_steps,
        "options": dataclasses.asdict(report.options),
    }


def _positive(values: pd.Series) -> np.ndarray:
    """Values for a log axis: zeros and gaps left out of the line."""
    v = values.to_numpy(dtype=float)
    return np.where(v > 0, v, np.nan)


def convergence_figure(history: pd.DataFrame, title: str, options: Any) -> Figure:
    """Three panels against iterations, log y axes: the residuals (1 = the stopping level),
    the cost gap to the central optimum, and the largest copy gap with the trades not yet
    agreed (right axis). `history`: `history_table`; `options`: the run's `AdmmOptions`."""
    fig = new_figure(9.0, 8.0)
    axes = fig.subplots(3, 1, sharex=True)
    it = history["iteration"].to_numpy()
    ax = axes[0]
    ax.plot(it, _positive(history["primal_residual"]), color="#1f77b4", label="primal residual")
    ax.plot(it, _positive(history["dual_residual"]), color="#ff7f0e", label="dual residual")
    ax.axhline(1.0, color="0.35", ls="--", lw=1, label="tolerance (1 = stopping level)")
    _log_axis(ax, "residual\n(× tolerance)")
    ax = axes[1]
    gap = history["cost_gap"]
    if gap.notna().any():
        ax.plot(it, _positive(gap), color="#2ca02c", label="cost gap to the central optimum")
        ax.axhline(1e-4, color="#2ca02c", ls=":", lw=1, label="1e-4 cost gap")
        _log_axis(ax, "|cost − central|\n/ |central|")
    else:
        ax.text(0.5, 0.5, "no central optimum to compare with", ha="center",
                va="center", transform=ax.transAxes)  # fmt: skip
        ax.set_yticks([])
    ax = axes[2]
    ax.plot(it, _positive(history["max_gap_kwh"]), color="#d62728",
            label="largest copy gap of a trade")  # fmt: skip
    ax.axhline(options.energy_tolerance_kwh, color="#d62728", ls=":", lw=1,
               label=f"{options.energy_tolerance_kwh * 1000:g} Wh per trade")  # fmt: skip
    _log_axis(ax, "copy gap (kWh)")
    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right = ax.twinx()
    right.plot(it, history["not_agreed"].to_numpy(), color="0.45", lw=1, drawstyle="steps-post",
               label="trades not agreed (right axis)")  # fmt: skip
    right.set_ylabel("trades not agreed", fontsize=9)
    right.set_ylim(bottom=0)
    right.tick_params(labelsize=8)
    axes[0].set_title(title, fontsize=10)
    handles = [h for a in (*axes, right) for h in a.get_legend_handles_labels()[0]]
    bottom_legend(fig, handles, ncols=3)
    return fig


def _log_axis(ax: Axes, label: str) -> None:
    ax.set_yscale("log")
    ax.set_ylabel(label, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", alpha=0.3)


def _title(result: ClearingResult, report: AdmmReport) -> str:
    s = result.scenario
    how = "every trade agreed" if report.converged else "stopped at the iteration cap"
    return (
        f"ADMM convergence — {s.name}, {result.design}, {s.periods} period"
        f"{'s' if s.periods != 1 else ''}: {report.iterations:,} iterations, {how}"
    )


def write_admm_outputs(
    result: ClearingResult,
    report: AdmmReport,
    out: Path,
    *,
    central_objective: float | None,
    figure: bool,
) -> list[Path]:
    """`admm.json`, `admm_history.csv`, `admm_not_agreed.csv`, `admm_imbalance.csv` in
    `out`, and with `figure` `admm_convergence.png`. The history keeps 6 significant digits
    (its residuals and gaps span decades) rather than the tables' 6 decimals."""
    history = history_table(result, report, central_objective)
    summary = admm_summary(result, report, central_objective)
    written = []
    write_text_atomic(out / ADMM_SUMMARY, json.dumps(_finite(summary), indent=2) + "\n")
    written.append(out / ADMM_SUMMARY)
    for name, frame in (
        (ADMM_HISTORY, history),
        (ADMM_NOT_AGREED, report.not_agreed),
        (ADMM_IMBALANCE, report.imbalance),
    ):
        write_text_atomic(out / name, frame.to_csv(index=False, float_format="%.6g"))
        written.append(out / name)
    if figure:
        fig = convergence_figure(history, _title(result, report), report.options)
        write_bytes_atomic(out / ADMM_FIGURE, figure_png(fig, dpi=_DPI))
        fig.clear()
        written.append(out / ADMM_FIGURE)
    return written


def _finite(value: Any) -> Any:
    """JSON without NaN or infinity (written as null)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def admm_report_parts(
    result: ClearingResult, report: AdmmReport, central_objective: float | None
) -> list[str]:
    """The report's ADMM section: what the negotiation cost, the convergence figure, what
    was not agreed and the leftover settled with the grid (HTML, escaped)."""
    from p2pmarket.reports.html import Column, figure_html, rows_table

    s = summary = admm_summary(result, report, central_objective)
    history = history_table(result, report, central_objective)
    currency = result.scenario.currency
    parts = ['<h2 id="admm">Decentralised clearing (ADMM)</h2>']
    outcome = (
        f"every one of its {s['trades']:,} trades agreed after {s['iterations']:,} iterations"
        if s["converged"]
        else f"{s['not_agreed_trades']:,} of {s['trades']:,} trades not agreed at the cap of "
        f"{s['max_iterations']:,} iterations"
    )
    gap = (
        f" The objective is {result.objective:,.6g} {currency}, "
        f"{summary['objective_gap']:.2e} relative from central clearing's "
        f"{central_objective:,.6g}."
        if central_objective is not None
        else ""
    )
    parts.append(
        "<p>"
        + html.escape(
            f"Each agent solved its own problem; only trade quantities travelled. The market "
            f"was negotiated ({report.runner}) with {outcome}: {s['messages']:,} messages "
            f"({s['message_bytes']:,} bytes) between neighbours, and {s['control_messages']:,}"
            f" ({s['control_bytes']:,} bytes) to and from the stopping monitor.{gap} "
            f"Leftover settled with the grid: {s['with_grid_kwh']:.4g} kWh "
            f"({s['curtailed_kwh']:.4g} kWh curtailed by the peers themselves, "
            f"{s['unsettled_kwh']:.4g} kWh nobody could take)."
        )
        + "</p>"
    )
    fig = convergence_figure(history, _title(result, report), report.options)
    caption = (
        "Primal and dual residuals (in units of the stopping tolerances), the cost gap to the "
        "central optimum and the largest gap between a trade's two copies, per iteration."
    )
    parts.append(figure_html("admm-convergence", figure_png(fig, dpi=_DPI), caption))
    fig.clear()
    if len(report.not_agreed):
        parts.append(f"<h3>Trades not agreed ({len(report.not_agreed):,})</h3>")
        columns = [
            Column("period", "period", numeric=True),
            Column("seller", "seller"),
            Column("buyer", "buyer"),
            Column("gap_kwh", "gap (kWh)", numeric=True),
            Column("price_per_kwh", f"price ({currency}/kWh)", numeric=True),
        ]
        parts.append(rows_table(report.not_agreed.head(50), columns, scroll=True))
    if len(report.imbalance):
        parts.append(f"<h3>Leftover settled with the grid ({len(report.imbalance):,} rows)</h3>")
        columns = [
            Column("period", "period", numeric=True),
            Column("node", "node"),
            Column("kind", "kind"),
            Column("shortfall_kwh", "short (kWh, < 0 surplus)", numeric=True),
            Column("curtailed_kwh", "curtailed (kWh)", numeric=True),
            Column("with_grid_kwh", "with the grid (kWh)", numeric=True),
        ]
        parts.append(rows_table(report.imbalance.head(50), columns, scroll=True))
    return parts
