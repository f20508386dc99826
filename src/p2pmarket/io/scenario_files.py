"""Scenario files: YAML or JSON, with time series inline or from CSV files (SPEC section 5).

A series given as `{csv: FILE, column: NAME}` is read from FILE before the scenario is
validated, so the core never touches a file. The limits (docs/scenario-limits.md) are
checked before anything proportional to them is read: the file's size before it is parsed,
the nesting, anchors and aliases while it is parsed (YAML is read event by event, without
recursion and without ever expanding an alias), the size and the structure before any CSV
file is read. Here, at the edge, the size limits may come from the environment
(`P2PMARKET_MAX_PERIODS`, `P2PMARKET_MAX_PEER_PERIODS`, `P2PMARKET_MAX_PEERS`).

CSV files are confined (docs/scenario-limits.md, "CSV files"): a reference is a relative
path inside the scenario file's directory (no absolute path, no `..`, no symbolic link
that leads out of it) unless the caller names a wider root (`csv_root=`), and a scenario
given as text (`parse_scenario`) reads no file at all unless it is given a directory
(`base_dir=`). A message never shows more of a file's content than a 40-character excerpt
with control characters escaped.
"""

from __future__ import annotations

import difflib
import io
import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from p2pmarket.core.scenario import Scenario
from p2pmarket.core.scenario.limits import (
    MAX_CSV_BYTES,
    MAX_CSV_COLUMNS,
    MAX_DEPTH,
    MAX_JSON_BYTES,
    MAX_TEXT_CHARS,
    MAX_YAML_BYTES,
    Limits,
)
from p2pmarket.core.scenario.messages import excerpt, label, plural, show, suggest
from p2pmarket.core.scenario.rules import check_size
from p2pmarket.core.scenario.shape import check_shape
from p2pmarket.errors import OptionError, ScenarioError
from p2pmarket.io.atomic import write_bytes_atomic, write_text_atomic
from p2pmarket.io.feeder_files import resolve_feeder_section

__all__ = [
    "ENV_MAX_PEERS",
    "ENV_MAX_PEER_PERIODS",
    "ENV_MAX_PERIODS",
    "document_yaml",
    "dump_scenario",
    "limits_from_environ",
    "load_scenario",
    "parse_scenario",
    "read_scenario_dict",
    "scenario_yaml",
    "write_bytes_atomic",
    "write_text_atomic",
]

ENV_MAX_PERIODS = "P2PMARKET_MAX_PERIODS"
ENV_MAX_PEER_PERIODS = "P2PMARKET_MAX_PEER_PERIODS"
ENV_MAX_PEERS = "P2PMARKET_MAX_PEERS"

Format = Literal["yaml", "json"]
_DOC = "see docs/scenario-limits.md"


