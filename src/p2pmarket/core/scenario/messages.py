"""Pydantic's validation errors as one `ScenarioError` naming the field and the value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from p2pmarket.errors import ScenarioError

__all__ = ["scenario_error", "show"]


def scenario_error(exc: ValidationError, data: Mapping[str, Any]) -> ScenarioError:
    """The first validation error as a ScenarioError with a readable field path."""
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
        return ScenarioError(field, "unknown field (refused, not ignored)")
    if kind == "missing":
        return ScenarioError(field, "required field is missing")
    if kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        return ScenarioError(field, f"{show(value)} is not one of {expected}")
    kinds = {e["type"] for e in errors}
    if kind in {"int_type", "int_from_float"}:
        return ScenarioError(field, f"expected a whole number, got {show(value)}")
    if kinds & {"float_type", "int_type", "finite_number"}:
        return ScenarioError(field, f"expected a number, got {show(value)}")
    if kind == "tuple_type":
        return ScenarioError(field, f"expected a list, got {show(value)}")
    if kind in {"model_type", "model_attributes_type"}:
        return ScenarioError(field, f"expected a mapping of fields, got {show(value)}")
    msg = str(first["msg"])
    return ScenarioError(field, f"{msg[0].lower()}{msg[1:]}, got {show(value)}")


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
