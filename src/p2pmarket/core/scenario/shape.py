"""The structure of raw scenario data, checked before anything else reads it
(docs/scenario-limits.md, "Structure").

`check_shape(data)` walks the data once, without recursion, and refuses with one
`ScenarioError` naming the field: nesting deeper than `MAX_DEPTH`, a text longer than
`MAX_DESCRIPTION_CHARS` (the longest any field may be; each field's own limit is the
schema's), a key longer than `MAX_TEXT_CHARS` (no field is named so) and a whole number of
more than 64 bits (no count or quantity of a scenario is one; Python could not even print
one of more than 4,300 digits). What it lets through costs no more to validate than its size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from p2pmarket.core.scenario.limits import MAX_DEPTH, MAX_DESCRIPTION_CHARS, MAX_TEXT_CHARS
from p2pmarket.core.scenario.messages import excerpt, field_path, number, plural
from p2pmarket.errors import ScenarioError

__all__ = ["check_shape"]

_DOC = "see docs/scenario-limits.md"


def check_shape(data: Any) -> None:
    """Refuse data nested too deep, with a text too long or a number too large to be part of
    a scenario (the walk is iterative: no depth of input makes it recurse)."""
    stack: list[tuple[Any, tuple[object, ...]]] = [(data, ())]
    while stack:
        node, where = stack.pop()
        if len(where) >= MAX_DEPTH:
            raise ScenarioError(
                field_path(where[:MAX_DEPTH], data),
                f"lists and mappings nest deeper than the limit of {MAX_DEPTH} levels; {_DOC}",
            )
        items = node.items() if isinstance(node, Mapping) else enumerate(node)
        for key, value in items:
            if isinstance(node, Mapping) and isinstance(key, str) and len(key) > MAX_TEXT_CHARS:
                raise ScenarioError(
                    field_path(where, data),
                    f"a key of {plural(len(key), 'character')} ({excerpt(key)}) is no field of"
                    f" a scenario (keys have at most {MAX_TEXT_CHARS} characters); {_DOC}",
                )
            if isinstance(value, float | bool) or value is None:
                continue
            if isinstance(value, int):
                if value.bit_length() > 64:
                    raise ScenarioError(
                        field_path((*where, key), data),
                        f"{number(value)} is out of range for any field of a scenario; {_DOC}",
                    )
            elif isinstance(value, str):
                if len(value) > MAX_DESCRIPTION_CHARS:
                    raise ScenarioError(
                        field_path((*where, key), data),
                        f"a text of {plural(len(value), 'character')} ({excerpt(value)}) is"
                        f" more than the limit of {MAX_DESCRIPTION_CHARS:,} characters; {_DOC}",
                    )
            elif isinstance(value, Mapping | list | tuple):
                stack.append((value, (*where, key)))