def limits_from_environ(environ: Mapping[str, str] | None = None) -> Limits:
    """The size limits, each default replaced by its environment variable when set
    (`P2PMARKET_MAX_PERIODS`, `P2PMARKET_MAX_PEER_PERIODS`, `P2PMARKET_MAX_PEERS`: whole
    numbers >= 1; `_` may group digits, as in `200_000`)."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for key, name in (
        (ENV_MAX_PERIODS, "max_periods"),
        (ENV_MAX_PEER_PERIODS, "max_peer_periods"),
        (ENV_MAX_PEERS, "max_peers"),
    ):
        text = env.get(key)
        if text is None or not text.strip():
            continue
        try:
            value = int(text.strip()) if len(text) <= 30 else 0
        except ValueError:
            value = 0
        if value < 1:
            raise OptionError(key, f"expected a whole number >= 1, got {show(text)}")
        values[name] = value
    return Limits(**values)


def load_scenario(
    path: str | os.PathLike[str],
    *,
    limits: Limits | None = None,
    csv_root: str | os.PathLike[str] | None = None,
) -> Scenario:
    """Read and validate a scenario file (`.json` is read as JSON, anything else as YAML).
    `limits` are the size limits (default: `limits_from_environ()`). CSV references are
    read relative to the file's directory and must stay inside it, or inside `csv_root`
    when it is given (then absolute paths and `..` are allowed within that root)."""
    limits = limits or limits_from_environ()
    data = read_scenario_dict(path, limits=limits, csv_root=csv_root)
    return Scenario.from_dict(data, limits=limits)


def parse_scenario(
    text: str | bytes,
    *,
    format: Format = "yaml",
    base_dir: str | os.PathLike[str] | None = None,
    csv_root: str | os.PathLike[str] | None = None,
    limits: Limits | None = None,
) -> Scenario:
    """Validate a scenario given as text (YAML or JSON; `bytes` must be UTF-8), as the HTTP
    service receives one. Without `base_dir` it reaches no file: a CSV reference is refused.
    With `base_dir`, CSV references are read relative to it and confined to it (or to
    `csv_root`). `limits` default to `Limits()`: text from outside does not read the
    environment."""
    limits = limits or Limits()
    if isinstance(text, bytes):
        text = _decode(text, _most_bytes(format), "scenario text", "file")
    elif len(text) > _most_bytes(format):
        raise ScenarioError("file", _over("the scenario text", _most_bytes(format)))
    base = Path(base_dir) if base_dir is not None else None
    data = _scenario_dict(text, format, "the scenario text", base, csv_root, limits)
    return Scenario.from_dict(data, limits=limits)


def read_scenario_dict(
    path: str | os.PathLike[str],
    *,
    limits: Limits | None = None,
    csv_root: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The scenario file as a dict, CSV references replaced by their values. The size limits
    (default: `limits_from_environ()`) are checked before any CSV file is read; CSV files
    are confined as `load_scenario` says."""
    file = Path(path)
    if not file.is_file():
        raise ScenarioError("file", f"no scenario file at {str(file)!r}")
    format: Format = "json" if file.suffix.lower() == ".json" else "yaml"
    data = _read_bounded(file, _most_bytes(format), "file", file.name, "scenario file")
    text = _decode(data, _most_bytes(format), file.name, "file")
    return _scenario_dict(
        text, format, file.name, file.parent, csv_root, limits or limits_from_environ()
    )


def _scenario_dict(
    text: str,
    format: Format,
    name: str,
    base: Path | None,
    csv_root: str | os.PathLike[str] | None,
    limits: Limits,
) -> dict[str, Any]:
    data = _load_json(text, name) if format == "json" else _load_yaml(text, name)
    if not isinstance(data, Mapping):
        raise ScenarioError("file", f"{name} does not hold a mapping of scenario fields")
    periods = data.get("periods", 1)
    check_size(periods, data.get("peers"), limits, data.get("communities"))
    check_shape(data)
    root = Path(csv_root) if csv_root is not None else None
    reader = _CsvReader(base, root, periods if _is_count(periods) else None)
    locate = reader.locate if base is not None else None
    return {
        k: resolve_feeder_section(v, locate) if k == "feeder" else reader.resolve(v, _key(k))
        for k, v in data.items()
    }


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _most_bytes(format: Format) -> int:
    return MAX_JSON_BYTES if format == "json" else MAX_YAML_BYTES


def _read_bounded(
    file: Path, limit: int, field: str, name: str, kind: str, *, follow: bool = True
) -> bytes:
    """At most `limit` bytes of a regular file (refused beyond), opened without blocking (a
    FIFO is refused, not waited for) and, unless `follow`, not through a symbolic link."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(file, flags)
    except FileNotFoundError:
        raise ScenarioError(field, f"no {kind} at {show(name)}") from None
    except OSError as exc:
        raise ScenarioError(field, f"cannot read {show(name)}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ScenarioError(field, f"cannot read {show(name)}: not a regular file")
        if info.st_size > limit:
            raise ScenarioError(field, _over(name, limit))
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ScenarioError(field, f"cannot read {show(name)}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ScenarioError(field, _over(name, limit))
    return data


def _over(name: str, limit: int) -> str:
    return f"{show(name)} is larger than the limit of {limit:,} bytes; {_DOC}"


def _decode(data: bytes, limit: int, name: str, field: str) -> str:
    """UTF-8 text (a leading byte-order mark is dropped); anything else is refused."""
    if len(data) > limit:
        raise ScenarioError(field, _over(name, limit))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            field, f"{show(name)} is not UTF-8 text (byte {exc.start:,}: {exc.reason})"
        ) from None


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
    return document_yaml(scenario.to_dict())


def document_yaml(document: dict[str, Any]) -> str:
    """A scenario document (plain data) as YAML text in the file format."""
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        width=100,
        allow_unicode=False,
    )


# --- YAML and JSON ---------------------------------------------------------------------

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter where PyYAML has it: a year of hourly series inline writes in a tenth of
the time."""
_Parser: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where PyYAML has it (fast, and it keeps its own stack, so nesting
costs no recursion), else PyYAML's; either way only its events are used."""
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_TAG + t for t in ("null", "bool", "int", "float", "str", "timestamp"))
_COLLECTION_TAGS = {
    yaml.MappingStartEvent: (None, "!", _TAG + "map"),
    yaml.SequenceStartEvent: (None, "!", _TAG + "seq"),
}


