"""Meter readings: CSV or JSON files of what each member drew from or fed into the network per
period, read into the table `p2pmarket.core.settlement.imbalance.settle_imbalance` takes
(docs/imbalance.md).

CSV: a header naming the columns `peer,period,net_kwh` (in any order, no others), then one
row per reading:

    peer,period,net_kwh
    P2,0,142.0
    P3,0,-61

JSON: a list of objects with exactly those keys, or `{"readings": [...]}`.

`net_kwh` is positive when the member drew energy from the network, negative when it fed
energy in; `period` is the 0-based period of the scenario. A file is at most 50 MB
(`MAX_READINGS_BYTES`, as a CSV file of a scenario), UTF-8. Here each value is checked for
its type (a peer id as text, a whole period >= 0, a finite number of kWh); whether the
peers and periods are the scenario's, and whether any is missing or given twice, is checked
by `settle_imbalance`. Every refusal is one `ScenarioError` naming the field (`readings`,
`readings.peer`, `readings.period`, `readings.net_kwh`) and the row, showing at most a
40-character excerpt of the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np
import pandas as pd

from p2pmarket.core.scenario.limits import MAX_CSV_BYTES, MAX_TEXT_CHARS
from p2pmarket.core.scenario.messages import excerpt, plural, show, suggest
from p2pmarket.core.settlement.imbalance import READING_COLUMNS
from p2pmarket.errors import ScenarioError
from p2pmarket.io.scenario_files import _decode, _read_bounded

__all__ = ["MAX_READINGS_BYTES", "parse_meter_readings", "read_meter_readings"]

MAX_READINGS_BYTES = MAX_CSV_BYTES
"""The largest readings file or text: 50 MB (about 2 million readings as CSV)."""

Format = Literal["csv", "json"]
_FIELD = "readings"
_LARGEST_PERIOD = 2**53  # every whole number up to here is exact as a float


def read_meter_readings(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The readings of a file (`.json` is read as JSON, anything else as CSV) as a table with
    columns `peer` (text), `period` (int64) and `net_kwh` (float64), in the file's order."""
    file = Path(path)
    format: Format = "json" if file.suffix.lower() == ".json" else "csv"
    data = _read_bounded(file, MAX_READINGS_BYTES, _FIELD, file.name, "meter-readings file")
    return _parse(_decode(data, MAX_READINGS_BYTES, file.name, _FIELD), format, show(file.name))


def parse_meter_readings(
    text: str | bytes, *, format: Format = "csv", name: str | None = None
) -> pd.DataFrame:
    """Readings given as text (CSV or JSON; `bytes` must be UTF-8), as a service receives
    them; `name`, when given, is how messages call them. The same table as
    `read_meter_readings`."""
    if format not in ("csv", "json"):
        raise ScenarioError(_FIELD, f"format {show(format)}: expected 'csv' or 'json'")
    shown = show(name) if name is not None else ""
    if isinstance(text, bytes):
        text = _decode(text, MAX_READINGS_BYTES, shown or "the readings", _FIELD)
    elif len(text) > MAX_READINGS_BYTES:
        raise ScenarioError(
            _FIELD,
            f"{shown or 'the readings'}: more than the limit of {MAX_READINGS_BYTES:,} characters",
        )
    return _parse(text, format, shown)


def _parse(text: str, format: Format, name: str) -> pd.DataFrame:
    if format == "json":
        peers, periods, energies = _from_json(text, name)
        where = _Where(name, None)
    else:
        peers, periods, energies, where = _from_csv(text, name)
    return _table(peers, where.periods(periods), energies)


