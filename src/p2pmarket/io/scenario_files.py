"""Scenario files: YAML or JSON, with time series inline or from CSV files (SPEC section 5).

A series given as `{csv: FILE, column: NAME}` is read from FILE (relative to the scenario
file) before the scenario is validated, so the core never touches a file. The size limits
(docs/scenario-limits.md) are checked before any CSV file is read; here, at the edge, they
may come from the environment (`P2PMARKET_MAX_PERIODS`, `P2PMARKET_MAX_PEER_PERIODS`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from p2pmarket.core.scenario import Scenario
from p2pmarket.core.scenario.limits import Limits
from p2pmarket.core.scenario.messages import plural, suggest
from p2pmarket.core.scenario.rules import check_size
from p2pmarket.errors import OptionError, ScenarioError
from p2pmarket.io.atomic import write_bytes_atomic, write_text_atomic

__all__ = [
    "ENV_MAX_PEER_PERIODS",
    "ENV_MAX_PERIODS",
    "dump_scenario",
    "limits_from_environ",
    "load_scenario",
    "read_scenario_dict",
    "scenario_yaml",
    "write_bytes_atomic",
    "write_text_atomic",
]

ENV_MAX_PERIODS = "P2PMARKET_MAX_PERIODS"
ENV_MAX_PEER_PERIODS = "P2PMARKET_MAX_PEER_PERIODS"


def limits_from_environ(environ: Mapping[str, str] | None = None) -> Limits:
    """The size limits, each default replaced by its environment variable when set
    (`P2PMARKET_MAX_PERIODS`, `P2PMARKET_MAX_PEER_PERIODS`: whole numbers >= 1; `_` may
    group digits, as in `200_000`)."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for key, name in ((ENV_MAX_PERIODS, "max_periods"), (ENV_MAX_PEER_PERIODS, "max_peer_periods")):
        text = env.get(key)
        if text is None or not text.strip():
            continue
        try:
            value = int(text.strip())
        except ValueError:
            value = 0
        if value < 1:
            raise OptionError(key, f"expected a whole number >= 1, got {text!r}")
        values[name] = value
    return Limits(**values)


def load_scenario(path: str | os.PathLike[str], *, limits: Limits | None = None) -> Scenario:
    """Read and validate a scenario file (`.yaml`, `.yml` or `.json`). `limits` are the size
    limits (default: `limits_from_environ()`)."""
    limits = limits or limits_from_environ()
    return Scenario.from_dict(read_scenario_dict(path, limits=limits), limits=limits)


