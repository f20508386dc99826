"""Self-contained HTML reports (SPEC C7): one page per run, and an index of the paper's cases.

A report holds the run's summary, its KPIs when given, every figure that applies (embedded as
PNG in the page: no other file and no network needed) and its tables. Every piece of text is
escaped; pages are written through a temporary file and a rename. Values are written for a
member of an energy community (`p2pmarket.reports.labels`): labels in words with units,
money to cents, shares in per cent, solver details and timings in a collapsed section; long
tables show their largest rows and collapse the rest, so that a report of a thousand peers
stays a page of bounded size that never scrolls sideways. A horizon of `year.LONG_DAYS`
days or more is drawn by day and by month (`p2pmarket.reports.year`, docs/year-report.md)
instead of with a bar or a cell per period.
"""

from __future__ import annotations

import base64
import html
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from urllib.parse import quote

import numpy as np
import pandas as pd

from p2pmarket import __version__
from p2pmarket.app.paper import PaperCheck, Reproduction
from p2pmarket.app.run import billed_prices_note
from p2pmarket.core.analysis import role_changes, storage_summary
from p2pmarket.core.results import ClearingResult
from p2pmarket.io.scenario_files import write_text_atomic
from p2pmarket.io.tables import peer_totals
from p2pmarket.reports.figures import draw_figure, figure_steps, shows_billed_prices
from p2pmarket.reports.labels import (
    KPI_LABELS,
    SUMMARY_LABELS,
    format_energy,
    format_money,
    format_share,
    is_empty,
    rows_of,
)
from p2pmarket.reports.network import busiest_period
from p2pmarket.reports.style import figure_png, period_label
from p2pmarket.reports.year import (
    BLOCK_DAYS,
    YEAR_CAPTIONS,
    YEAR_FIGURE_STEPS,
    draw_year_figure,
    is_long,
    long_horizon_note,
    year_figure_steps,
)
from p2pmarket.types import NodeKind

__all__ = [
    "FULL_ROWS",
    "REPORT_NAME",
    "Column",
    "figure_html",
    "format_value",
    "page_html",
    "paper_index_html",
    "paper_report_steps",
    "report_html",
    "report_steps",
    "rows_table",
    "write_paper_reports",
    "write_report",
]

