"""Words for the report's reader, a member of an energy community: labels with units, money
to cents in the currency, shares in per cent, energy to 0.1 kWh, prices to 0.1 cent.

Each key of a result's summary or KPIs has a label and a kind (`Kind`) that says how its
value is written; an unknown key gets its name in words and a kind guessed from its suffix
(`_kwh`, `_per_kwh`, `_seconds`, ...). Keys of the kind `technical` are meant for a collapsed
section; empty values (None, NaN, "") are left out.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "KPI_LABELS",
    "SUMMARY_LABELS",
    "Kind",
    "Label",
    "format_energy",
    "format_money",
    "format_number",
    "format_price",
    "format_share",
    "is_empty",
    "label_of",
    "rows_of",
]

Kind = Literal["money", "energy", "price", "share", "count", "index", "text", "technical"]


@dataclass(frozen=True)
class Label:
    """How one value is shown: its words (units are added by the kind) and its kind."""

    words: str
    kind: Kind


SUMMARY_LABELS: dict[str, Label] = {
    "scenario": Label("scenario", "text"),
    "design": Label("market design", "text"),
    "objective": Label("objective value, as cleared", "money"),
    "objective_kind": Label("objective", "text"),
    "periods": Label("periods", "count"),
    "period_hours": Label("length of a period (h)", "technical"),
    "peers": Label("peers", "count"),
    "trades": Label("trades", "count"),
    "traded_energy_kwh": Label("energy traded", "energy"),
    "generation_kwh": Label("energy generated", "energy"),
    "load_kwh": Label("energy consumed (load)", "energy"),
    "currency": Label("currency", "technical"),
    "status": Label("solver status", "technical"),
    "termination": Label("solver termination", "technical"),
    "variables": Label("variables of the model", "technical"),
    "constraints": Label("constraints of the model", "technical"),
    "model": Label("model", "technical"),
    "periods_solved": Label("periods solved", "technical"),
    "build_seconds": Label("time to build the model (s)", "technical"),
    "solve_seconds": Label("time to solve (s)", "technical"),
    "solver_seconds": Label("time in the solver (s)", "technical"),
    "extract_seconds": Label("time to read the results (s)", "technical"),
}

KPI_LABELS: dict[str, Label] = {
    "rule": Label("pricing rule of the bills", "text"),
    "currency": Label("currency", "technical"),
    "objective": Label("objective value, as cleared", "money"),
    "objective_kind": Label("objective", "technical"),
    "total_cost": Label("total cost of the market", "money"),
    "social_welfare": Label("social welfare (minus the total cost)", "money"),
    "fees_collected": Label("fees collected", "money"),
    "fee_collector": Label("fees collected by", "text"),
    "traded_kwh / inside": Label("energy traded inside communities", "energy"),
    "traded_kwh / between": Label("energy traded between communities", "energy"),
    "traded_kwh / with_grid": Label("energy traded with the grid", "energy"),
    "traded_kwh / total": Label("energy traded in all", "energy"),
    "grid_import_kwh": Label("energy bought from the grid", "energy"),
    "grid_export_kwh": Label("energy sold to the grid", "energy"),
    "self_sufficiency": Label("self-sufficiency (demand met from inside)", "share"),
    "self_consumption": Label("self-consumption (generation used inside)", "share"),
    "savings_total": Label("savings of all peers against grid only", "money"),
    "savings_jain_index": Label("fairness of savings (Jain's index; 1: equal)", "index"),
    "savings_gini": Label("inequality of savings (Gini; 0: equal)", "index"),
    "baseline_note": Label("note on the baseline", "text"),
}
"""The KPIs of `p2pmarket.core.kpis.Kpis`; nested keys joined with ` / `."""

_SUFFIXES: tuple[tuple[str, Kind, str], ...] = (
    ("_per_kwh", "price", ""),
    ("_kwh", "energy", ""),
    ("_seconds", "technical", " (s)"),
    ("_share", "share", ""),
    ("_index", "index", ""),
    ("_cost", "money", ""),
    ("_savings", "money", ""),
)


def label_of(key: str, labels: Mapping[str, Label]) -> Label:
    """The label of `key`: from `labels`, else its words and a kind from its suffix."""
    if key in labels:
        return labels[key]
    last = key.rsplit(" / ", 1)[-1]
    if last in labels:
        head = key.rsplit(" / ", 1)[0].replace("_", " ")
        return Label(f"{head}: {labels[last].words}", labels[last].kind)
    for suffix, kind, unit in _SUFFIXES:
        if last.endswith(suffix):
            words = key.removesuffix(suffix).replace("_", " ").replace(" / ", ": ")
            return Label(words + unit, kind)
    words = key.replace("_", " ").replace(" / ", ": ")
    return Label(words, "text")


def is_empty(value: object) -> bool:
    """None, NaN or blank text: a value not worth a row."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return math.isnan(float(value))
    return False


def format_money(value: float, currency: str) -> str:
    """`1,234.57 USD`, `-0.05 USD`: to cents, the currency after."""
    number = float(value)
    if abs(number) < 0.005:
        number = 0.0
    return f"{number:,.2f} {currency}"


def format_energy(value: float) -> str:
    """`12,151.2 kWh`: to 0.1 kWh (and to 3 significant digits below 1 kWh)."""
    number = float(value)
    if abs(number) < 1e-9:
        return "0 kWh"
    return f"{number:,.1f} kWh" if abs(number) >= 1 else f"{number:.3g} kWh"


def format_price(value: float, currency: str) -> str:
    """`0.1176 USD/kWh`: four decimals (a tenth of a cent)."""
    return f"{float(value):,.4f} {currency}/kWh"


def format_share(value: float) -> str:
    """`56.6 %` for 0.5657."""
    return f"{100 * float(value):.1f} %"


def format_number(value: object) -> str:
    """Integers in full with thousands separated; other numbers to 4 significant digits."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        return "0" if abs(number) < 1e-9 else f"{number:,.4g}"
    return str(value)


def _written(value: object, kind: Kind, currency: str) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        if kind == "money":
            return format_money(float(value), currency)
        if kind == "energy":
            return format_energy(float(value))
        if kind == "price":
            return format_price(float(value), currency)
        if kind == "share":
            return format_share(float(value))
        if kind == "technical" and not isinstance(value, numbers.Integral):
            return f"{float(value):.3g}"
    return format_number(value)


def rows_of(
    items: Mapping[str, object], labels: Mapping[str, Label], currency: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(label, value) rows of `items` (nested mappings flattened with ` / `), empty values
    left out: the rows for a reader, and the technical rows."""
    plain: list[tuple[str, str]] = []
    technical: list[tuple[str, str]] = []
    for key, value in _flat(items).items():
        if is_empty(value):
            continue
        label = label_of(key, labels)
        row = (label.words, _written(value, label.kind, currency))
        (technical if label.kind == "technical" else plain).append(row)
    return plain, technical


def _flat(items: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name} / "))
        else:
            out[name] = value
    return out
