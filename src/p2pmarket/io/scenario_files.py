"""Scenario files: YAML or JSON, with time series inline or from CSV files (SPEC section 5).

A series given as `{csv: FILE, column: NAME}` is read from FILE (relative to the scenario
file) before the scenario is validated, so the core never touches a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from p2pmarket.core.scenario import Scenario
from p2pmarket.errors import ScenarioError
from p2pmarket.io.atomic import write_bytes_atomic, write_text_atomic

__all__ = [
    "dump_scenario",
    "load_scenario",
    "read_scenario_dict",
    "scenario_yaml",
    "write_bytes_atomic",
    "write_text_atomic",
]


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file (`.yaml`, `.yml` or `.json`)."""
    return Scenario.from_dict(read_scenario_dict(path))


def read_scenario_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The scenario file as a dict, CSV references replaced by their values."""
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
    return {k: _resolve_csv(v, file.parent, str(k)) for k, v in data.items()}


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


def _resolve_csv(value: Any, base: Path, field: str) -> Any:
    """Replace every `{csv: FILE, column: NAME}` below `value` with that column's values."""
    if isinstance(value, Mapping):
        if set(value) == {"csv", "column"}:
            return _read_column(value["csv"], value["column"], base, field)
        return {
            k: _resolve_csv(v, base, f"{field}.{k}" if field else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_csv(v, base, f"{field}[{_label(v, i)}]") for i, v in enumerate(value)]
    return value


def _label(item: Any, index: int) -> object:
    if isinstance(item, Mapping) and isinstance(item.get("id"), str):
        return item["id"]
    return index


def _read_column(name: object, column: object, base: Path, field: str) -> list[float]:
    if not isinstance(name, str) or not isinstance(column, str):
        raise ScenarioError(field, "a CSV reference needs `csv: FILE` and `column: NAME` as text")
    file = base / name
    try:
        table = pd.read_csv(file)
    except FileNotFoundError:
        raise ScenarioError(f"{field}.csv", f"no CSV file at {str(file)!r}") from None
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{field}.csv", f"cannot read {str(file)!r}: {exc}") from None
    if column not in table.columns:
        raise ScenarioError(
            f"{field}.column", f"{column!r} is not a column of {name} ({', '.join(table.columns)})"
        )
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise ScenarioError(
            f"{field}.column",
            f"{name}:{column} row {row + 1} is {table[column].iloc[row]!r}, not a number",
        )
    return [float(v) for v in values]