REPORT_NAME = "report.html"
INDEX_NAME = "index.html"
DPI = 100

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1180px; margin: 0 auto; padding: 1.5em 2em 4em; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; overflow-wrap: anywhere; }
h2 { border-bottom: 2px solid #0072B2; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-top: 1.6em; }
.lead { color: #555; margin-top: 0; }
nav a { margin-right: 1.1em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; max-width: 100%; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #e2e2e2; text-align: left;
         overflow-wrap: anywhere; }
th { background: #f4f4f4; position: sticky; top: 0; font-weight: 600; }
table.pairs th { position: static; background: none; font-weight: normal; color: #444; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafa; }
.wide { max-width: 100%; overflow-x: auto; }
.scroll { max-height: 30em; overflow: auto; border: 1px solid #e2e2e2; display: inline-block;
          max-width: 100%; }
.scroll table { margin: 0; }
details { margin: 0.6em 0; }
details summary { cursor: pointer; color: #0057a0; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; max-width: 60em; }
.headline { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
.headline div { background: #f4f8fb; border-left: 4px solid #0072B2; padding: 0.5em 1em; }
.headline b { display: block; font-size: 1.35em; }
.notice { background: #fff6e5; border-left: 4px solid #E69F00; padding: 0.6em 1em;
          max-width: 60em; }
.yes { color: #007a4d; font-weight: 600; }
.no { color: #b35900; font-weight: 600; }
.note { color: #555; font-size: 0.9em; }
footer { margin-top: 3em; color: #777; font-size: 0.85em; }
</style>
</head>
<body>
$body
<footer>Written by p2pmarket $version. Self-contained: figures are embedded in this page.</footer>
</body>
</html>
""")

_CAPTIONS = {
    "trade-network": (
        "Trade network: who sells to whom in {period}, the period with the most traded "
        "energy. Peers are placed by community and coloured by their role in the period; "
        "arrows are sized and labelled by the energy traded (kWh). The paper's Figures 3 and 5."
    ),
    "generation-load": (
        "Generation stacked by peer against the total load over the horizon (the paper's "
        "Figure 10)."
    ),
    "imports-exports": (
        "Imports and exports of each peer over the horizon (the paper's Figure 11): exports "
        "upwards, imports downwards."
    ),
    "state-of-charge": "State of charge of each storage unit, with its charge and discharge.",
    "prices": (
        "Price per peer and community manager: the dual of its balance, the cost of serving "
        "one more kWh there."
    ),
    "bills": "Each peer's cost in the market against its grid-only baseline, and its savings.",
    "design-comparison": "The same scenario under each market design, side by side.",
    **YEAR_CAPTIONS,
}


def format_value(value: object) -> str:
    """A table cell or KPI as text: numbers to six significant digits with thousands
    separated (below 1e-9 in size, rounding dust, they read 0), integers in full, booleans
    as yes/no, missing values blank."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        if number != number:  # NaN
            return ""
        return "0" if abs(number) < 1e-9 else f"{number:,.6g}"
    return str(value)


def _esc(value: object) -> str:
    return html.escape(format_value(value))


@dataclass(frozen=True)
class Column:
    """A column of a report table: the frame's column, its header (with the unit) and how a
    cell is written."""

    key: str
    header: str
    write: Callable[[object], str] = format_value
    numeric: bool = False


def _decimals(digits: int) -> Callable[[object], str]:
    def write(value: object) -> str:
        if is_empty(value):
            return ""
        number = float(value)  # type: ignore[arg-type]
        return f"{0.0 if abs(number) < 0.5 * 10**-digits else number:,.{digits}f}"

    return write


_ENERGY = _decimals(1)
_MONEY = _decimals(2)
_PRICE = _decimals(4)


def _table(frame: pd.DataFrame, *, scroll: bool = False, caption: str = "") -> str:
    """A DataFrame as an escaped HTML table; numeric columns right-aligned."""
    columns = [
        Column(str(c), str(c), format_value, pd.api.types.is_numeric_dtype(t))
        for c, t in zip(frame.columns, frame.dtypes, strict=True)
    ]
    return _rows_table(frame, columns, caption=caption, scroll=scroll)


def _rows_table(
    frame: pd.DataFrame, columns: Sequence[Column], *, caption: str = "", scroll: bool = False
) -> str:
    head = "".join(
        f"<th{' class=num' if c.numeric else ''}>{html.escape(c.header)}</th>" for c in columns
    )
    rows = []
    data = [frame[c.key].tolist() for c in columns]
    for values in zip(*data, strict=True):
        cells = "".join(
            f"<td{' class=num' if c.numeric else ''}>{html.escape(c.write(v))}</td>"
            for v, c in zip(values, columns, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    cap = f"<p class='note'>{html.escape(caption)}</p>" if caption else ""
    if not rows:
        return cap + "<p class='note'>(none)</p>"
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f"{cap}<div class='{'scroll' if scroll else 'wide'}'>{table}</div>"


TOP_ROWS = 20
"""Rows of a long table shown; the whole table follows, collapsed."""
FULL_ROWS = 2_000
"""Rows of a collapsed table at most; past this, the table files have them."""


def _long_table(
    frame: pd.DataFrame,
    columns: Sequence[Column],
    *,
    what: str,
    order: pd.Series | None = None,
    caption: str = "",
) -> str:
    """A table of at most `TOP_ROWS` rows (the largest by `order`, else the first) and, for
    more, every row in a collapsed `<details>` (up to `FULL_ROWS` rows)."""
    if len(frame) <= TOP_ROWS + 5:
        return _rows_table(frame, columns, caption=caption)
    if order is not None:
        ranked = order.reset_index(drop=True).sort_values(ascending=False, kind="stable")
        top = frame.reset_index(drop=True).loc[ranked.index[:TOP_ROWS]]
        shown = f"The {TOP_ROWS} {what} with the largest {order.name} of {len(frame):,}."
    else:
        top = frame.head(TOP_ROWS)
        shown = f"The first {TOP_ROWS} {what} of {len(frame):,}."
    parts = [_rows_table(top, columns, caption=f"{caption} {shown}".strip())]
    if len(frame) <= FULL_ROWS:
        parts.append(
            f"<details><summary>All {len(frame):,} {html.escape(what)}</summary>"
            f"{_rows_table(frame, columns, scroll=True)}</details>"
        )
    else:
        parts.append(
            f"<p class='note'>All {len(frame):,} {html.escape(what)} are in the run's tables "
            "(<code>--format csv</code> or <code>parquet</code>).</p>"
        )
    return "".join(parts)


def _key_values(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td class='num'>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return f"<table class='pairs'><tbody>{body}</tbody></table>"


def _figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    text = html.escape(caption)
    return (
        f'<figure id="figure-{html.escape(name)}"><img src="data:image/png;base64,{data}" '
        f'alt="{text}"><figcaption>{text}</figcaption></figure>'
    )


def page_html(title: str, parts: Sequence[str]) -> str:
    """A self-contained page in the reports' style: `title` (text) and `parts` (HTML, each
    escaped already), e.g. a sweep's report (`p2pmarket.reports.sweep`)."""
    return _PAGE.substitute(title=html.escape(title), body="\n".join(parts), version=__version__)


def figure_html(name: str, png: bytes, caption: str) -> str:
    """A figure embedded as PNG with its caption (text), its element id `figure-NAME`."""
    return _figure(name, png, caption)


def rows_table(
    frame: pd.DataFrame, columns: Sequence[Column], *, caption: str = "", scroll: bool = False
) -> str:
    """`frame` as an escaped HTML table of `columns`, numeric ones right-aligned."""
    return _rows_table(frame, columns, caption=caption, scroll=scroll)


SUMMARY_STEP = "writing the summary"
TABLES_STEP = "writing the tables"


def report_steps(
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    comparison: Sequence[ClearingResult] = (),
) -> list[str]:
    """What `on_step` of `report_html` / `write_report` is told, in order, for these
    arguments: one step per section and per figure (`len` of it is the number of steps)."""
    figures = _figure_steps(result, bills=bills, comparison=comparison)
    return [SUMMARY_STEP, *(description for _, description in figures), TABLES_STEP]


def _figure_steps(
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None,
    comparison: Sequence[ClearingResult],
) -> list[tuple[str, str]]:
    """The figures of a report: `figure_steps`, or for a long horizon (`year.is_long`) the
    trade network of its busiest period, the year figures, the bills and the comparison."""
    steps = figure_steps(result, bills=bills, comparison=comparison)
    if not is_long(result.scenario):
        return steps
    kept = [step for step in steps if step[0] in ("bills", "design-comparison")]
    return [steps[0], *year_figure_steps(bills), *kept]


def report_html(
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    kpis: Mapping[str, object] | None = None,
    title: str | None = None,
    comparison: Sequence[ClearingResult] = (),
    checks: Iterable[PaperCheck] = (),
    back_link: str | None = None,
    priced: ClearingResult | None = None,
    on_step: Callable[[str], None] | None = None,
    more_sections: Sequence[str] = (),
) -> str:
    """The report of one run as a self-contained HTML page (see `write_report`)."""

    def step(description: str) -> None:
        if on_step is not None:
            on_step(description)

    s = result.scenario
    billed = priced if priced is not None and shows_billed_prices(result, priced) else None
    prices_of = billed or result
    title = title or f"{s.name}: {result.design} market"
    parts: list[str] = []
    if back_link is not None:
        parts.append(f'<p><a href="{html.escape(back_link)}">&larr; all cases</a></p>')
    parts.append(f"<h1>{html.escape(title)}</h1>")
    if s.description:
        parts.append(f"<p class='lead'>{html.escape(s.description)}</p>")
    checks = list(checks)
    sections = [("summary", "Summary")]
    if kpis:
        sections.append(("kpis", "Key figures"))
    if checks:
        sections.append(("paper", "Paper vs ours"))
    sections += [("figures", "Figures"), ("tables", "Tables")]
    nav = "".join(f'<a href="#{k}">{html.escape(v)}</a>' for k, v in sections)
    parts.append(f"<nav>{nav}</nav>")

    step(SUMMARY_STEP)
    parts += _summary(result, kpis, billed)
    if checks:
        parts.append(f'<h2 id="paper">Paper vs ours</h2>{_checks_table(checks)}')

    parts.append('<h2 id="figures">Figures</h2>')
    busiest = period_label(result, busiest_period(result))
    if is_long(s):
        parts.append(f"<p class='note'>{html.escape(long_horizon_note(s))}</p>")
    # Each figure drawn, rendered and let go in turn: one figure in memory at a time.
    for name, description in _figure_steps(result, bills=bills, comparison=comparison):
        step(description)
        if name in YEAR_FIGURE_STEPS:
            note = {"price-heatmap": "system-cost prices, as billed"} if billed else {}
            fig = draw_year_figure(name, result, bills=bills, priced=billed, notes=note)
        else:
            fig = draw_figure(name, result, bills=bills, comparison=comparison, priced=billed)
        caption = _CAPTIONS[name].format(period=busiest, month=f"block of {BLOCK_DAYS} days")
        if name in ("prices", "price-heatmap") and billed is not None:
            caption += " " + billed_prices_note(result, billed)
        parts.append(_figure(name, figure_png(fig, dpi=DPI), caption))
        fig.clear()

    parts += more_sections  # e.g. the feeder's section (`p2pmarket.reports.feeder`)
    step(TABLES_STEP)
    parts.append('<h2 id="tables">Tables</h2>')
    parts += _tables(result, prices_of, bills)
    return _PAGE.substitute(title=html.escape(title), body="\n".join(parts), version=__version__)


def _summary(
    result: ClearingResult, kpis: Mapping[str, object] | None, billed: ClearingResult | None
) -> list[str]:
    s = result.scenario
    currency = s.currency
    traded = result.summary().traded_energy_kwh  # delivered between peers (docs/quantities.md)
    headline = [
        (
            f"objective ({result.objective_kind}), as cleared",
            format_money(result.objective, currency),
        ),
        ("energy traded between peers", format_energy(traded)),
        ("peers", f"{len(s.peers):,}"),
        (f"periods of {s.period_hours:g} h", f"{s.periods:,}"),
    ]
    if kpis:
        if not is_empty(kpis.get("savings_total")):
            total = float(kpis["savings_total"])  # type: ignore[arg-type]
            headline.append(("savings against grid only", format_money(total, currency)))
        if not is_empty(kpis.get("self_sufficiency")):
            share = float(kpis["self_sufficiency"])  # type: ignore[arg-type]
            headline.append(("self-sufficiency", format_share(share)))
    boxes = "".join(f"<div>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in headline)
    parts = [f'<h2 id="summary">Summary</h2><div class="headline">{boxes}</div>']
    if billed is not None:
        parts.append(f"<p class='notice'>{html.escape(billed_prices_note(result, billed))}</p>")
    plain, technical = rows_of(result.summary().to_dict(), SUMMARY_LABELS, currency)
    parts.append(_key_values(plain))
    if kpis:
        figures = {k: v for k, v in kpis.items() if k != "communities"}
        kpi_rows, kpi_technical = rows_of(figures, KPI_LABELS, currency)
        technical += kpi_technical
        parts.append(f'<h2 id="kpis">Key figures</h2>{_key_values(kpi_rows)}')
        communities = kpis.get("communities")
        if isinstance(communities, Mapping) and communities:
            parts.append("<h3>Communities</h3>" + _communities_table(communities))
    if technical:
        parts.append(
            "<details class='technical'><summary>Technical details (solver, timings)</summary>"
            f"{_key_values(technical)}</details>"
        )
    return parts


def _communities_table(communities: Mapping[str, object]) -> str:
    rows = []
    for name, values in communities.items():
        shares = values if isinstance(values, Mapping) else {}
        rows.append(
            {
                "community": str(name),
                "self_sufficiency": shares.get("self_sufficiency"),
                "self_consumption": shares.get("self_consumption"),
            }
        )
    frame = pd.DataFrame(rows, columns=["community", "self_sufficiency", "self_consumption"])

    def share(value: object) -> str:
        return "" if is_empty(value) else format_share(float(value))  # type: ignore[arg-type]

    columns = [
        Column("community", "community"),
        Column("self_sufficiency", "self-sufficiency", share, True),
        Column("self_consumption", "self-consumption", share, True),
    ]
    caption = (
        "Self-sufficiency: the share of the members' demand met from inside the community; "
        "self-consumption: the share of their generation used inside it."
    )
    return _long_table(frame, columns, what="communities", caption=caption)


_ROUTE_WORDS = {
    "p2p": "peer to peer",
    "member-manager": "member to manager",
    "manager-member": "manager to member",
    "manager-manager": "between managers",
}


def _tables(
    result: ClearingResult, prices_of: ClearingResult, bills: pd.DataFrame | None
) -> list[str]:
    s = result.scenario
    currency = s.currency
    parts = ["<h3>Per peer over the horizon</h3>"]
    totals = peer_totals(result)
    mean_price = prices_of.dispatch.groupby("peer", sort=False)["price_per_kwh"].mean()
    totals["mean_price_per_kwh"] = totals["peer"].map(mean_price)
    columns = [
        Column("peer", "peer"),
        Column("community", "community"),
        Column("declared_role", "role"),
        Column("generation_kwh", "generated (kWh)", _ENERGY, True),
        Column("load_kwh", "load (kWh)", _ENERGY, True),
        Column("flexible_load_kwh", "flexible load (kWh)", _ENERGY, True),
        Column("charge_kwh", "charged (kWh)", _ENERGY, True),
        Column("discharge_kwh", "discharged (kWh)", _ENERGY, True),
        Column("import_kwh", "bought (kWh)", _ENERGY, True),
        Column("export_kwh", "sold (kWh)", _ENERGY, True),
        Column("mean_price_per_kwh", f"mean price ({currency}/kWh)", _PRICE, True),
    ]
    columns = [c for c in columns if not c.numeric or totals[c.key].abs().sum() > 1e-9]
    traded = (totals["import_kwh"] + totals["export_kwh"]).rename("energy traded")
    parts.append(_long_table(totals, columns, what="peers", order=traded))

    trades = result.trades
    parts.append(f"<h3>Trades ({len(trades):,})</h3>")
    if len(trades):
        routes = trades.groupby("route", sort=False).agg(
            trades=("energy_kwh", "size"), energy_kwh=("energy_kwh", "sum")
        )
        routes = routes.reset_index()
        routes["route"] = [_ROUTE_WORDS.get(str(r), str(r)) for r in routes["route"]]
        parts.append(
            _rows_table(
                routes,
                [
                    Column("route", "route"),
                    Column("trades", "trades", format_value, True),
                    Column("energy_kwh", "energy (kWh)", _ENERGY, True),
                ],
            )
        )
    frame = trades.assign(
        seller=_node_names(trades["seller"], trades["seller_kind"]),
        buyer=_node_names(trades["buyer"], trades["buyer_kind"]),
        route=_route_words(trades["route"]),
    )
    trade_columns = [
        Column("period", "period", format_value, True),
        Column("seller", "seller"),
        Column("buyer", "buyer"),
        Column("route", "route"),
        Column("energy_kwh", "energy (kWh)", _ENERGY, True),
        Column("fee", f"fee ({currency})", _MONEY, True),
    ]
    parts.append(
        _long_table(
            frame, trade_columns, what="trades", order=trades["energy_kwh"].rename("energy")
        )
    )

    parts.append("<h3>Prices</h3>")
    parts.append(_prices_table(prices_of))
    storage = storage_summary(result)
    if len(storage):
        parts.append("<h3>Storage over the horizon</h3>")
        storage_columns = [
            Column("peer", "peer"),
            Column("capacity_kwh", "capacity (kWh)", _ENERGY, True),
            Column("power_kw", "power (kW)", _ENERGY, True),
            Column("charged_kwh", "charged (kWh)", _ENERGY, True),
            Column("discharged_kwh", "discharged (kWh)", _ENERGY, True),
            Column("losses_kwh", "losses (kWh)", _ENERGY, True),
            Column("equivalent_full_cycles", "full cycles", _decimals(2), True),
        ]
        parts.append(
            _long_table(
                storage,
                storage_columns,
                what="storage units",
                order=storage["charged_kwh"].rename("charge"),
            )
        )
    changes = role_changes(result)
    parts.append("<h3>Peers that change role</h3>")
    change_columns = [
        Column("peer", "peer"),
        Column("declared_role", "declared role"),
        Column("changes", "changes", format_value, True),
        Column("roles", "roles in the horizon"),
        Column("first_change", "first change (period)", format_value, True),
    ]
    change_columns = [c for c in change_columns if c.key in changes.columns]
    order = changes["changes"].rename("number of changes") if "changes" in changes else None
    parts.append(_long_table(changes, change_columns, what="peers", order=order))
    if bills is not None:
        parts.append(f"<h3>Bills ({html.escape(currency)})</h3>")
        bill_columns = [
            Column("peer", "peer"),
            Column("cost_baseline", f"grid only ({currency})", _MONEY, True),
            Column("cost_market", f"in the market ({currency})", _MONEY, True),
            Column("savings", f"savings ({currency})", _MONEY, True),
            Column("bought_kwh", "bought (kWh)", _ENERGY, True),
            Column("sold_kwh", "sold (kWh)", _ENERGY, True),
        ]
        bill_columns = [c for c in bill_columns if c.key in bills.columns]
        order = bills["savings"].abs().rename("savings (in size)")
        parts.append(
            _long_table(
                bills,
                bill_columns,
                what="peers",
                order=order,
                caption="Net cost over the horizon; negative: revenue.",
            )
        )
    return parts


def _node_names(names: pd.Series, kinds: pd.Series) -> pd.Series:
    """`manager C3` for a manager, a peer's id as it is; whole columns at once (a year of
    trades has a million rows)."""
    text = names.astype(str)
    return text.where((kinds != NodeKind.MANAGER).to_numpy(), "manager " + text)


def _route_words(routes: pd.Series) -> pd.Series:
    text = routes.astype(str)
    return text.map(_ROUTE_WORDS).fillna(text)


_GRID_PERIODS = 12


def _prices_table(result: ClearingResult) -> str:
    """Prices per node: one column per period for a short horizon and few nodes, else the
    lowest, mean and highest price of each node (a long list collapsed)."""
    p = result.prices
    currency = result.scenario.currency
    owner = result.scenario.community_of()
    first = p[["node", "kind"]].drop_duplicates()
    nodes = list(zip(first["node"], first["kind"], strict=True))
    caption = f"Buying price in {currency}/kWh (the dual of the node's balance)."
    table = p.pivot(index=["node", "kind"], columns="period", values="price_per_kwh")
    table = table.reindex(pd.MultiIndex.from_tuples(nodes, names=["node", "kind"]))
    names = [f"manager {n}" if k == NodeKind.MANAGER else str(n) for n, k in nodes]
    community = [str(n) if k == NodeKind.MANAGER else owner.get(str(n)) for n, k in nodes]
    if result.scenario.periods <= _GRID_PERIODS and len(nodes) <= TOP_ROWS + 5:
        frame = pd.DataFrame({"node": names})
        columns = [Column("node", "peer or manager")]
        for period in table.columns:
            key = f"period {period}"
            frame[key] = table[period].to_numpy()
            columns.append(Column(key, key, _PRICE, True))
        return _rows_table(frame, columns, caption=caption)
    values = table.to_numpy(dtype=float)
    known = ~np.isnan(values)
    count = known.sum(axis=1)
    safe = np.where(known, values, 0.0)
    frame = pd.DataFrame(
        {
            "node": names,
            "community": community,
            "low": np.where(count > 0, np.where(known, values, np.inf).min(axis=1), np.nan),
            "mean": np.where(count > 0, safe.sum(axis=1) / np.maximum(count, 1), np.nan),
            "high": np.where(count > 0, np.where(known, values, -np.inf).max(axis=1), np.nan),
        }
    )
    columns = [
        Column("node", "peer or manager"),
        Column("community", "community"),
        Column("low", f"lowest ({currency}/kWh)", _PRICE, True),
        Column("mean", f"mean ({currency}/kWh)", _PRICE, True),
        Column("high", f"highest ({currency}/kWh)", _PRICE, True),
    ]
    caption += f" Over the {result.scenario.periods} periods; every price is in the prices table."
    return _long_table(
        frame,
        columns,
        what="peers and managers",
        order=frame["high"].rename("highest price"),
        caption=caption,
    )


def write_report(
    result: ClearingResult,
    out_dir: Path,
    *,
    bills: pd.DataFrame | None = None,
    kpis: Mapping[str, object] | None = None,
    title: str | None = None,
    comparison: Sequence[ClearingResult] = (),
    priced: ClearingResult | None = None,
    on_step: Callable[[str], None] | None = None,
    more_sections: Sequence[str] = (),
) -> Path:
    """Write `out_dir/report.html`: summary, key figures, figures and tables of one run.

    `bills` (columns `peer`, `cost_baseline`, `cost_market`, `savings`) adds the bills
    figure and table; `kpis` (as `Kpis.to_dict()` gives them) the key figures; `comparison`
    (the same scenario under other designs) a figure comparing them. `priced`, the clearing
    the bills are priced from (the `system-cost` twin of a `paper` clearing), gives every
    price shown, with a sentence saying so. `on_step(description)` is called before each
    section and figure, as `report_steps` lists them. `more_sections` (HTML, escaped) go after
    the figures, e.g. the feeder's (`p2pmarket.reports.feeder.feeder_report_parts`).
    Returns the path written.
    """
    page = report_html(
        result,
        bills=bills,
        kpis=kpis,
        title=title,
        comparison=comparison,
        priced=priced,
        on_step=on_step,
        more_sections=more_sections,
    )
    path = Path(out_dir) / REPORT_NAME
    write_text_atomic(path, page)
    return path


def _cases_of(check: PaperCheck) -> set[str]:
    """`seventeen-peer-case-1/2` concerns cases 1 and 2."""
    head, _, tail = check.case.rpartition("-")
    if "/" not in tail:
        return {check.case}
    return {f"{head}-{part}" for part in tail.split("/")}


def _checks_table(checks: Iterable[PaperCheck]) -> str:
    rows = []
    for c in checks:
        paper = c.paper_says if c.paper is None else format_value(c.paper)
        verdict = "agrees" if c.paper is None else "matches"
        mark = (
            f"<span class='yes'>{verdict}</span>"
            if c.matches
            else f"<span class='no'>{'differs' if c.paper is None else 'deviates'}</span>"
        )
        rows.append(
            "<tr>"
            f"<td>{html.escape(c.case)}</td><td>{html.escape(c.quantity)}</td>"
            f"<td class='num'>{html.escape(paper)}</td><td class='num'>{_esc(c.ours)}</td>"
            f"<td class='num'>{_esc(c.deviation)}</td><td>{mark}</td>"
            f"<td class='note'>{html.escape(c.note)}</td>"
            "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("case", "quantity", "paper", "ours", "deviation", "verdict", "note")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def paper_index_html(
    reproduction: Reproduction,
    links: Mapping[str, str],
    designs: pd.DataFrame | None = None,
) -> str:
    """The index page of the paper's cases: one row per case linking to its report, then
    every published figure beside ours, then (if given) each case under every design."""

    title = "Moreno et al. 2021, reproduced"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<p class='lead'>A Framework from Peer-to-Peer Electricity Trading Based on "
        "Communities Transactions, IJEEP 11(3), 2021: every case of the paper cleared by "
        "p2pmarket under the paper's objective, with a report per case.</p>",
        "<h2>Cases</h2>",
    ]
    rows = []
    for name, result in reproduction.results.items():
        mine = [c for c in reproduction.checks if name in _cases_of(c)]
        agreed = sum(c.matches for c in mine)
        href = html.escape(links[name]) if name in links else ""
        link = f'<a href="{href}">{html.escape(name)}</a>' if href else html.escape(name)
        rows.append(
            f"<tr><td>{link}</td><td>{html.escape(result.scenario.description)}</td>"
            f"<td class='num'>{len(result.scenario.peers)}</td>"
            f"<td class='num'>{result.scenario.periods}</td>"
            f"<td class='num'>{_esc(result.objective)}</td>"
            f"<td class='num'>{agreed} of {len(mine)}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("case", "description", "peers", "periods", "objective", "checks that agree")
    )
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    parts.append("<h2>The paper's figures beside ours</h2>")
    parts.append(_checks_table(reproduction.checks))
    if designs is not None:
        parts.append("<h2>Each case under the three market designs</h2>")
        parts.append(_table(designs, caption="Objective in $ under each objective kind."))
    return _PAGE.substitute(title=html.escape(title), body="\n".join(parts), version=__version__)


def paper_report_steps(
    reproduction: Reproduction, *, bills: Mapping[str, pd.DataFrame] | None = None
) -> list[str]:
    """What `on_step` of `write_paper_reports` is told, in order: each case's report steps,
    prefixed with the case's name, then the index."""
    out = []
    for name, result in reproduction.results.items():
        steps = report_steps(result, bills=(bills or {}).get(name))
        out += [f"{name}: {step}" for step in steps]
    return [*out, "writing the index"]


def write_paper_reports(
    reproduction: Reproduction,
    out_dir: Path,
    *,
    designs: pd.DataFrame | None = None,
    bills: Mapping[str, pd.DataFrame] | None = None,
    kpis: Mapping[str, Mapping[str, object]] | None = None,
    priced: Mapping[str, ClearingResult] | None = None,
    on_case: Callable[[str], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Write `out_dir/CASE/report.html` for every paper case and `out_dir/index.html`
    linking them, with the paper-vs-ours table (and `designs`, from
    `p2pmarket.app.paper.design_comparison`, when given). `bills`, `kpis` and `priced` (the
    `system-cost` clearing whose prices the case's bills charge), by case name, go into the
    case's report. `on_case(name)` is called before each case and `on_step(description)`
    before each step (`paper_report_steps`), for a progress bar. Returns the index's path."""
    out_dir = Path(out_dir)
    links: dict[str, str] = {}
    for name, result in reproduction.results.items():
        if on_case is not None:
            on_case(name)
        checks = [c for c in reproduction.checks if name in _cases_of(c)]

        def step(description: str, case: str = name) -> None:
            if on_step is not None:
                on_step(f"{case}: {description}")

        page = report_html(
            result,
            bills=(bills or {}).get(name),
            kpis=(kpis or {}).get(name),
            title=f"{name} (Moreno et al. 2021)",
            checks=checks,
            back_link=f"../{INDEX_NAME}",
            priced=(priced or {}).get(name),
            on_step=step,
        )
        write_text_atomic(out_dir / name / REPORT_NAME, page)
        links[name] = f"{quote(name)}/{REPORT_NAME}"
    if on_step is not None:
        on_step("writing the index")
    index = out_dir / INDEX_NAME
    write_text_atomic(index, paper_index_html(reproduction, links, designs))
    return index
