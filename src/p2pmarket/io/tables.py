"""Every table of a run as CSV or Parquet, and back (SPEC C7).

`result_tables` gathers the tables of a result; `write_tables` writes them as `NAME.csv` or
`NAME.parquet` (Parquet needs pyarrow: `pip install 'p2pmarket[parquet]'`) together with a
manifest, `tables.json`, that records each table's column types, so that `read_tables` gives
back equal tables from either format. Every file is written through a temporary file and a
rename.

CSV conventions: a missing value is an empty field and nothing else (a peer called `NA` stays
`NA`); every float is written rounded to 6 decimals, in positional notation, without trailing
zeros and never as `-0` (docs/prices.md, "Precision"): read back, it is within 5e-7 of the
value in memory. Parquet keeps floats exactly.
"""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from p2pmarket.core.analysis import role_changes, storage_summary
from p2pmarket.core.results import ClearingResult
from p2pmarket.errors import MissingExtraError, OptionError, ScenarioError
from p2pmarket.io.atomic import write_bytes_atomic, write_text_atomic

__all__ = [
    "FORMATS",
    "MANIFEST",
    "csv_text",
    "peer_totals",
    "read_table",
    "read_tables",
    "result_tables",
    "write_table",
    "write_tables",
]

FORMATS = ("csv", "parquet")
MANIFEST = "tables.json"
_NUMERIC = ("int64", "float64", "bool")
_DECIMALS = 6
"""Decimals of every float in a CSV file: 1e-6 kW, kWh, currency or currency/kWh."""


def peer_totals(result: ClearingResult) -> pd.DataFrame:
    """One row per peer: energy over the horizon (kWh) and its mean price ($/kWh)."""
    d = result.dispatch
    hours = result.scenario.period_hours
    columns = {
        "generation_kw": "generation_kwh",
        "load_kw": "load_kwh",
        "flexible_load_kw": "flexible_load_kwh",
        "charge_kw": "charge_kwh",
        "discharge_kw": "discharge_kwh",
        "import_kw": "import_kwh",
        "export_kw": "export_kwh",
    }
    grouped = d.groupby("peer", sort=False)
    totals = (grouped[list(columns)].sum() * hours).rename(columns=columns)
    totals.insert(0, "declared_role", grouped["declared_role"].first())
    totals.insert(0, "community", grouped["community"].first())
    totals["mean_price_per_kwh"] = grouped["price_per_kwh"].mean()
    totals = totals.reindex(list(result.scenario.peer_ids))
    return canonical(totals.rename_axis("peer").reset_index())


