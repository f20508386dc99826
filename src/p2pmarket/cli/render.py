"""Rich tables for the terminal: what a person reads after a run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
from rich.console import RenderableType
from rich.table import Table

from p2pmarket.core.results import ClearingResult
from p2pmarket.paper import PaperCheck

__all__ = ["design_table", "paper_table", "run_tables"]

MAX_TRADE_ROWS = 20


def run_tables(result: ClearingResult) -> Sequence[RenderableType]:
    """Headline, per-peer totals over the horizon, and the largest trades."""
    s = result.scenario
    hours = s.period_hours
    head = (
        f"[bold]{s.name}[/bold]: {result.status.value}, design {result.design}, "
        f"objective ({result.objective_kind}) {result.objective:,.4f} {s.currency}; "
        f"{len(s.peers)} peers x {s.periods} periods; {result.n_variables} variables, "
        f"{result.n_constraints} constraints; build {result.timings.build_seconds:.2f} s, "
        f"solve {result.timings.solve_seconds:.2f} s"
    )
    d = result.dispatch
    energy = (
        d.groupby("peer", sort=False)[
            ["generation_kw", "load_kw", "flexible_load_kw", "import_kw", "export_kw"]
        ].sum()
        * hours
    )
    mean_price = d.groupby("peer", sort=False)["price_per_kwh"].mean()
    roles = d.groupby("peer", sort=False)["role"].agg(lambda r: "/".join(sorted(set(r))))
    peers = Table(title=f"Per peer over the horizon (kWh; price in {s.currency}/kWh)")
    for column in ("peer", "role", "generation", "load", "flexible", "import", "export", "price"):
        peers.add_column(column, justify="left" if column in ("peer", "role") else "right")
    for peer in energy.index:
        peers.add_row(
            str(peer),
            str(roles.loc[peer]),
            *(f"{v:,.2f}" for v in energy.loc[peer].to_numpy()),
            f"{float(mean_price.loc[peer]):.4f}",
        )
    trades = Table(title=_trade_title(result))
    for column in ("period", "seller", "buyer", "route", "energy kWh", "fee/kWh"):
        trades.add_column(column, justify="right" if column[0] in "ef" else "left")
    top = result.trades.sort_values("energy_kwh", ascending=False).head(MAX_TRADE_ROWS)
    for _, t in top.sort_values(["period", "seller", "buyer"]).iterrows():
        trades.add_row(
            str(t["period"]),
            str(t["seller"]),
            str(t["buyer"]),
            str(t["route"]),
            f"{t['energy_kwh']:,.2f}",
            f"{t['fee_per_kwh']:.5f}",
        )
    return [head, peers, trades]


def _trade_title(result: ClearingResult) -> str:
    n = len(result.trades)
    shown = f"the {MAX_TRADE_ROWS} largest of {n}" if n > MAX_TRADE_ROWS else f"all {n}"
    return f"Trades ({shown})"


def paper_table(checks: Iterable[PaperCheck]) -> Table:
    """One row per published figure; notes are numbered and printed under the table."""
    table = Table(title="Moreno et al. 2021: the paper's figures beside ours")
    for column in ("case", "quantity", "paper", "ours", "deviation", "note"):
        table.add_column(
            column, justify="right" if column in ("paper", "ours", "deviation") else "left"
        )
    notes: list[str] = []
    for c in checks:
        mark = "[green]=[/green]" if c.matches else f"[yellow]{c.deviation:+.6g}[/yellow]"
        ref = ""
        if c.note:
            if c.note not in notes:
                notes.append(c.note)
            ref = f"[{notes.index(c.note) + 1}]"
        table.add_row(c.case, c.quantity, f"{c.paper:.6g}", f"{c.ours:.6g}", mark, ref)
    table.caption = "\n".join(f"[{i}] {note}" for i, note in enumerate(notes, start=1))
    table.caption_justify = "left"
    return table


def design_table(designs: pd.DataFrame) -> Table:
    table = Table(title="Each case under the three market designs (objective in $)")
    for column in ("case", "design", "paper objective", "system-cost objective", "traded kWh"):
        table.add_column(column, justify="left" if column in ("case", "design") else "right")
    for _, row in designs.iterrows():
        table.add_row(
            str(row["case"]),
            str(row["design"]),
            f"{row['paper']:.6g}",
            f"{row['system-cost']:.6g}",
            f"{row['traded_kwh']:.6g}",
        )
    return table