class _Where:
    """How a message names row `row` (0-based) of the readings: `meter.csv row 3 (line 4)`;
    `lines` holds each row's line of a CSV file (None for JSON)."""

    def __init__(self, name: str, lines: list[int] | None, cells: list[str] | None = None):
        self.name = name
        self.lines = lines
        self.period_cells = cells

    def __call__(self, row: int) -> str:
        line = f" (line {self.lines[row]})" if self.lines is not None else ""
        return f"{self.name} row {row + 1}{line}".lstrip()

    def refuse(self, row: int, column: str, what: str) -> NoReturn:
        raise ScenarioError(f"{_FIELD}.{column}", f"{self(row)}: {what}")

    def periods(self, values: np.ndarray) -> np.ndarray:
        """Periods as int64: whole numbers from 0 (whether they are the scenario's is checked
        by `settle_imbalance`)."""
        ok = (values >= 0) & (values <= _LARGEST_PERIOD) & (values == np.floor(values))
        bad = np.flatnonzero(~ok)
        if bad.size:
            row = int(bad[0])
            cells = self.period_cells
            shown = excerpt(cells[row]) if cells is not None else show(_plain(values[row]))
            self.refuse(row, "period", f"{shown} is not a period (a whole number from 0)")
        return values.astype(np.int64)


# --- CSV -------------------------------------------------------------------------------


def _from_csv(text: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Where]:
    subject = name or "the readings"
    end = text.find("\n")
    first = text[: end if end >= 0 else len(text)]
    if first.count(",") >= 10:  # never parse (or show) a wide header: it is no readings file
        raise ScenarioError(
            _FIELD, f"{subject} has {first.count(',') + 1:,} columns or more, expected 3"
        )
    reader = csv.reader(io.StringIO(text.rstrip("\r\n"), newline=""), strict=True)
    try:
        header = next(reader, [])
        if not any(header):
            raise ScenarioError(
                _FIELD,
                f"{subject} has no header: the first line names the columns peer,period,net_kwh",
            )
        _check_keys(header, f"the header of {name}" if name else "the header")
        order = [header.index(c) for c in READING_COLUMNS]
        cells: list[list[str]] = [[], [], []]
        lines: list[int] = []
        for fields in reader:
            lines.append(reader.line_num)
            if len(fields) != 3:
                what = "is blank" if not fields else f"has {plural(len(fields), 'cell')}"
                raise ScenarioError(
                    _FIELD, f"{_Where(name, lines)(len(lines) - 1)} {what}, expected 3 cells"
                )
            for column, at in zip(cells, order, strict=True):
                column.append(fields[at])
    except csv.Error as exc:
        detail = excerpt(" ".join(str(exc).split()), 120)[1:-1]
        raise ScenarioError(_FIELD, f"{subject} line {reader.line_num}: {detail}") from None
    peer_cells, period_cells, energy_cells = cells
    where = _Where(name, lines, period_cells)
    peers = np.array(peer_cells, dtype=object)
    lengths = np.fromiter(map(len, peer_cells), dtype=np.int64, count=len(peer_cells))
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        where.refuse(int(empty[0]), "peer", "the peer is empty")
    long = np.flatnonzero(lengths > MAX_TEXT_CHARS)
    if long.size:
        row = int(long[0])
        where.refuse(row, "peer", f"the peer id is {_too_long(int(lengths[row]))}")
    periods = _numbers(period_cells, "period", where)
    energies = _numbers(energy_cells, "net_kwh", where)
    bad = np.flatnonzero(~np.isfinite(energies))
    if bad.size:
        row = int(bad[0])
        where.refuse(row, "net_kwh", f"{excerpt(energy_cells[row])} is not a finite number")
    return peers, periods, energies, where


def _numbers(cells: list[str], column: str, where: _Where) -> np.ndarray:
    """The cells as float64, converted at once; a cell that is no number is refused."""
    values = pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").to_numpy(float)
    bad = np.flatnonzero(np.isnan(values))
    if bad.size:
        row = int(bad[0])
        text = cells[row]
        if not text.strip():
            where.refuse(row, column, f"{column} is empty")
        finite = "finite " if text.strip().lower().lstrip("+-") == "nan" else ""
        where.refuse(row, column, f"{excerpt(text)} is not a {finite}number")
    return values


# --- JSON ------------------------------------------------------------------------------


