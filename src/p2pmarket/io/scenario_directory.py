"""A scenario's per-period series as CSV files and the scenario document that refers to
them (`{csv: FILE, column: NAME}`, as `p2pmarket.io.scenario_files` reads them back): one
column per peer (community, contract), one file per kind of series, split where a file
would pass the limits a scenario's CSV file is read with. Used by `p2pmarket generate
community` (a scenario directory) and by a run's copy of a long scenario (`write_run`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import BaseModel

from p2pmarket.core.scenario import Community, CommunityFee, FloatArray, Peer, Scenario
from p2pmarket.core.scenario.limits import MAX_CSV_BYTES, MAX_CSV_COLUMNS

__all__ = ["series_files"]

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:>-]{0,199}")
"""A column name written as it is: no quoting, nothing a spreadsheet would run as a formula."""


def series_files(scenario: Scenario, folder: str = "") -> tuple[dict[str, Any], dict[str, str]]:
    """The scenario as a document (plain data, for YAML) whose number series refer to CSV
    files, and those files' texts by name (`folder/` before each name where given)."""
    tables = _Tables(scenario.periods, folder)
    document = tables.externalise(scenario)
    return document, tables.texts()


class _Tables:
    """The per-period series of a scenario, gathered by kind (a file) and column (a peer,
    a community, a contract), and the scenario document that refers to them."""

    def __init__(self, periods: int, folder: str = "") -> None:
        self.periods = periods
        self.folder = f"{folder}/" if folder else ""
        self.kinds: dict[str, dict[str, FloatArray]] = {}
        self.parts: dict[tuple[str, str], str] = {}

    def externalise(self, scenario: Scenario) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for key, value in _fields(scenario):
            if key in ("peers", "communities", "community_fees"):
                document[key] = [self._element(key, item) for item in value]
            else:
                document[key] = self._value(value, key, key)
        self._plan()
        resolved: dict[str, Any] = self._resolve(document)
        return resolved

    def _element(self, kind: str, item: Peer | Community | CommunityFee) -> dict[str, Any]:
        column = f"{item.from_}->{item.to}" if isinstance(item, CommunityFee) else item.id
        prefix = {"peers": "", "communities": "community_", "community_fees": "community_"}[kind]
        return self._mapping(item, prefix, column)

    def _mapping(self, model: BaseModel, prefix: str, column: str) -> dict[str, Any]:
        return {key: self._value(value, prefix + key, column) for key, value in _fields(model)}

    def _value(self, value: Any, kind: str, column: str) -> Any:
        if isinstance(value, BaseModel):
            return self._mapping(value, kind + "_", column)
        if isinstance(value, tuple):
            if value and _is_number(value[0]) and _PLAIN.fullmatch(column):
                self.kinds.setdefault(kind, {})[column] = np.asarray(value, dtype=float)
                return _Reference(kind, column)
            return [self._value(v, f"{kind}_{i}", column) for i, v in enumerate(value)]
        return value

    def _plan(self) -> None:
        """Split each kind into as few files as keep each within MAX_CSV_BYTES and
        MAX_CSV_COLUMNS (the limits a scenario's CSV file is read with), in equal shares of
        columns."""
        self.files: dict[str, list[str]] = {}
        room = MAX_CSV_BYTES - self._period_bytes()
        for kind, columns in self.kinds.items():
            names = list(columns)
            cost = [_bytes_at_most(columns[n]) + len(n) + 1 for n in names]
            count = max(1, -(-sum(cost) // room), -(-len(names) // (MAX_CSV_COLUMNS - 1)))
            while True:
                share = -(-len(names) // count)
                parts = [range(i, min(i + share, len(names))) for i in range(0, len(names), share)]
                if all(sum(cost[i] for i in part) <= room for part in parts):
                    break
                count += 1
            for number, part in enumerate(parts, 1):
                name = f"{kind}.csv" if len(parts) == 1 else f"{kind}-{number}.csv"
                file = self.folder + name
                self.files[file] = [kind, *(names[i] for i in part)]
                for i in part:
                    self.parts[(kind, names[i])] = file

    def _period_bytes(self) -> int:
        return self.periods * (len(str(self.periods)) + 1) + len("period,")

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, _Reference):
            return {"csv": self.parts[(value.kind, value.column)], "column": value.column}
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        return value

    def texts(self) -> dict[str, str]:
        out = {}
        for file, (kind, *names) in self.files.items():
            table = np.column_stack([self.kinds[kind][name] for name in names])
            header = ",".join(["period", *names]) + "\n"
            out[file] = header + "".join(_rows(table))
        return out


class _Reference:
    """A series to be written to a CSV file: replaced by `{csv: FILE, column: NAME}`."""

    __slots__ = ("column", "kind")

    def __init__(self, kind: str, column: str) -> None:
        self.kind = kind
        self.column = column


def _fields(model: BaseModel) -> Iterator[tuple[str, Any]]:
    """A model's fields by their names in the file format; a field left at an empty default
    (None, no items) is left out, every value is written."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if (value is None or value == ()) and field.default == value:
            continue
        yield field.alias or name, value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_watts(values: FloatArray) -> bool:
    """Every value a whole number of thousandths (as the generator rounds them), exactly."""
    return bool(np.array_equal(np.rint(values * 1000) / 1000, values)) and bool(
        np.abs(values).max(initial=0.0) < 1e12
    )


def _bytes_at_most(values: FloatArray) -> int:
    if _in_watts(values):
        digits = len(str(int(np.abs(values).max(initial=0.0))))
        sign = 1 if values.min(initial=0.0) < 0 else 0
        return values.size * (sign + digits + 5)  # digits, ".ddd" and a separator
    return values.size * 26  # repr of a float: at most 24 characters, and a separator


def _rows(table: FloatArray) -> Iterator[str]:
    """The CSV rows `period,v1,v2,...`: thousandths written as `%.3f` without a `.000`
    tail, any other value as Python's shortest repr (read back exactly either way)."""
    if _in_watts(table):
        line = "%d," + ",".join(["%.3f"] * table.shape[1]) + "\n"
        for period, row in enumerate(table.tolist()):
            yield (line % (period, *row)).replace(".000", "")
    else:
        for period, row in enumerate(table.tolist()):
            yield f"{period}," + ",".join(map(repr, row)) + "\n"