class _Frame:
    """A mapping or list being built, and (for a mapping) the key waiting for its value."""

    __slots__ = ("container", "has_key", "key")

    def __init__(self, container: dict[Any, Any] | list[Any]) -> None:
        self.container = container
        self.key: Any = None
        self.has_key = False


def _load_yaml(text: str, name: str) -> Any:
    """The YAML document as plain Python data, built from the parser's events: anchors and
    aliases are refused (an alias bomb is never expanded), nesting deeper than `MAX_DEPTH`
    is refused as it is reached, a key given twice, a key that is a list or a mapping, a
    second document and any tag beyond YAML's plain scalars, lists and mappings are refused.
    Scalars mean what they mean to `yaml.safe_load` (`yes` is true, `1_000` is 1000)."""
    loader = _Parser(text)
    try:
        return _build(loader, name)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ScenarioError(
            "file", f"{name} is not valid YAML ({where}{excerpt(problem, 120)[1:-1]})"
        ) from None
    except RecursionError:  # not expected from either parser; refused all the same
        raise ScenarioError("file", _refusal(name, None, _too_deep())) from None
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, name: str) -> Any:
    stack: list[_Frame] = []
    root: Any = None
    documents = 0
    while loader.check_event():
        event = loader.get_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise ScenarioError("file", _refusal(name, line, "a second YAML document"))
            continue
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ScenarioError(
                "file",
                _refusal(name, line, "a YAML anchor or alias (&name, *name)"),
            )
        if isinstance(event, yaml.CollectionEndEvent):
            value: Any = stack.pop().container
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if event.tag not in _COLLECTION_TAGS[type(event)]:
                raise ScenarioError("file", _refusal(name, line, f"the YAML tag {show(event.tag)}"))
            if stack and isinstance(stack[-1].container, dict) and not stack[-1].has_key:
                raise ScenarioError(
                    "file", _refusal(name, line, "a key that is a list or a mapping")
                )
            if len(stack) >= MAX_DEPTH:
                raise ScenarioError("file", _refusal(name, line, _too_deep()))
            is_mapping = isinstance(event, yaml.MappingStartEvent)
            stack.append(_Frame({} if is_mapping else []))
            continue
        elif isinstance(event, yaml.ScalarEvent):
            value = _scalar(loader, event, name, line)
        else:  # stream and document ends
            continue
        if not stack:
            root = value
            continue
        frame = stack[-1]
        if isinstance(frame.container, list):
            frame.container.append(value)
        elif frame.has_key:
            frame.container[frame.key] = value
            frame.has_key = False
        else:
            repeated = value in frame.container  # a scalar: hashable
            if repeated:
                raise ScenarioError(
                    "file",
                    f"{name} is not valid YAML (line {line}: the key {show(value)} is given twice)",
                )
            frame.key, frame.has_key = value, True
    return root


