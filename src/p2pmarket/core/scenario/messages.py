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

__all__ = ["plural", "scenario_error", "show", "suggest"]


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 period`, `2 periods`, `1,000 periods` (`words` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


def suggest(word: object, known: Iterable[str]) -> str:
    """`did you mean 'periods'?` for the closest of `known`, else the list of `known`."""
    known = sorted(known)
    text = str(word)
    close = difflib.get_close_matches(text, known, n=1, cutoff=0.6)
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


def _path(loc: Sequence[object], data: Any) -> str:
    """`('peers', 2, 'generation', 'max_kw')` -> `peers[P3].generation.max_kw`."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            label: object = part
            if isinstance(node, Sequence) and not isinstance(node, str) and part < len(node):
                item = node[part]
                if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                    label = item["id"]
                node = item
            else:
                node = None
            out += f"[{label}]"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return out or "scenario"


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