def result_tables(
    result: ClearingResult,
    *,
    bills: pd.DataFrame | None = None,
    settlement: pd.DataFrame | None = None,
    prices: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The tables of a result, by name: `dispatch`, `trades`, `prices` (`prices` when given:
    the prices the bills use), `peer_totals`, `storage` (one row per storage unit),
    `role_changes`, and `bills` and `settlement` (the settled trades) when given."""
    tables = {
        "dispatch": result.dispatch,
        "trades": result.trades,
        "prices": result.prices if prices is None else prices,
        "peer_totals": peer_totals(result),
        "storage": storage_summary(result),
        "role_changes": role_changes(result),
    }
    if bills is not None:
        tables["bills"] = bills
    if settlement is not None:
        tables["settlement"] = settlement
    return {name: canonical(table) for name, table in tables.items()}


def canonical(table: pd.DataFrame) -> pd.DataFrame:
    """A plain copy: a fresh range index, and text columns (text or missing values) typed
    as pandas strings, so that the table reads back from CSV or Parquet as it was."""
    out = table.reset_index(drop=True).copy()
    for column in out.columns:
        values = out[column]
        if values.dtype == object and len(values) and values.map(_is_text_or_missing).all():
            out[column] = values.astype("str")
    return out


def _is_text_or_missing(value: object) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, float) and value != value)


def csv_text(table: pd.DataFrame) -> str:
    """A table as CSV text in the one convention of every CSV p2pmarket writes (a missing
    value is an empty field; no index; floats rounded to 6 decimals, `-0` written `0`; a text
    cell a spreadsheet would take for a formula is quoted, see `_neutralised`; a cell with a
    carriage return is in double quotes, so that no reader takes it for the end of a row).

    Tables of numbers, text and booleans are written column by column, each distinct cell
    formatted once (a year of dispatch, 876,000 rows, in about a second where pandas'
    writer takes fifteen); any other table through pandas' writer (`pandas_csv_text`), the
    same text (tests/test_output_injection.py compares the two)."""
    cells = _column_cells(table)
    if cells is None:
        return pandas_csv_text(table)
    header = ",".join(_quoted(str(c)) for c in table.columns) + "\n"
    if not len(table):
        return header
    return header + "\n".join(map(",".join, zip(*cells, strict=True))) + "\n"


def pandas_csv_text(table: pd.DataFrame) -> str:
    """`csv_text` through pandas' CSV writer, for any table."""
    text = _rounded(_neutralised(table)).to_csv(index=False, na_rep="", lineterminator="\r\n")
    return _lf_rows(text)


def _column_cells(table: pd.DataFrame) -> list[list[str]] | None:
    """Each column's cells as CSV text, or None where a column is of a type left to pandas
    (dates, nullable integers, mixed objects...) or the table has fewer than two columns
    (a one-column CSV writes an empty text cell as `""`)."""
    if table.shape[1] < 2 or not table.columns.is_unique:
        return None
    columns = []
    for name in table.columns:
        values = table[name]
        kind = values.dtype.kind
        if kind == "f":
            columns.append(_float_cells(values.to_numpy(dtype=float), missing="").tolist())
        elif kind in "iu" and isinstance(values.dtype, np.dtype):
            columns.append(list(map(str, values.to_numpy().tolist())))
        elif kind == "b" and isinstance(values.dtype, np.dtype):
            columns.append(np.where(values.to_numpy(), "True", "False").tolist())
        elif kind == "O":
            codes, distinct = pd.factorize(values, use_na_sentinel=True)
            if not all(isinstance(v, str) for v in distinct):
                return None
            texts = [_quoted(_neutral(v)) for v in distinct]
            columns.append(np.array([*texts, ""], dtype=object)[codes].tolist())
        else:
            return None
    return columns


def _quoted(text: str) -> str:
    """A cell as the csv module's minimal quoting writes it: in double quotes (its own
    doubled) where it holds a comma, a quote or a line break."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _lf_rows(text: str) -> str:
    """CSV text written with CRLF row ends (so that the writer quotes every cell holding a
    CR or LF) with LF row ends: a CRLF is a row end where an even number of `"` precede it,
    and inside a quoted cell otherwise."""
    if '"' not in text:  # no quoted cell: every CRLF is a row end
        return text.replace("\r\n", "\n")
    rows, quotes, pieces = [], 0, text.split("\r\n")
    for n, piece in enumerate(pieces):
        quotes += piece.count('"')
        rows.append(piece)
        if n < len(pieces) - 1:
            rows.append("\n" if quotes % 2 == 0 else "\r\n")
    return "".join(rows)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What a text cell may not start with in a CSV file: a spreadsheet reads it as a formula."""


def _needs_quote(text: str) -> bool:
    """Whether `text` is written with a `'` before it: it starts, after any `'`, with a
    character of `_FORMULA_START` (the `'`s count so that one is taken away on reading
    only where one was added: `'=x` is written `''=x`)."""
    return text.lstrip("'").startswith(_FORMULA_START)


def _neutralised(table: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (`=HYPERLINK(...)`, `+1`, `-x`,
    `@x`, a leading tab or CR) with a single quote before them (OWASP's advice against CSV
    injection; docs/security.md). Numbers are not text cells: a float or integer column keeps
    `-0.5` as it is. `_restored` takes the quote away on reading."""
    return _map_text(table, _neutral)


def _neutral(text: str) -> str:
    """One text cell as `_neutralised` writes it."""
    return "'" + text if _needs_quote(text) else text


def _restored(table: pd.DataFrame) -> pd.DataFrame:
    """A table read from a CSV file p2pmarket wrote, with the quote `_neutralised` put before
    a text cell taken away again: the cell as it was."""
    return _map_text(table, lambda v: v[1:] if v[:1] == "'" and _needs_quote(v[1:]) else v)


def _map_text(table: pd.DataFrame, change: Callable[[str], str]) -> pd.DataFrame:
    """`table` with `change` applied to every text cell (a copy only if one changes)."""
    out = table
    for column in table.columns:
        values = table[column]
        if values.dtype.kind != "O":
            continue
        # Each distinct cell changed once: a column of a million rows has few distinct names.
        distinct = pd.unique(values.dropna())
        new = {v: change(v) for v in distinct if isinstance(v, str)}
        if all(new[v] == v for v in new):
            continue
        changed = values.map(lambda v, new=new: new.get(v, v), na_action="ignore")
        changed = changed.astype(values.dtype)  # an all-missing text column stays text
        if not changed.equals(values):
            if out is table:
                out = table.copy()
            out[column] = changed
    return out


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    """Float columns as text: rounded to `_DECIMALS`, positional, trailing zeros dropped
    but one (`2.0`), negative zero as `0.0`, missing values as missing."""
    floats = [c for c in table.columns if table[c].dtype.kind == "f"]
    if not floats:
        return table
    out = table.copy()
    for column in floats:
        cells = _float_cells(table[column].to_numpy(dtype=float))
        out[column] = pd.Series(cells, index=table.index, dtype=object)
    return out


def _float_cells(
    values: np.ndarray[Any, np.dtype[np.float64]], missing: str | None = None
) -> np.ndarray[Any, Any]:
    """Floats as text (objects), `_rounded`'s convention; `missing` where NaN."""
    values = np.round(values, _DECIMALS) + 0.0
    # Each distinct value written once (a year of dispatch holds many repeated ones), found
    # by hashing (a sort of each column of a year's dispatch cost seconds); NaN is code -1.
    at, distinct = pd.factorize(values.reshape(-1), use_na_sentinel=True)
    distinct = np.asarray(distinct, dtype=float)
    text = np.char.mod(f"%.{_DECIMALS}f", distinct)
    text = np.char.rstrip(np.char.rstrip(text, "0"), ".")
    whole = np.isfinite(distinct) & (np.char.find(text, ".") < 0)
    text = np.where(whole, np.char.add(text, ".0"), text)
    cells = np.append(text.astype(object), np.array([missing], dtype=object))
    result: np.ndarray[Any, Any] = cells[at]
    return result


def write_table(table: pd.DataFrame, path: Path, *, format: str = "csv") -> Path:
    """Write one table as CSV or Parquet at `path`, atomically."""
    _check_format(format)
    if format == "csv":
        write_text_atomic(path, csv_text(table))
    else:
        _require_pyarrow()
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False, engine="pyarrow")
        write_bytes_atomic(path, buffer.getvalue())
    return path


def write_tables(
    tables: Mapping[str, pd.DataFrame], out: Path, *, format: str = "csv"
) -> list[Path]:
    """Write every table as `out/NAME.csv` (or `.parquet`), then the manifest `tables.json`.

    The manifest keeps what earlier calls wrote in `out` in the other format, so a directory
    can hold both. Returns the paths written, the manifest last.
    """
    _check_format(format)
    if format == "parquet":
        _require_pyarrow()
    manifest = _read_manifest(out) if (out / MANIFEST).is_file() else {}
    written = []
    for name, table in tables.items():
        path = write_table(table, out / f"{name}.{format}", format=format)
        entry = manifest.get(name, {})
        files = entry.get("files", {}) if entry.get("columns") == _dtypes(table) else {}
        manifest[name] = {
            "columns": _dtypes(table),
            "rows": len(table),
            "files": {**files, format: path.name},
        }
        written.append(path)
    manifest_path = out / MANIFEST
    write_text_atomic(manifest_path, json.dumps({"tables": manifest}, indent=2) + "\n")
    return [*written, manifest_path]


def read_tables(out: Path, *, format: str = "csv") -> dict[str, pd.DataFrame]:
    """Every table listed in `out/tables.json` that was written in `format`, by name."""
    _check_format(format)
    manifest = _read_manifest(out)
    return {
        name: read_table(out / entry["files"][format], dtypes=entry["columns"])
        for name, entry in manifest.items()
        if format in entry.get("files", {})
    }


def read_table(path: Path, *, dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One table from a `.csv` or `.parquet` file; `dtypes` (column -> type name, as in the
    manifest) restores the column types of a CSV file."""
    if not path.is_file():
        raise ScenarioError("table", f"no table file at {str(path)!r}")
    if path.suffix == ".parquet":
        _require_pyarrow()
        return pd.read_parquet(path, engine="pyarrow")
    dtypes = dict(dtypes or {})
    table = pd.read_csv(
        path,
        dtype={c: t for c, t in dtypes.items() if t in (*_NUMERIC, "str", "object")},
        keep_default_na=False,
        na_values=[""],
    )
    if dtypes and list(table.columns) != list(dtypes):
        raise ScenarioError(
            "table", f"{path.name} has columns {list(table.columns)}, expected {list(dtypes)}"
        )
    return _restored(table)


def _dtypes(table: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in table.dtypes.items()}


def _read_manifest(out: Path) -> dict[str, dict[str, Any]]:
    path = out / MANIFEST
    try:
        tables = json.loads(path.read_text(encoding="utf-8"))["tables"]
    except FileNotFoundError:
        raise ScenarioError("tables", f"no {MANIFEST} in {str(out)!r}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScenarioError("tables", f"{str(path)!r} cannot be read: {exc}") from None
    if not isinstance(tables, dict):
        raise ScenarioError("tables", f"{str(path)!r} does not list tables")
    return tables


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise OptionError("format", f"{format!r} is not one of {', '.join(FORMATS)}")


def _require_pyarrow() -> None:
    try:
        importlib.import_module("pyarrow")
    except ImportError:
        raise MissingExtraError("--format parquet", "pyarrow", "parquet") from None