def _scalar(loader: yaml.SafeLoader, event: yaml.ScalarEvent, name: str, line: int | None) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
    if tag not in _SCALAR_TAGS:
        what = "a YAML merge key (<<)" if tag == _TAG + "merge" else f"the YAML tag {show(tag)}"
        raise ScenarioError("file", _refusal(name, line, what))
    node = yaml.ScalarNode(tag, event.value, None, None, event.style)
    try:
        return loader.yaml_constructors[tag](loader, node)
    except ValueError as exc:  # an int beyond Python's 4,300 digits, a date that is none
        what = (
            f"a number of {len(event.value):,} characters"
            if tag.endswith(("int", "float"))
            else f"{show(event.value)} ({' '.join(str(exc).split())[:80]})"
        )
        raise ScenarioError("file", _refusal(name, line, what)) from None


def _refusal(name: str, line: int | None, what: str) -> str:
    where = f" (line {line})" if line is not None else ""
    return f"{name}{where}: {what} is refused in a scenario; {_DOC}"


def _too_deep() -> str:
    return f"nesting deeper than {MAX_DEPTH} levels"


def _load_json(text: str, name: str) -> Any:
    """The JSON document as plain Python data; a key given twice in one object is refused,
    and so are nesting beyond what the parser can follow and numbers Python cannot read."""
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except ScenarioError:
        raise
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            "file", f"{name} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise ScenarioError("file", _refusal(name, None, _too_deep())) from None
    except ValueError:  # Python's limit of 4,300 digits for an int
        raise ScenarioError(
            "file", _refusal(name, None, "a whole number of more than 4,300 digits")
        ) from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ScenarioError("file", f"the key {show(key)} is given twice in one JSON object")
    return result


# --- CSV references --------------------------------------------------------------------

_CSV_KEYS = ("csv", "column")