def read_scenario_dict(
    path: str | os.PathLike[str], *, limits: Limits | None = None
) -> dict[str, Any]:
    """The scenario file as a dict, CSV references replaced by their values. The size limits
    (default: `limits_from_environ()`) are checked before any CSV file is read."""
    file = Path(path)
    if not file.is_file():
        raise ScenarioError("file", f"no scenario file at {str(file)!r}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError("file", f"cannot read {str(file)!r}: {exc}") from None
    data = _parse(text, file)
    if not isinstance(data, Mapping):
        raise ScenarioError("file", f"{str(file)!r} does not hold a mapping of scenario fields")
    periods = data.get("periods", 1)
    check_size(periods, data.get("peers"), limits or limits_from_environ())
    reader = _CsvReader(file.parent, periods if _is_count(periods) else None)
    return {k: reader.resolve(v, str(k)) for k, v in data.items()}


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def dump_scenario(scenario: Scenario, path: str | os.PathLike[str]) -> None:
    """Write a scenario as YAML (or JSON for a `.json` path), atomically."""
    file = Path(path)
    if file.suffix.lower() == ".json":
        text = json.dumps(scenario.to_dict(), indent=2) + "\n"
    else:
        text = scenario_yaml(scenario)
    write_text_atomic(file, text)


def scenario_yaml(scenario: Scenario) -> str:
    """The scenario as YAML text in the file format, series inline."""
    return yaml.safe_dump(scenario.to_dict(), sort_keys=False, default_flow_style=None, width=100)


def _parse(text: str, file: Path) -> Any:
    if file.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError(
                "file", f"{file.name} is not valid JSON (line {exc.lineno}: {exc.msg})"
            ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ScenarioError("file", f"{file.name} is not valid YAML ({where}{problem})") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the last would win)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


_CSV_KEYS = ("csv", "column")


class _CsvReader:
    """Replaces every `{csv: FILE, column: NAME}` with that column's values, reading each
    FILE once. `periods` (None when the file's own value is not a valid count, which the
    schema then reports) is the number of rows every column must have."""

    def __init__(self, base: Path, periods: int | None) -> None:
        self.base = base
        self.periods = periods
        self.tables: dict[Path, pd.DataFrame] = {}

    def resolve(self, value: Any, field: str) -> Any:
        if isinstance(value, Mapping):
            if any(key in _CSV_KEYS for key in value):
                return self.column(value, field)
            return {
                k: self.resolve(v, f"{field}.{k}" if field else str(k)) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.resolve(v, f"{field}[{_label(v, i)}]") for i, v in enumerate(value)]
        return value

    def column(self, ref: Mapping[Any, Any], field: str) -> list[float]:
        for key in ref:
            if key not in _CSV_KEYS:
                raise ScenarioError(
                    f"{field}.{key}",
                    f"unknown key of a CSV reference {{csv: FILE, column: NAME}};"
                    f" {suggest(key, _CSV_KEYS)}",
                )
        for key, what in (("csv", "FILE"), ("column", "NAME")):
            if key not in ref:
                raise ScenarioError(
                    f"{field}.{key}",
                    f"a CSV reference needs `{key}: {what}` too (got {_show_ref(ref)})",
                )
        name, column = ref["csv"], ref["column"]
        for key, given in (("csv", name), ("column", column)):
            if not isinstance(given, str) or not given:
                raise ScenarioError(
                    f"{field}.{key}", f"expected the {key} name as text, got {given!r}"
                )
        file = self.base / name
        table = self.table(file, name, column, field)
        if column not in table.columns:
            raise ScenarioError(
                f"{field}.column",
                f"{column!r} is not a column of {name} ({', '.join(map(str, table.columns))})",
            )
        cells = table[column]
        if self.periods is not None and len(cells) != self.periods:
            raise ScenarioError(
                f"{field}.column",
                f"{name}:{column} has {plural(len(cells), 'row')} of values, expected"
                f" {plural(self.periods, 'row')} (one per period)",
            )
        values: list[float] = []
        for row, cell in enumerate(cells):
            text = cell if isinstance(cell, str) else ""
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                what = "empty" if not text.strip() else f"{text!r}, not a finite number"
                raise ScenarioError(
                    f"{field}.column", f"{name}:{column} row {row + 1} (line {row + 2}) is {what}"
                )
            values.append(number)
        return values

    def table(self, file: Path, name: str, column: str, field: str) -> pd.DataFrame:
        if file not in self.tables:
            try:
                # Cells as text: a number is parsed once, below, and a bad cell is shown as
                # the user wrote it.
                self.tables[file] = pd.read_csv(file, dtype=str, keep_default_na=False)
            except FileNotFoundError:
                raise ScenarioError(
                    f"{field}.csv", f"no CSV file at {str(file)!r} (for column {column!r})"
                ) from None
            except (OSError, ValueError) as exc:
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise ScenarioError(
                    f"{field}.csv",
                    f"cannot read {str(file)!r} (for column {column!r}): {detail}",
                ) from None
        return self.tables[file]


def _show_ref(ref: Mapping[Any, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in ref.items()) + "}"


def _label(item: Any, index: int) -> object:
    if isinstance(item, Mapping) and isinstance(item.get("id"), str):
        return item["id"]
    return index
