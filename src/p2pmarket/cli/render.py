"""Rich tables for the terminal: what a person reads after a run.

Every table is a `Grid`: readable at any width (80 columns when output is piped), numbers
never cut or wrapped. Quantities and their names: docs/quantities.md.

Text from a scenario (peer ids, names, the currency) reaches the terminal only through
`terminal_text`: a control character or a bidirectional override is shown as its escape
(`\\x1b`, `\\u202e`), never sent to the terminal (docs/security.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from p2pmarket.app.compare import MARKET_KEY, Comparison
from p2pmarket.app.paper import PaperCheck
from p2pmarket.app.run import billed_prices_note
from p2pmarket.core.analysis import storage_summary
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario.messages import plural
from p2pmarket.core.settlement import Settlement
from p2pmarket.types import Objective

__all__ = [
    "Col",
    "Grid",
    "bills_table",
    "comparison_tables",
    "design_table",
    "paper_table",
    "role_table",
    "run_tables",
    "storage_table",
    "terminal_text",
]

MAX_TRADE_ROWS = 20

Layout = list[tuple[int, int]]
"""The columns of one table and their content widths: (index, width) pairs."""

Cell = str | Text
"""A table cell: plain text (never read as rich markup: `[kW]` stays `[kW]`) or a `Text`."""

_TERMINAL_ESCAPES = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x00, 0x20),  # C0 controls: ESC, BEL, CR, backspace, ...
        *range(0x7F, 0xA0),  # DEL and the C1 controls (CSI U+009B, OSC U+009D, ...)
        *range(0x202A, 0x202F),  # bidirectional embeddings and overrides
        *range(0x2066, 0x206A),  # bidirectional isolates
    )
}
"""What `terminal_text` escapes, and how: as Python writes them in a string literal."""


def terminal_text(text: str, *, keep: str = "\n") -> str:
    """`text` safe to write to a terminal: every control character (C0 and C1, DEL, ESC) and
    every bidirectional override or isolate written as its escape (`\\x1b`, `\\u202e`), but
    those of `keep` (a line break, by default). A terminal shows what a value holds and is
    never driven by it (no title set, no colour, no text reversed)."""
    table = {code: s for code, s in _TERMINAL_ESCAPES.items() if chr(code) not in keep}
    return text.translate(table)


@dataclass(frozen=True)
class Col:
    """A column: its header (a `\\n` breaks it) and whether it holds numbers (right-aligned,
    never wrapped, never cut)."""

    header: str
    numeric: bool = False


class Grid:
    """A table that stays readable at any width, with its numbers whole.

    At render time it takes the first layout that fits the width: the natural one; text
    columns narrowed to their longest word and headers wrapped at their spaces (a numeric
    column keeps its widest number); the columns split over several tables, each repeating
    the first `key` columns; else one block per row, `header  value` line by line, headed by
    the row's `key` cells. Title and caption wrap at the full width when the table is
    narrower than they are."""

    def __init__(
        self,
        title: str,
        columns: Sequence[Col],
        rows: Iterable[Sequence[Cell]],
        *,
        caption: str = "",
        key: int = 1,
    ) -> None:
        self.title = terminal_text(title)
        self.columns = tuple(Col(terminal_text(c.header), c.numeric) for c in columns)
        self.rows = [tuple(_text(c) for c in row) for row in rows]
        self.caption = terminal_text(caption)
        self.key = key
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"{title}: a row of {len(row)} cells for {len(columns)} columns")

    def natural(self) -> list[int]:
        """Content width of each column on one line."""
        return [
            max([_widest_line(c.header), *(_widest_line(r[i].plain) for r in self.rows)])
            for i, c in enumerate(self.columns)
        ]

    def least(self) -> list[int]:
        """Narrowest content width of each column: its widest number, else its longest word."""
        out = []
        for i, c in enumerate(self.columns):
            cells = [r[i].plain for r in self.rows]
            words = [_widest_word(c.header)]
            words += [Text(v).cell_len for v in cells] if c.numeric else map(_widest_word, cells)
            out.append(max(words))
        return out

    def layout(self, width: int) -> list[Layout] | None:
        """For `width` cells: the (column, width) pairs of each table; None for one block per
        row."""
        natural, least = self.natural(), self.least()
        everything = list(range(len(self.columns)))
        fitted = _fit(everything, natural, least, width)
        if fitted is not None:
            return [fitted]
        keys, rest = everything[: self.key], everything[self.key :]
        for parts in range(2, len(rest) + 1):
            size, more = divmod(len(rest), parts)
            bounds = [n * size + min(n, more) for n in range(parts + 1)]
            layouts = [
                _fit(keys + rest[lo:hi], natural, least, width)
                for lo, hi in itertools.pairwise(bounds)
            ]
            if all(layouts):
                return [layout for layout in layouts if layout is not None]
        return None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        layouts = self.layout(options.max_width)
        if layouts is None:
            yield from self._blocks()
        else:
            for n, layout in enumerate(layouts):
                part = f" ({n + 1}/{len(layouts)})" if len(layouts) > 1 else ""
                yield from self._table(layout, self.title + part)
        if self.caption:
            yield Text(self.caption, style="table.caption")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        extra = _extra(len(self.columns))
        return Measurement(
            min(sum(self.least()) + extra, options.max_width),
            min(sum(self.natural()) + extra, options.max_width),
        )

    def _table(self, layout: Layout, title: str) -> Iterable[RenderableType]:
        width = sum(w for _, w in layout) + _extra(len(layout))
        table = Table(box=box.HEAVY_HEAD)
        if Text(title).cell_len <= width:
            table.title = title
        else:
            yield Text(title, style="table.title")
        for i, w in layout:
            c = self.columns[i]
            # Numbers never wrap: the width is at least the widest number, which has no space.
            table.add_column(
                c.header, justify="right" if c.numeric else "left", overflow="fold", width=w
            )
        for row in self.rows:
            table.add_row(*(row[i] for i, _ in layout))
        yield table

    def _blocks(self) -> Iterable[RenderableType]:
        yield Text(f"{self.title} (one block per row)", style="table.title")
        headers = [c.header.replace("\n", " ") for c in self.columns]
        for row in self.rows:
            name = " / ".join(" ".join(c.plain.split()) for c in row[: self.key])
            yield Text(name, style="bold")
            block = Table.grid(padding=(0, 2))
            block.add_column(overflow="fold")
            block.add_column(overflow="fold")
            for header, cell in list(zip(headers, row, strict=True))[self.key :]:
                block.add_row(header, cell)
            yield Padding(block, (0, 0, 0, 2))


def _extra(n: int) -> int:
    """Borders and padding of a table of `n` columns: a rule either side of each column and
    a space either side of its content."""
    return 3 * n + 1


def _fit(chosen: list[int], natural: list[int], least: list[int], width: int) -> Layout | None:
    """(column, width) of each of the `chosen` columns in `width` cells: each at
    least its `least`; the spare room goes first to the columns it brings to their natural
    width with the least of it (each such column loses a line break); None if it does not
    fit."""
    room = width - _extra(len(chosen))
    out = {i: least[i] for i in chosen}
    spare = room - sum(out.values())
    if spare < 0:
        return None
    for i in sorted(chosen, key=lambda i: natural[i] - least[i]):
        grant = min(natural[i] - out[i], spare)
        out[i] += grant
        spare -= grant
    return [(i, out[i]) for i in chosen]


def _text(cell: Cell) -> Text:
    """A cell as rich text, `terminal_text`-escaped (a `Text` that needs escaping keeps its
    style, not its spans: only a scenario's text does, and it has none)."""
    if not isinstance(cell, Text):
        return Text(terminal_text(str(cell)))
    safe = terminal_text(cell.plain)
    return cell if safe == cell.plain else Text(safe, style=cell.style)


def _widest_line(text: str) -> int:
    return max(Text(line).cell_len for line in text.split("\n"))


def _widest_word(text: str) -> int:
    return max((Text(word).cell_len for word in text.split()), default=0)


# Numbers: one format per kind of quantity, the same in every table (docs/quantities.md).
def kwh(value: float) -> str:
    """Energy (kWh): thousands separated, two decimals."""
    return f"{value:,.2f}"


def money(value: float) -> str:
    """Money (the scenario's currency): thousands separated, three decimals."""
    return f"{value:,.3f}"


def ratio(value: float | None) -> str:
    """A share or index in [0, 1]: four decimals; a dash where it is undefined."""
    return "-" if value is None or value != value else f"{value:.4f}"


def _price(value: float) -> str:
    """A price to four decimals; a peer that never buys has none (shown as a dash)."""
    return "–" if math.isnan(value) else f"{value:.4f}"


def run_tables(
    result: ClearingResult, billed: ClearingResult | None = None
) -> Sequence[RenderableType]:
    """Headline, per-peer totals over the horizon, and the largest trades. Prices are those
    of `billed` (the clearing the bills use) when given: under the `paper` objective the
    duals of the result are an accounting figure, and the headline says so."""
    billed = billed if billed is not None else result
    s = result.scenario
    hours = s.period_hours
    summary = result.summary()
    t = result.timings
    via = ""
    if abs(summary.link_energy_kwh - summary.traded_energy_kwh) > 1e-9:
        via = f" ({kwh(summary.link_energy_kwh)} kWh over links, counted per hop)"
    head = Text("\n").join(
        [
            Text.assemble(
                (terminal_text(s.name, keep=""), "bold"),
                f": {result.status.value}, design {result.design}, "
                f"objective ({result.objective_kind}) {result.objective:,.4f} "
                f"{terminal_text(s.currency, keep='')}",
            ),
            Text(f"traded energy {kwh(summary.traded_energy_kwh)} kWh between peers{via}"),
            Text(
                f"{plural(len(s.peers), 'peer')} x {plural(s.periods, 'period')} of {hours:g} h; "
                + (
                    f"negotiated by ADMM, {_how_solved(result)}"
                    if result.method == "admm"
                    else f"{result.model} model, {_how_solved(result)}"
                )
            ),
            *_accounting_note(result, billed),
            Text(
                f"{result.n_variables} variables, {result.n_constraints} constraints; build "
                f"{t.build_seconds:.2f} s, solve {t.solve_seconds:.2f} s "
                + (
                    "(the agents' own solves)"
                    if result.method == "admm"
                    else f"(HiGHS {t.solver_seconds:.2f} s)"
                )
            ),
        ]
    )
    d = result.dispatch
    quantities = {
        "generation_kw": "generation",
        "load_kw": "load",
        "flexible_load_kw": "flexible",
        "import_kw": "import",
        "export_kw": "export",
    }
    if not any(p.flexible_load for p in s.peers):
        del quantities["flexible_load_kw"]
    energy = d.groupby("peer", sort=False)[list(quantities)].sum() * hours
    mean_price = billed.dispatch.groupby("peer", sort=False)["price_per_kwh"].mean()
    roles = d.groupby("peer", sort=False)["role"].agg(lambda r: ", ".join(sorted(set(r))))
    peers = Grid(
        f"Per peer over the horizon (kWh; mean price in {s.currency}/kWh)",
        [
            Col("peer"),
            Col("role"),
            *(Col(q, True) for q in quantities.values()),
            Col("price", True),
        ],
        (
            [
                str(peer),
                str(roles.loc[peer]),
                *(kwh(v) for v in energy.loc[peer].to_numpy()),
                _price(float(mean_price.loc[peer])),
            ]
            for peer in energy.index
        ),
    )
    top = result.trades.sort_values("energy_kwh", ascending=False).head(MAX_TRADE_ROWS)
    trades = Grid(
        _trade_title(result),
        [
            Col("period"),
            Col("seller"),
            Col("buyer"),
            Col("route"),
            Col("energy kWh", True),
            Col(f"fee {s.currency}/kWh", True),
        ],
        (
            [
                str(row["period"]),
                str(row["seller"]),
                str(row["buyer"]),
                str(row["route"]),
                kwh(row["energy_kwh"]),
                f"{row['fee_per_kwh']:.5f}",
            ]
            for _, row in top.sort_values(["period", "seller", "buyer"]).iterrows()
        ),
        key=3,
    )
    out: list[RenderableType] = [head, peers, trades]
    storage = storage_summary(result)
    if len(storage):
        out.append(storage_table(storage, "Storage over the horizon"))
    return out


def _trade_title(result: ClearingResult) -> str:
    n = len(result.trades)
    shown = f"the {MAX_TRADE_ROWS} largest of {n}" if n > MAX_TRADE_ROWS else f"all {n}"
    return f"Trades over each link ({shown})"


def _accounting_note(result: ClearingResult, billed: ClearingResult) -> list[Text]:
    """One sentence when the prices shown are not the cleared objective's own duals."""
    if billed is result or result.objective_kind != Objective.PAPER:
        return []
    return [Text(terminal_text(billed_prices_note(result, billed)), style="italic")]


def bills_table(settlement: Settlement, result: ClearingResult | None = None) -> Grid:
    """Each peer's cost in the market against the no-trading baseline. With `result` (the
    market as cleared), the caption says when the bills are of another clearing."""
    c = settlement.currency
    notes = [settlement.baseline_note, f"Prices from the {settlement.cleared_with} clearing."]
    if result is not None and result.objective_kind != settlement.cleared_with:
        notes[1] = (
            f"Cleared under the {result.objective_kind} objective, whose duals are no prices, "
            f"the market is billed on its {settlement.cleared_with} clearing: its trades "
            "(bought, sold) may differ from those above."
        )
    rows = []
    for row in settlement.bills.to_dict("records"):
        paid = row["paid_energy"] + row["paid_fees"]
        received = row["received_energy"] + row["received_fees"]
        rows.append(
            [
                str(row["peer"]),
                kwh(row["bought_kwh"]),
                kwh(row["sold_kwh"]),
                f"{paid:,.2f}",
                f"{received:,.2f}",
                *(money(row[k]) for k in ("cost_market", "cost_baseline", "savings")),
            ]
        )
    return Grid(
        f"Bills ({settlement.rule} pricing, {c}; fees to {settlement.fee_collector}; "
        f"cost = generation + paid - received; 'grid only' = trading with the grid alone)",
        [
            Col("peer"),
            *(
                Col(h, True)
                for h in (
                    "bought kWh",
                    "sold kWh",
                    "paid",
                    "received",
                    "cost",
                    "grid only",
                    "saves",
                )
            ),
        ],
        rows,
        caption=" ".join(note for note in notes if note),
    )


def comparison_tables(comparison: Comparison) -> Sequence[RenderableType]:
    """Markets side by side (money, then energy), then each peer's savings in each market.

    Markets are numbered (`#`) and named by their unique label: the scenario's, then its
    design and rule, without the parts every market shares (they go to the titles)."""
    t = comparison.table.reset_index(drop=True)
    shared = [k for k in MARKET_KEY if t[k].nunique() == 1 and k != "scenario"]
    varying = [k for k in MARKET_KEY if k not in shared]
    names = [
        "\n".join(
            [str(row["scenario"]), " / ".join(str(row[k]) for k in varying if k != "scenario")]
        ).strip()
        for row in t.to_dict("records")
    ]
    same = "; ".join(
        f"{k} {t[k].iloc[0]}" for k in shared if (k, t[k].iloc[0]) != ("method", "central")
    )
    note = f" ({same})" if same else ""
    number = [f"#{i + 1}" for i in range(len(t))]
    currency = str(t["currency"].iloc[0]) if "currency" in t and len(t) else ""
    money_table = Grid(
        f"Markets side by side{note}: cost and savings ({currency})",
        [
            Col("#"),
            Col("market"),
            Col("objective", True),
            Col("total cost", True),
            Col("savings", True),
            Col("Jain", True),
            Col("Gini", True),
        ],
        (
            [
                number[i],
                names[i],
                money(row["objective"]),
                money(row["total_cost"]),
                money(row["savings_total"]),
                ratio(row["savings_jain_index"]),
                ratio(row["savings_gini"]),
            ]
            for i, row in enumerate(t.to_dict("records"))
        ),
        key=2,
        caption="objective: as cleared, under each scenario's objective; total cost: the "
        "system cost; savings: of the peers other than the grid, against trading with the "
        "grid alone; Jain, Gini: fairness of those savings (docs/quantities.md).",
    )
    energy_table = Grid(
        f"Markets side by side{note}: energy delivered between peers (kWh)",
        [
            Col("#"),
            Col("market"),
            Col("traded", True),
            Col("inside", True),
            Col("between", True),
            Col("with grid", True),
            Col("self-\nsufficiency", True),
        ],
        (
            [
                number[i],
                names[i],
                kwh(row["traded_total_kwh"]),
                kwh(row["traded_inside_kwh"]),
                kwh(row["traded_between_kwh"]),
                kwh(row["traded_with_grid_kwh"]),
                ratio(row["self_sufficiency"]),
            ]
            for i, row in enumerate(t.to_dict("records"))
        ),
        key=2,
        caption="traded: each kWh counted once from its seller to its final buyer, = inside "
        "a community + between communities + with the grid.",
    )
    b = comparison.bills
    index = pd.MultiIndex.from_frame(t[list(MARKET_KEY)])
    where = pd.Series(number, index=index)
    b = b.assign(market=where.reindex(pd.MultiIndex.from_frame(b[list(MARKET_KEY)])).to_numpy())
    wide = b.pivot_table(index="peer", columns="market", values="savings", sort=False)
    wide = wide.reindex(columns=[n for n in number if n in wide.columns])
    savings = Grid(
        f"Savings per peer against trading with the grid alone ({currency}); "
        "columns: the markets # above",
        [Col("peer"), *(Col(str(m), True) for m in wide.columns)],
        (
            [str(peer), *(money(v) if v == v else "-" for v in values.to_numpy())]
            for peer, values in wide.iterrows()
        ),
    )
    return [money_table, energy_table, savings]


_CASE_LABELS = {
    "five-peer-case-1": "5-peer I",
    "five-peer-case-2": "5-peer II",
    "seventeen-peer-case-1": "17-peer I",
    "seventeen-peer-case-2": "17-peer II",
    "seventeen-peer-case-1/2": "17-peer I/II",
    "seventeen-peer-case-3": "17-peer III",
}


def case_label(name: str) -> str:
    """A paper case's short name (`five-peer-case-2` -> `5-peer II`); others as they are."""
    return _CASE_LABELS.get(name, name)


def paper_table(checks: Iterable[PaperCheck]) -> Grid:
    """One row per published figure or statement; notes are numbered under the table."""
    notes: list[str] = []
    rows: list[list[Cell]] = []
    for c in checks:
        if c.deviation is None:
            mark = Text("agrees", "green") if c.matches else Text("differs", "yellow")
        elif c.matches:
            mark = Text("=", "green")
        else:
            mark = Text(f"{c.deviation:+.6g}", "yellow")
        ref = ""
        if c.note:
            if c.note not in notes:
                notes.append(c.note)
            ref = f"[{notes.index(c.note) + 1}]"
        paper = c.paper_says if c.paper is None else f"{c.paper:.6g}"
        rows.append([case_label(c.case), c.quantity, paper, f"{c.ours:.6g}", mark, ref])
    legend = ", ".join(f"{short}: {name}" for name, short in _CASE_LABELS.items())
    return Grid(
        "Moreno et al. 2021: the paper's figures beside ours",
        [
            Col("case"),
            Col("quantity"),
            Col("paper"),
            Col("ours", True),
            Col("deviation", True),
            Col("note"),
        ],
        rows,
        key=2,
        caption="\n".join(
            [f"Cases: {legend}.", *(f"[{i}] {n}" for i, n in enumerate(notes, start=1))]
        ),
    )


def storage_table(summary: pd.DataFrame, title: str) -> Grid:
    labels = {
        "peer": "peer",
        "capacity_kwh": "capacity kWh",
        "charged_kwh": "in kWh",
        "discharged_kwh": "out kWh",
        "losses_kwh": "lost kWh",
        "charging_cycles": "cycles",
        "equivalent_full_cycles": "full cycles",
        "simultaneous_periods": "in+out periods",
    }
    return Grid(
        title,
        [Col(label, label != "peer") for label in labels.values()],
        (
            [str(row[k]) if isinstance(row[k], str | int) else f"{row[k]:,.2f}" for k in labels]
            for row in summary.to_dict("records")
        ),
        caption="in: energy charged; out: discharged; lost: to efficiency; cycles: runs of "
        "charging periods; full cycles: out / capacity; in+out periods: periods that charge "
        "and discharge at once.",
    )


def role_table(changes: pd.DataFrame, title: str) -> Grid:
    return Grid(
        title,
        [
            Col("peer"),
            Col("declared role"),
            Col("roles taken"),
            Col("changes", True),
            Col("first change (hour)", True),
        ],
        (
            [
                str(row["peer"]),
                str(row["declared_role"]),
                str(row["roles"]),
                str(row["changes"]),
                str(int(row["first_change"]) + 1),
            ]
            for row in changes.to_dict("records")
        ),
    )


def design_table(designs: pd.DataFrame) -> Grid:
    return Grid(
        "Each case under the three market designs (objective in $)",
        [
            Col("case"),
            Col("design"),
            Col("paper objective", True),
            Col("system-cost objective", True),
            Col("traded kWh", True),
            Col("link kWh (per hop)", True),
        ],
        (
            [
                case_label(str(row["case"])),
                str(row["design"]),
                f"{row['paper']:.6g}",
                f"{row['system-cost']:.6g}",
                kwh(row["traded_energy_kwh"]),
                kwh(row["link_energy_kwh"]),
            ]
            for _, row in designs.iterrows()
        ),
        key=2,
        caption="traded: energy delivered between peers, each kWh once; link: over trade "
        "links, a kWh through a community manager counted into and out of it (paper "
        "objective's clearing).",
    )


def _how_solved(result: ClearingResult) -> str:
    """`periods solved together`, or the rolling horizon's windows and look-ahead."""
    if not result.windows:
        return f"periods solved {result.periods_solved}"
    _, kept, solved = result.windows[0]
    ahead = solved - kept
    return (
        f"cleared in {plural(len(result.windows), 'rolling window')} of "
        f"{plural(kept, 'period')}, look-ahead {plural(ahead, 'period')}"
    )