class _CsvReader:
    """Replaces every `{csv: FILE, column: NAME}` with that column's values, reading each
    FILE once. `base` is the directory FILE is relative to (None: the scenario came as text,
    and reads no file); `root` the directory FILE must lie in (None: `base`, and then FILE
    must be relative, without `..`). `periods` (None when the file's own value is not a
    valid count, which the schema then reports) is the number of rows every column must
    have."""

    def __init__(self, base: Path | None, root: Path | None, periods: int | None) -> None:
        self.base = base
        self.root = root
        self.periods = periods
        self.tables: dict[Path, pd.DataFrame] = {}

    def resolve(self, value: Any, field: str) -> Any:
        if isinstance(value, Mapping):
            if any(key in _CSV_KEYS for key in value):
                return self.column(value, field)
            return {
                k: self.resolve(v, f"{field}.{_key(k)}" if field else _key(k))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.resolve(v, f"{field}[{_label(v, i)}]") for i, v in enumerate(value)]
        return value

    def column(self, ref: Mapping[Any, Any], field: str) -> list[float]:
        for key in ref:
            if key not in _CSV_KEYS:
                raise ScenarioError(
                    f"{field}.{_key(key)}",
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
                    f"{field}.{key}", f"expected the {key} name as text, got {show(given)}"
                )
            if len(given) > MAX_TEXT_CHARS:
                raise ScenarioError(
                    f"{field}.{key}",
                    f"a name of {plural(len(given), 'character')} ({excerpt(given)}) is more"
                    f" than the limit of {MAX_TEXT_CHARS}; {_DOC}",
                )
        shown, col = _plain(name), _plain(column)
        table = self.table(self.locate(name, field), shown, show(column), field)
        if column not in table.columns:
            raise ScenarioError(f"{field}.column", _no_column(column, shown, table.columns))
        cells = table[column]
        if self.periods is not None and len(cells) != self.periods:
            raise ScenarioError(
                f"{field}.column",
                f"{shown}:{col} has {plural(len(cells), 'row')} of values, expected"
                f" {plural(self.periods, 'row')} (one per period)",
            )
        values: list[float] = []
        for row, cell in enumerate(cells):
            text = cell if isinstance(cell, str) else ""
            try:
                number = float(text) if len(text) <= 100 else math.nan
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                what = "empty" if not text.strip() else f"{excerpt(text)}, not a finite number"
                raise ScenarioError(
                    f"{field}.column", f"{shown}:{col} row {row + 1} (line {row + 2}) is {what}"
                )
            values.append(number)
        return values

    def locate(self, name: str, field: str) -> Path:
        """The file `name` refers to, refused unless it lies inside the allowed root."""
        where = f"{field}.csv"
        if self.base is None:
            raise ScenarioError(
                where,
                f"a CSV reference ({_plain(name)}) is refused in a scenario given as text: it"
                " may read files only from a directory its caller names (base_dir=); " + _DOC,
            )
        if "\x00" in name:
            raise ScenarioError(where, f"{_plain(name)} is not a file name")
        if self.root is None:
            parts = name.replace("\\", "/").split("/")
            if os.path.isabs(name) or name.startswith(("/", "\\")) or ":" in parts[0]:
                raise ScenarioError(
                    where,
                    f"{_plain(name)} is an absolute path: a CSV file is named relative to the"
                    f" scenario file and lies in its directory (or in csv_root=); {_DOC}",
                )
            if ".." in parts:
                raise ScenarioError(
                    where,
                    f"{_plain(name)} leads out of the scenario's directory (..): a CSV file"
                    f" lies in the scenario file's directory (or in csv_root=); {_DOC}",
                )
        root = (self.root if self.root is not None else self.base).resolve()
        try:
            target = (self.base / name).resolve()
        except (OSError, RuntimeError, ValueError):  # a symbolic-link loop, a bad name
            raise ScenarioError(where, f"cannot resolve {_plain(name)}") from None
        if not target.is_relative_to(root):
            inside = "csv_root" if self.root is not None else "the scenario's directory"
            raise ScenarioError(
                where,
                f"{_plain(name)} resolves outside {inside} (through a symbolic link or a"
                f" path); a CSV file must lie inside it; {_DOC}",
            )
        return target

    def table(self, file: Path, name: str, column: str, field: str) -> pd.DataFrame:
        if file not in self.tables:
            where = f"{field}.csv"
            try:
                data = _read_bounded(file, MAX_CSV_BYTES, where, name, "CSV file", follow=False)
            except ScenarioError as exc:
                raise ScenarioError(where, f"{exc.detail} (for column {column})") from None
            text = _decode(data, MAX_CSV_BYTES, name, where)
            end = text.find("\n")
            columns = text[: end if end >= 0 else len(text)].count(",") + 1
            if columns > MAX_CSV_COLUMNS:
                raise ScenarioError(
                    where,
                    f"{name} has {columns:,} columns or more, more than the limit of"
                    f" {MAX_CSV_COLUMNS:,} (for column {column}); {_DOC}",
                )
            try:
                # Cells as text: a number is parsed once, below, and a bad cell is shown as
                # the user wrote it.
                self.tables[file] = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            except (ValueError, TypeError, IndexError, OverflowError) as exc:
                detail = excerpt(" ".join(str(exc).split()) or type(exc).__name__, 120)[1:-1]
                raise ScenarioError(
                    where, f"cannot read {name} (for column {column}): {detail}"
                ) from None
        return self.tables[file]


def _no_column(column: str, name: str, columns: pd.Index) -> str:
    """The column is missing: say how many there are and the closest one, never the list
    (the header may be anything the file holds)."""
    names = [c for c in columns[:10_000] if isinstance(c, str) and len(c) <= MAX_TEXT_CHARS]
    close = difflib.get_close_matches(column, names, n=1, cutoff=0.6)
    hint = f"; did you mean {excerpt(close[0])}?" if close else ""
    return f"{show(column)} is not a column of {name} ({plural(len(columns), 'column')}{hint})"


def _plain(text: str) -> str:
    """A name from the scenario as a message shows it: as it is when short and printable,
    else quoted with control characters escaped."""
    return _key(text)


def _key(key: object) -> str:
    return key if isinstance(key, str) and label(key, 0) == key else show(key)


def _show_ref(ref: Mapping[Any, Any]) -> str:
    return "{" + ", ".join(f"{_key(k)}: {excerpt(str(v))[1:-1]}" for k, v in ref.items()) + "}"


def _label(item: Any, index: int) -> object:
    return label(item.get("id") if isinstance(item, Mapping) else None, index)
