"""Self-contained HTML reports (SPEC C7): one page per run, and an index of the paper's cases.

A report holds the run's summary, its KPIs when given, every figure that applies (embedded as
PNG in the page: no other file and no network needed) and its tables. Every piece of text is
escaped; pages are written through a temporary file and a rename. Numbers are printed with
`format_value`: six significant digits, thousands separated.
"""

from __future__ import annotations

import base64
import html
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from string import Template
from urllib.parse import quote

import numpy as np
import pandas as pd

from p2pmarket import __version__
from p2pmarket.app.paper import PaperCheck, Reproduction
from p2pmarket.core.analysis import role_changes, storage_summary
from p2pmarket.core.results import ClearingResult
from p2pmarket.io.scenario_files import write_text_atomic
from p2pmarket.io.tables import peer_totals
from p2pmarket.reports.figures import standard_figures
from p2pmarket.reports.network import busiest_period
from p2pmarket.reports.style import figure_png, period_label

__all__ = [
    "REPORT_NAME",
    "format_value",
    "paper_index_html",
    "report_html",
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
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #0072B2; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-top: 1.6em; }
.lead { color: #555; margin-top: 0; }
nav a { margin-right: 1.1em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e2e2e2; text-align: left; }
th { background: #f4f4f4; position: sticky; top: 0; }
td:first-child { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
.wide { overflow-x: auto; max-width: 100%; }
.scroll { max-height: 30em; overflow: auto; border: 1px solid #e2e2e2; display: inline-block;
          max-width: 100%; }
.scroll table { margin: 0; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; max-width: 60em; }
.headline { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
.headline div { background: #f4f8fb; border-left: 4px solid #0072B2; padding: 0.5em 1em; }
.headline b { display: block; font-size: 1.35em; }
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


def _table(frame: pd.DataFrame, *, scroll: bool = False, caption: str = "") -> str:
    """A DataFrame as an escaped HTML table; numeric columns right-aligned."""
    align = [" class='num'" if pd.api.types.is_numeric_dtype(t) else "" for t in frame.dtypes]
    head = "".join(
        f"<th{a}>{html.escape(str(c))}</th>" for c, a in zip(frame.columns, align, strict=True)
    )
    rows = []
    for values in frame.itertuples(index=False, name=None):
        cells = "".join(f"<td{a}>{_esc(v)}</td>" for v, a in zip(values, align, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    cap = f"<p class='note'>{html.escape(caption)}</p>" if caption else ""
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    if not rows:
        table = "<p class='note'>(none)</p>"
    else:
        table = f"<div class='{'scroll' if scroll else 'wide'}'>{table}</div>"
    return cap + table


def _flat(items: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested mappings flattened: {"C2": {"share": 1}} -> {"C2 / share": 1}."""
    out: dict[str, object] = {}
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name} / "))
        else:
            out[name] = value
    return out


def _key_values(items: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td class='num'>{_esc(v)}</td></tr>"
        for k, v in _flat(items).items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    text = html.escape(caption)
    return (
        f'<figure id="figure-{html.escape(name)}"><img src="data:image/png;base64,{data}" '
        f'alt="{text}"><figcaption>{text}</figcaption></figure>'
    )


def report_html(
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    kpis: Mapping[str, object] | None = None,
    title: str | None = None,
    comparison: Sequence[ClearingResult] = (),
    checks: Iterable[PaperCheck] = (),
    back_link: str | None = None,
) -> str:
    """The report of one run as a self-contained HTML page (see `write_report`)."""

    s = result.scenario
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
        sections.append(("kpis", "KPIs"))
    if checks:
        sections.append(("paper", "Paper vs ours"))
    sections += [("figures", "Figures"), ("tables", "Tables")]
    nav = "".join(f'<a href="#{k}">{html.escape(v)}</a>' for k, v in sections)
    parts.append(f"<nav>{nav}</nav>")

    summary = result.summary().to_dict()
    traded = float(result.trades["energy_kwh"].sum())
    headline = {
        f"objective ({result.objective_kind}), {s.currency}": result.objective,
        "traded energy (kWh)": traded,
        "peers": len(s.peers),
        f"periods of {s.period_hours:g} h": s.periods,
    }
    boxes = "".join(f"<div>{html.escape(k)}<b>{_esc(v)}</b></div>" for k, v in headline.items())
    parts.append(f'<h2 id="summary">Summary</h2><div class="headline">{boxes}</div>')
    parts.append(_key_values(summary))
    if kpis:
        parts.append(f'<h2 id="kpis">KPIs</h2>{_key_values(kpis)}')
    if checks:
        parts.append(f'<h2 id="paper">Paper vs ours</h2>{_checks_table(checks)}')

    parts.append('<h2 id="figures">Figures</h2>')
    figures = standard_figures(result, bills=bills, comparison=comparison)
    for name, fig in figures.items():
        caption = _CAPTIONS[name].format(period=period_label(result, busiest_period(result)))
        parts.append(_figure(name, figure_png(fig, dpi=DPI), caption))

    parts.append('<h2 id="tables">Tables</h2>')
    parts.append("<h3>Per peer over the horizon</h3>")
    parts.append(_table(peer_totals(result), caption="Energy in kWh; mean price per kWh."))
    parts.append(f"<h3>Trades ({len(result.trades)})</h3>")
    parts.append(_table(result.trades, scroll=True))
    parts.append("<h3>Prices per node and period</h3>")
    # A peer and a manager may share a name: a node is its name and its kind.
    prices = result.prices.pivot(index=["node", "kind"], columns="period", values="price_per_kwh")
    nodes = list(dict.fromkeys(zip(result.prices["node"], result.prices["kind"], strict=True)))
    prices = prices.reindex(pd.MultiIndex.from_tuples(nodes, names=["node", "kind"]))
    prices.columns = [f"period {c}" for c in prices.columns]
    parts.append(_table(prices.reset_index(), scroll=True, caption=f"Price in {s.currency}/kWh."))
    storage = storage_summary(result)
    if len(storage):
        parts.append("<h3>Storage over the horizon</h3>" + _table(storage))
    changes = role_changes(result)
    parts.append("<h3>Peers that change role</h3>" + _table(changes))
    if bills is not None:
        parts.append(f"<h3>Bills ({html.escape(s.currency)})</h3>" + _table(bills))
    return _PAGE.substitute(title=html.escape(title), body="\n".join(parts), version=__version__)


def write_report(
    result: ClearingResult,
    out_dir: Path,
    *,
    bills: pd.DataFrame | None = None,
    kpis: Mapping[str, object] | None = None,
    title: str | None = None,
    comparison: Sequence[ClearingResult] = (),
) -> Path:
    """Write `out_dir/report.html`: summary, KPIs, figures and tables of one run.

    `bills` (columns `peer`, `cost_baseline`, `cost_market`, `savings`) adds the bills
    figure and table; `kpis` a table of named values; `comparison` (the same scenario under
    other designs) a figure comparing them. Returns the path written.
    """
    page = report_html(result, bills=bills, kpis=kpis, title=title, comparison=comparison)
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


def write_paper_reports(
    reproduction: Reproduction,
    out_dir: Path,
    *,
    designs: pd.DataFrame | None = None,
    bills: Mapping[str, pd.DataFrame] | None = None,
    kpis: Mapping[str, Mapping[str, object]] | None = None,
    on_case: Callable[[str], None] | None = None,
) -> Path:
    """Write `out_dir/CASE/report.html` for every paper case and `out_dir/index.html`
    linking them, with the paper-vs-ours table (and `designs`, from
    `p2pmarket.app.paper.design_comparison`, when given). `bills` and `kpis`, by case name, go
    into the case's report. `on_case(name)` is called before each case, for a progress bar.
    Returns the index page's path."""
    out_dir = Path(out_dir)
    links: dict[str, str] = {}
    for name, result in reproduction.results.items():
        if on_case is not None:
            on_case(name)
        checks = [c for c in reproduction.checks if name in _cases_of(c)]
        page = report_html(
            result,
            bills=(bills or {}).get(name),
            kpis=(kpis or {}).get(name),
            title=f"{name} (Moreno et al. 2021)",
            checks=checks,
            back_link=f"../{INDEX_NAME}",
        )
        write_text_atomic(out_dir / name / REPORT_NAME, page)
        links[name] = f"{quote(name)}/{REPORT_NAME}"
    index = out_dir / INDEX_NAME
    write_text_atomic(index, paper_index_html(reproduction, links, designs))
    return index
