"""Rich tables for the terminal: what a person reads after a run."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd
from rich.console import RenderableType
from rich.table import Table

from p2pmarket.app.compare import Comparison
from p2pmarket.app.paper import PaperCheck
from p2pmarket.core.analysis import storage_summary
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.settlement import Settlement

__all__ = [
    "bills_table",
    "comparison_tables",
    "design_table",
    "paper_table",
    "role_table",
    "run_tables",
    "storage_table",
]

MAX_TRADE_ROWS = 20


def run_tables(result: ClearingResult) -> Sequence[RenderableType]:
    """Headline, per-peer totals over the horizon, and the largest trades."""
    s = result.scenario
    hours = s.period_hours
    head = (
        f"[bold]{s.name}[/bold]: {result.status.value}, design {result.design}, "
        f"objective ({result.objective_kind}) {result.objective:,.4f} {s.currency}; "
        f"{len(s.peers)} peers x {s.periods} periods; {result.model} model, periods solved "
        f"{result.periods_solved}; {result.n_variables} variables, "
        f"{result.n_constraints} constraints; build {result.timings.build_seconds:.2f} s, "
        f"solve {result.timings.solve_seconds:.2f} s (HiGHS {result.timings.solver_seconds:.2f} s)"
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
            _price(float(mean_price.loc[peer])),
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
    out: list[RenderableType] = [head, peers, trades]
    storage = storage_summary(result)
    if len(storage):
        out.append(storage_table(storage, "Storage over the horizon"))
    return out


def _trade_title(result: ClearingResult) -> str:
    n = len(result.trades)
    shown = f"the {MAX_TRADE_ROWS} largest of {n}" if n > MAX_TRADE_ROWS else f"all {n}"
    return f"Trades ({shown})"


def bills_table(settlement: Settlement) -> Table:
    """Each peer's cost in the market against the no-trading baseline."""
    c = settlement.currency
    table = Table(
        title=f"Bills ({settlement.rule} pricing, {c}; fees to {settlement.fee_collector}; "
        f"cost = generation + paid - received; 'grid only' = trading with the grid alone)",
        caption=" ".join(
            note
            for note in (
                settlement.baseline_note,
                f"Prices from the {settlement.cleared_with} clearing.",
            )
            if note
        ),
    )
    for label in (
        "peer",
        "bought kWh",
        "sold kWh",
        "paid",
        "received",
        "cost",
        "grid only",
        "saves",
    ):
        table.add_column(label, justify="left" if label == "peer" else "right")
    for row in settlement.bills.to_dict("records"):
        paid = row["paid_energy"] + row["paid_fees"]
        received = row["received_energy"] + row["received_fees"]
        values = (row["bought_kwh"], row["sold_kwh"], paid, received)
        table.add_row(
            str(row["peer"]),
            *(f"{v:,.2f}" for v in values),
            *(f"{row[k]:,.3f}" for k in ("cost_market", "cost_baseline", "savings")),
        )
    return table


def comparison_tables(comparison: Comparison) -> Sequence[RenderableType]:
    """Markets side by side, then each peer's savings in each market."""
    t = comparison.table
    markets = Table(title="Markets side by side")
    columns = {
        "scenario": "scenario",
        "design": "design",
        "rule": "rule",
        "objective": "objective",
        "total_cost": "total cost",
        "traded_total_kwh": "traded kWh",
        "traded_inside_kwh": "inside",
        "traded_between_kwh": "between",
        "traded_with_grid_kwh": "with grid",
        "self_sufficiency": "self-suff.",
        "savings_total": "savings",
        "savings_jain_index": "Jain",
        "savings_gini": "Gini",
    }
    for label in columns.values():
        markets.add_column(
            label, justify="left" if label in ("scenario", "design", "rule") else "right"
        )
    for row in t.to_dict("records"):
        markets.add_row(*(_cell(row[k]) for k in columns))
    b = comparison.bills
    b = b.assign(market=b["scenario"] + " / " + b["design"] + " / " + b["rule"])
    wide = b.pivot_table(index="peer", columns="market", values="savings", sort=False)
    savings = Table(title="Savings per peer against trading with the grid alone")
    savings.add_column("peer")
    for market in wide.columns:
        savings.add_column(str(market), justify="right")
    for peer, values in wide.iterrows():
        savings.add_row(str(peer), *(_cell(v) for v in values.to_numpy()))
    return [markets, savings]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:,.4g}"
    return "-" if value is None else str(value)


def paper_table(checks: Iterable[PaperCheck]) -> Table:
    """One row per published figure or statement; notes are numbered under the table."""
    table = Table(title="Moreno et al. 2021: the paper's figures beside ours")
    for column in ("case", "quantity", "paper", "ours", "deviation", "note"):
        table.add_column(column, justify="right" if column in ("ours", "deviation") else "left")
    notes: list[str] = []
    for c in checks:
        if c.deviation is None:
            mark = "[green]agrees[/green]" if c.matches else "[yellow]differs[/yellow]"
        elif c.matches:
            mark = "[green]=[/green]"
        else:
            mark = f"[yellow]{c.deviation:+.6g}[/yellow]"
        ref = ""
        if c.note:
            if c.note not in notes:
                notes.append(c.note)
            ref = f"[{notes.index(c.note) + 1}]"
        paper = c.paper_says if c.paper is None else f"{c.paper:.6g}"
        table.add_row(c.case, c.quantity, paper, f"{c.ours:.6g}", mark, ref)
    table.caption = "\n".join(f"[{i}] {note}" for i, note in enumerate(notes, start=1))
    table.caption_justify = "left"
    return table


def storage_table(summary: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    labels = {
        "peer": "peer",
        "capacity_kwh": "capacity kWh",
        "charged_kwh": "charged kWh",
        "discharged_kwh": "discharged kWh",
        "losses_kwh": "lost kWh",
        "charging_cycles": "charging cycles",
        "equivalent_full_cycles": "full cycles",
        "simultaneous_periods": "charge+discharge periods",
    }
    for label in labels.values():
        table.add_column(label, justify="left" if label == "peer" else "right")
    for row in summary.to_dict("records"):
        table.add_row(
            *(str(row[k]) if isinstance(row[k], str | int) else f"{row[k]:,.2f}" for k in labels)
        )
    return table


def role_table(changes: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for column in ("peer", "declared role", "roles taken", "changes", "first change (hour)"):
        table.add_column(column, justify="right" if column[0] in "cf" else "left")
    for row in changes.to_dict("records"):
        table.add_row(
            str(row["peer"]),
            str(row["declared_role"]),
            str(row["roles"]),
            str(row["changes"]),
            str(int(row["first_change"]) + 1),
        )
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


def _price(value: float) -> str:
    """A price to four decimals; a peer that never buys has none (shown as a dash)."""
    return "–" if math.isnan(value) else f"{value:.4f}"