def _from_json(text: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    subject = name or "the readings"
    where = _Where(name, None)
    try:
        data = json.loads(text, object_pairs_hook=_json_object, parse_constant=_constant)
    except ScenarioError:
        raise
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            _FIELD, f"{subject} are not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise ScenarioError(_FIELD, f"{subject}: nesting too deep for readings") from None
    except ValueError:  # Python's limit of 4,300 digits for an int
        raise ScenarioError(
            _FIELD, f"{subject} hold a whole number of more than 4,300 digits"
        ) from None
    if isinstance(data, dict):
        if list(data) != ["readings"]:
            extra = next((k for k in data if k != "readings"), None)
            hint = f"unknown key {show(extra)}" if extra is not None else "no key 'readings'"
            raise ScenarioError(_FIELD, f"{subject}: {hint}; {_JSON_SHAPE}")
        data = data["readings"]
    if not isinstance(data, list):
        raise ScenarioError(_FIELD, f"{subject}: a JSON {_kind(data)}; {_JSON_SHAPE}")
    rows = len(data)
    peers = np.empty(rows, dtype=object)
    periods = np.empty(rows, dtype=float)
    energies = np.empty(rows, dtype=float)
    for row, item in enumerate(data):
        if not isinstance(item, dict):
            raise ScenarioError(_FIELD, f"{where(row)}: a JSON {_kind(item)}, expected an object")
        if len(item) != 3 or any(k not in item for k in READING_COLUMNS):
            _check_keys(list(item), where(row))
        peer, period, energy = item["peer"], item["period"], item["net_kwh"]
        if not isinstance(peer, str) or not peer:
            what = "is empty" if peer == "" else f"is a JSON {_kind(peer)}, not text"
            where.refuse(row, "peer", f"the peer {what}")
        if len(peer) > MAX_TEXT_CHARS:
            where.refuse(row, "peer", f"the peer id is {_too_long(len(peer))}")
        if not _is_number(period) or (isinstance(period, int) and period > _LARGEST_PERIOD):
            where.refuse(row, "period", f"{show(period)} is not a period (a whole number from 0)")
        if not _is_number(energy) or not _finite(energy):
            where.refuse(row, "net_kwh", f"{show(energy)} is not a finite number")
        peers[row], periods[row], energies[row] = peer, float(period), float(energy)
    return peers, periods, energies


_JSON_SHAPE = 'expected a list of readings or {"readings": [...]}'


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ScenarioError(_FIELD, f"the key {show(key)} is given twice in one JSON object")
    return result


def _constant(token: str) -> float:
    raise ScenarioError(_FIELD, f"{token} is not a finite number (JSON has no {token})")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a whole number beyond any float
        return False


def _kind(value: object) -> str:
    kinds = {dict: "object", list: "list", str: "text", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


# --- both ------------------------------------------------------------------------------


def _check_keys(keys: Sequence[object], where: str) -> None:
    """Exactly the columns peer, period, net_kwh, each once."""
    for key in keys:
        if key not in READING_COLUMNS:
            raise ScenarioError(
                _FIELD,
                f"{where}: unknown column {show(key)} (refused, not ignored);"
                f" {suggest(key, READING_COLUMNS)}",
            )
    for key in READING_COLUMNS:
        if key not in keys:
            raise ScenarioError(
                _FIELD, f"{where} lacks {key!r}: a reading is {', '.join(READING_COLUMNS)}"
            )
    if len(keys) != len(READING_COLUMNS):
        repeated = next(k for k in READING_COLUMNS if list(keys).count(k) > 1)
        raise ScenarioError(_FIELD, f"{where}: the column {repeated!r} is given twice")


def _plain(value: float) -> float | int:
    return int(value) if math.isfinite(value) and value.is_integer() else float(value)


def _too_long(length: int) -> str:
    return f"{plural(length, 'character')} long, more than a peer id may be ({MAX_TEXT_CHARS})"


def _table(peers: np.ndarray, periods: np.ndarray, energies: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "peer": pd.Series(peers, dtype=object),
            "period": pd.Series(periods, dtype=np.int64),
            "net_kwh": pd.Series(energies, dtype=np.float64),
        }
    )
