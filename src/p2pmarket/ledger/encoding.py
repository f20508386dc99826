"""The canonical encoding: the one byte form of every value that is hashed or signed.

A value is encoded as compact JSON in UTF-8:

- objects with their keys (strings only) sorted by Unicode code point, no whitespace
  (separators `,` and `:`), non-ASCII characters written as themselves, not `\\u` escapes;
- strings, booleans and `null` as JSON has them; integers as JSON integers;
- decimal numbers (`decimal.Decimal` and `float`) as JSON *strings* in plain notation: no
  exponent, no trailing zeros, no `+`, `0` for zero (never `-0`): `Decimal("2.50")` is `"2.5"`,
  `1e-7` is `"0.0000001"`. A float is taken at its shortest round-trip value (`repr`), so
  `0.1` is `"0.1"`; NaN and infinities are refused;
- times (`datetime`, which must carry a time zone) as strings in UTC, ISO 8601 with
  microseconds and a `Z`: `"2026-05-20T12:00:00.000000Z"`;
- lists and tuples as arrays, in their order.

Anything else is refused with `LedgerError`. Hashes are SHA-256, written as 64 lower-case
hexadecimal characters.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from p2pmarket.errors import LedgerError

__all__ = [
    "canonical_bytes",
    "canonical_text",
    "decimal_text",
    "quantize",
    "sha256_hex",
    "utc_text",
]

RECORD_PLACES = 9
"""Decimal places kept for the numbers of a record (energy, prices, amounts): nano-units,
far below any meter or cent, and enough to remove a solver's floating-point noise."""


def canonical_text(value: Any) -> str:
    """`value` in the canonical encoding, as text (see the module's docstring)."""
    return json.dumps(
        _plain(value, "value"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def canonical_bytes(value: Any) -> bytes:
    """`value` in the canonical encoding: the UTF-8 bytes that are hashed and signed."""
    return canonical_text(value).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of `data` as 64 lower-case hexadecimal characters."""
    return hashlib.sha256(data).hexdigest()


def decimal_text(value: Decimal | float) -> str:
    """A decimal number in plain notation, as the canonical encoding writes it."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LedgerError(f"cannot record the non-finite number {value!r}")
        value = Decimal(repr(value))
    if not value.is_finite():
        raise LedgerError(f"cannot record the non-finite number {value!r}")
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")


def quantize(value: float | Decimal, places: int = RECORD_PLACES) -> Decimal:
    """`value` rounded half-even to `places` decimal places (records keep `RECORD_PLACES`)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LedgerError(f"cannot record the non-finite number {value!r}")
        value = Decimal(repr(value))
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def utc_text(moment: datetime) -> str:
    """A time-zone-aware time in UTC, ISO 8601 with microseconds: `2026-05-20T12:00:00.000000Z`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise LedgerError(f"a recorded time needs a time zone, got {moment.isoformat()}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any, where: str) -> Any:
    """`value` with every part turned into str, int, bool, None, list or dict of those."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, numbers.Integral):  # int and numpy's integers
        return int(value)
    if isinstance(value, numbers.Real):  # float and numpy's floats
        return decimal_text(float(value))
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise LedgerError(f"{where}: object keys must be strings, got {key!r}")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise LedgerError(f"{where}: {type(value).__name__} has no canonical encoding")
