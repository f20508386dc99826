"""Feeder files: a radial LV feeder as YAML with its tables inline or in CSV files, the
feeders shipped with p2pmarket, and the scenario's `feeder:` section (docs/feeder.md).

A feeder file:

    name: my-feeder
    root: substation_mv          # bus held by the upstream grid (pandapower's ext_grid)
    slack_vm_pu: 1.0
    buses: {csv: buses.csv}      # id, vn_kv[, x, y]
    lines: {csv: lines.csv}      # id, from_bus, to_bus, r_ohm, x_ohm, max_i_ka
    transformers:                # id, hv_bus, lv_bus, sn_kva, vk_percent, vkr_percent
      - {id: T1, hv_bus: substation_mv, lv_bus: lv_busbar, sn_kva: 400, vk_percent: 4,
         vkr_percent: 1.3}
    loads: {csv: loads.csv}      # optional reference loads: bus, p_kw[, q_kvar]

Every table is a list of mappings or `{csv: FILE}` (FILE relative to the feeder file, inside
its directory). In a scenario, `feeder:` names the grid by `file:` (relative to the scenario,
confined like its CSV files), by `pandapower:` (a shipped feeder, `SHIPPED`) or inline as
`network:`; the reader replaces the first two by `network:` and records where it came from
in `source`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from p2pmarket.core.scenario.messages import excerpt, show, suggest
from p2pmarket.errors import ScenarioError
from p2pmarket.io.atomic import write_text_atomic

__all__ = [
    "FEEDER_TABLES",
    "SHIPPED",
    "read_feeder",
    "resolve_feeder_section",
    "shipped_feeder_path",
    "write_feeder",
    "write_feeder_tables",
]

SHIPPED = ("kerber-dorfnetz", "kerber-vorstadtnetz", "cigre-lv", "ieee-european-lv")
"""The feeders shipped with p2pmarket, converted from pandapower.networks 3.5.6
(`create_kerber_dorfnetz`, `create_kerber_vorstadtnetz_kabel_1`, `create_cigre_network_lv`,
`ieee_european_lv_asymmetric`; docs/feeder.md says how)."""
_ALIASES = {
    "create_kerber_dorfnetz": "kerber-dorfnetz",
    "kerber_dorfnetz": "kerber-dorfnetz",
    "create_kerber_vorstadtnetz_kabel_1": "kerber-vorstadtnetz",
    "kerber_vorstadtnetz": "kerber-vorstadtnetz",
    "create_cigre_network_lv": "cigre-lv",
    "cigre_lv": "cigre-lv",
    "ieee_european_lv_asymmetric": "ieee-european-lv",
    "ieee_european_lv": "ieee-european-lv",
}
_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # table: (text columns, columns that may be empty)
    "buses": (("id",), ("x", "y")),
    "lines": (("id", "from_bus", "to_bus"), ("max_i_ka",)),
    "transformers": (("id", "hv_bus", "lv_bus"), ()),
    "loads": (("bus",), ()),
}
_SOURCES = ("file", "pandapower", "network")
MAX_FEEDER_FILE_BYTES = 10_000_000

Locate = Callable[[str, str], Path]
"""(file name, field) -> the confined path (the scenario reader's rules)."""


def shipped_feeder_path(name: str) -> Path:
    """The YAML file of a shipped feeder, by name (`kerber-dorfnetz`) or by pandapower's
    function name (`create_kerber_dorfnetz`)."""
    key = _ALIASES.get(name, name)
    if key not in SHIPPED:
        raise ScenarioError(
            "feeder.pandapower",
            f"unknown feeder {show(name)}; shipped feeders: {', '.join(SHIPPED)}",
        )
    folder = resources.files("p2pmarket.cases") / "data" / "feeders"
    return Path(str(folder / f"{key}.yaml"))


def read_feeder(path: str | Path, field: str = "feeder.file") -> dict[str, Any]:
    """A feeder file as the data of a `FeederNetwork` (tables read from their CSV files,
    which must lie in the feeder file's directory)."""
    file = Path(path)
    from p2pmarket.io.scenario_files import _load_yaml  # the scenario's guarded YAML reader

    text = _read_text(file, field)
    try:
        data = _load_yaml(text, file.name)
    except ScenarioError as exc:
        raise ScenarioError(field, exc.detail) from None
    if not isinstance(data, Mapping):
        raise ScenarioError(field, f"{file.name} does not hold a mapping of feeder fields")
    out = dict(data)
    for table in _TABLES:
        if table in out:
            out[table] = _table(out[table], table, file.parent, f"{field}:{file.name}.{table}")
    return out


def resolve_feeder_section(section: Any, locate: Locate | None) -> Any:
    """The scenario's `feeder:` with `file:` or `pandapower:` replaced by `network:` (the
    grid's data) and `source:` set. `locate` confines a `file:` as the scenario's CSV files
    are (None: the scenario came as text and reads no file)."""
    if not isinstance(section, Mapping):
        return section  # the schema says what is wrong
    given = [k for k in _SOURCES if k in section]
    if len(given) != 1:
        raise ScenarioError(
            "feeder",
            "name the grid once: `file: FEEDER.yaml`, `pandapower: NAME` or `network: {...}`"
            + (f" (got {', '.join(given)})" if given else ""),
        )
    out = {k: v for k, v in section.items() if k not in ("file", "pandapower")}
    if "file" in section:
        name = section["file"]
        if not isinstance(name, str) or not name:
            raise ScenarioError("feeder.file", f"expected a file name, got {show(name)}")
        if locate is None:
            raise ScenarioError(
                "feeder.file",
                f"a feeder file ({show(name)}) is refused in a scenario given as text: name"
                " a shipped one (pandapower:) or give the network inline",
            )
        try:
            path = locate(name, "feeder.file")
        except ScenarioError as exc:
            raise ScenarioError("feeder.file", exc.detail) from None
        out["network"] = read_feeder(path)
        out.setdefault("source", f"file:{name}")
    elif "pandapower" in section:
        name = section["pandapower"]
        if not isinstance(name, str):
            raise ScenarioError("feeder.pandapower", f"expected a name, got {show(name)}")
        out["network"] = read_feeder(shipped_feeder_path(name), "feeder.pandapower")
        out.setdefault("source", f"pandapower:{_ALIASES.get(name, name)}")
    return out


def write_feeder(network: Mapping[str, Any], directory: str | Path, name: str) -> Path:
    """Write a feeder (the data of a `FeederNetwork`) as NAME.yaml with its buses, lines and
    loads in NAME-buses.csv, NAME-lines.csv and NAME-loads.csv (transformers inline)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    head: dict[str, Any] = {k: v for k, v in network.items() if k not in _TABLES}
    for table in ("buses", "lines", "loads"):
        rows = list(network.get(table, ()))
        if not rows:
            continue
        csv = f"{name}-{table}.csv"
        write_text_atomic(folder / csv, pd.DataFrame(rows).to_csv(index=False))
        head[table] = {"csv": csv}
    head["transformers"] = [dict(t) for t in network.get("transformers", ())]
    text = yaml.safe_dump(head, sort_keys=False, default_flow_style=None, width=100)
    write_text_atomic(folder / f"{name}.yaml", text)
    return folder / f"{name}.yaml"


def _read_text(file: Path, field: str) -> str:
    if not file.is_file():
        raise ScenarioError(field, f"no feeder file at {show(str(file))}")
    if file.stat().st_size > MAX_FEEDER_FILE_BYTES:
        raise ScenarioError(field, f"{file.name} is larger than {MAX_FEEDER_FILE_BYTES:,} bytes")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(field, f"cannot read {show(file.name)}: {exc}") from None


def _table(value: Any, table: str, base: Path, field: str) -> Any:
    """A table given inline (kept as it is) or as `{csv: FILE}` (read, cells typed)."""
    if not (isinstance(value, Mapping) and "csv" in value):
        return value
    unknown = [k for k in value if k != "csv"]
    if unknown:
        raise ScenarioError(f"{field}.{unknown[0]}", f"unknown key; {suggest(unknown[0], ['csv'])}")
    name = value["csv"]
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise ScenarioError(
            f"{field}.csv", f"{show(name)}: a table lies beside its feeder file (a plain name)"
        )
    text = _read_text(base / name, f"{field}.csv")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        detail = f"cannot read {name}: {excerpt(str(exc), 80)}"
        raise ScenarioError(f"{field}.csv", detail) from None
    texts, optional = _TABLES[table]
    rows: list[dict[str, str]] = frame.to_dict(orient="records")  # type: ignore[assignment]
    return [_record(row, texts, optional, f"{field}[{i}]", name) for i, row in enumerate(rows)]


def _record(
    row: Mapping[str, str], texts: tuple[str, ...], optional: tuple[str, ...], field: str, name: str
) -> dict[str, Any]:
    """One CSV row with its numbers parsed (an empty optional cell is left out)."""
    out: dict[str, Any] = {}
    for key, cell in row.items():
        if key in texts:
            out[key] = cell
            continue
        if not cell.strip() and key in optional:
            continue
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ScenarioError(f"{field}.{key}", f"{show(cell)} in {name} is not a finite number")
        out[key] = value
    return out


FEEDER_TABLES = (
    "feeder_buses.csv",
    "feeder_branches.csv",
    "feeder_prices.csv",
    "feeder_binding.csv",
    "feeder_validation.csv",
)
"""What `run --out DIR` writes for a scenario with a feeder (docs/feeder.md, "Outputs")."""


def write_feeder_tables(outcome: Any, validation: pd.DataFrame | None, out: Path) -> list[Path]:
    """The feeder's tables of a run (`FEEDER_TABLES`; `feeder_validation.csv` only with a
    validation): voltages, flows, the price decomposition, the binding limits."""
    from p2pmarket.io.tables import csv_text

    texts = {
        "feeder_buses.csv": csv_text(outcome.buses),
        "feeder_branches.csv": csv_text(outcome.branches),
        "feeder_prices.csv": csv_text(outcome.prices),
        "feeder_binding.csv": csv_text(outcome.binding),
    }
    if validation is not None:
        texts["feeder_validation.csv"] = csv_text(validation)
    written = []
    for name, text in texts.items():
        write_text_atomic(out / name, text)
        written.append(out / name)
    return written
