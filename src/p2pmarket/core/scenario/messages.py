"""Pydantic's validation errors as one `ScenarioError` naming the field and the value."""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from p2pmarket.errors import ScenarioError

__all__ = [
    "excerpt",
    "field_path",
    "label",
    "number",
    "plural",
    "scenario_error",
    "show",
    "suggest",
]

_LONGEST_LABEL = 200  # MAX_TEXT_CHARS: an id longer than an id may be is shown by position


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 period`, `2 periods`, `1,000 periods` (`words` for an irregular plural)."""
    return f"{number(n)} {word if n == 1 else words or word + 's'}"


def number(n: int) -> str:
    """A whole number with thousands separators (`35,040`); one too large to be a count is
    named by its size (`a 5,000-digit number`), so a message stays one short line and never
    converts a huge int to text (Python refuses beyond 4,300 digits)."""
    if abs(n).bit_length() <= 64:
        return f"{n:,}"
    digits = int(abs(n).bit_length() * 0.30103) + 1  # log10(2): within one of the truth
    return f"{'-' if n < 0 else ''}a number of about {digits:,} digits"


def excerpt(text: str, limit: int = 40) -> str:
    """At most `limit` characters of `text`, quoted, control characters escaped: what a
    message may show of a file's content or of a long text (`'abc...'`)."""
    shown = repr(text[: limit + 1])
    if len(text) <= limit:
        return shown
    return repr(text[:limit])[:-1] + "...'"


def label(name: object, index: int) -> str:
    """How a list item is named in a field path: its id (`peers[P2]`) when the id is short,
    printable text, else its position (`peers[3]`)."""
    if isinstance(name, str) and name and len(name) <= _LONGEST_LABEL and name.isprintable():
        return name
    return str(index)


def suggest(word: object, known: Iterable[str]) -> str:
    """`did you mean 'periods'?` for the closest of `known`, else the list of `known`."""
    known = sorted(known)
    text = str(word) if isinstance(word, str | int | float | bool | None) else ""
    if len(text) > _LONGEST_LABEL:  # no field is this long (and difflib would take its time)
        text = ""
    close = difflib.get_close_matches(text, known, n=1, cutoff=0.6) if text else []
    if not close:  # `price` for `price_per_kwh`: the one field the word begins
        starts = [k for k in known if text and k.startswith(text)]
        close = starts if len(starts) == 1 else []
    if close:
        return f"did you mean {close[0]!r}?"
    return f"expected one of {', '.join(known)}"


def scenario_error(
    exc: ValidationError, data: Mapping[str, Any], model: type[BaseModel] | None = None
) -> ScenarioError:
    """The first validation error as a ScenarioError with a readable field path; `model`
    (the class validated) lets an unknown key be answered with the closest known one."""
    errors = exc.errors(include_url=False)
    # A cross-field rule (`rules.check`) or a part's own validation raised inside validation:
    # it names the field within that part; put the part's place in front.
    for e in errors:
        error = e.get("ctx", {}).get("error")
        if isinstance(error, ScenarioError):
            where = [part for part in e["loc"] if not _is_union_tag(part)]
            if not where:
                return error
            return ScenarioError(f"{_path(where, data)}.{error.field}", error.detail)
    # A misspelt key shows as an unknown field and a missing one: name the user's word.
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    errors = unknown or errors
    # A union (scalar | list) reports one error per branch; the deepest one is the most precise
    # ("load_kw[3]: expected a number, got 'a'"), the first of equals the scalar branch's.
    locs = [[part for part in e["loc"] if not _is_union_tag(part)] for e in errors]
    depth = max(len(loc) for loc in locs)
    index = next(i for i, loc in enumerate(locs) if len(loc) == depth)
    first, loc = errors[index], locs[index]
    field = _path(loc, data)
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        hint = ""
        known = _keys_at(model, loc[:-1]) if model is not None and loc else None
        if known:
            hint = f"; {suggest(loc[-1], known)}"
        return ScenarioError(field, f"unknown field (refused, not ignored){hint}")
    if kind == "missing":
        return ScenarioError(field, "required field is missing")
    if kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        return ScenarioError(field, f"{show(value)} is not one of {expected}")
    kinds = {e["type"] for e in errors}
    if kind == "string_too_long" and isinstance(value, str):
        most = first.get("ctx", {}).get("max_length")
        return ScenarioError(
            field,
            f"{plural(len(value), 'character')} ({excerpt(value)}) is more than the limit of"
            f" {most:,} characters; see docs/scenario-limits.md",
        )
    if isinstance(value, Mapping) and "csv" in value:
        return ScenarioError(
            field,
            f"a CSV reference ({show(value)}) is read only by load_scenario or parse_scenario"
            " (p2pmarket.io.scenario_files), with a directory to read it from",
        )
    if kind in {"int_type", "int_from_float"}:
        return ScenarioError(field, f"expected a whole number, got {show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        return ScenarioError(field, f"expected a finite number, got {show(value)}")
    if kinds & {"float_type", "int_type", "finite_number"}:
        return ScenarioError(field, f"expected a number, got {show(value)}")
    if kind == "tuple_type":
        return ScenarioError(field, f"expected a list, got {show(value)}")
    if kind in {"model_type", "model_attributes_type"}:
        return ScenarioError(field, f"expected a mapping of fields, got {show(value)}")
    msg = str(first["msg"])
    return ScenarioError(field, f"{msg[0].lower()}{msg[1:]}, got {show(value)}")


def _keys_at(model: type[BaseModel], loc: Sequence[object]) -> set[str] | None:
    """The keys the schema accepts in the mapping at `loc` below `model` (None if unknown)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        info = next(
            (f for name, f in current.model_fields.items() if part in {name, f.alias}), None
        )
        current = _model_in(info.annotation) if info is not None else None
    if current is None:
        return None
    return {f.alias or name for name, f in current.model_fields.items()}


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The schema class inside `Peer | None`, `tuple[Peer, ...]` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and (
        part in {"float", "tuple[float, ...]", "int", "str"}
        or part.startswith(("function-", "tuple["))
    )


def field_path(loc: Sequence[object], data: Any) -> str:
    """`('peers', 2, 'generation', 'max_kw')` -> `peers[P3].generation.max_kw` (an id that is
    long or holds control characters is replaced by the position; so is a long key)."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            name: object = None
            if isinstance(node, Sequence) and not isinstance(node, str) and part < len(node):
                item = node[part]
                if isinstance(item, Mapping):
                    name = item.get("id")
                node = item
            else:
                node = None
            out += f"[{label(name, part)}]"
        else:
            key = part if isinstance(part, str) and label(part, 0) == part else show(part)
            out += f".{key}" if out else key
            node = node.get(part) if isinstance(node, Mapping) else None
    return out or "scenario"


_path = field_path


def show(value: object) -> str:
    """A value as a message shows it: its repr, at most 60 characters (a long text is cut
    before it is formatted, a huge number named by its size)."""
    if isinstance(value, str) and len(value) > 60:
        return excerpt(value, 55)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 64:
        return number(value)
    if isinstance(value, list | tuple | dict) and len(value) > 10:
        return f"a {type(value).__name__} of {plural(len(value), 'item')}"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge int, a deep list
        return f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."
