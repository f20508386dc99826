"""Time-varying quantities: a scalar (the same in every period) or one value per period."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "Number", "Series", "series", "stacked"]

Number = float
Series = Number | tuple[Number, ...]
"""A scalar (the same in every period) or one value per period."""

FloatArray = npt.NDArray[np.float64]


def series(value: Series | None, periods: int, default: float = 0.0) -> FloatArray:
    """A scalar or per-period series as a float array of length `periods`."""
    if value is None:
        return np.full(periods, default)
    if isinstance(value, tuple):
        return np.asarray(value, dtype=float)
    return np.full(periods, float(value))


def stacked(values: Sequence[Series | None], periods: int, default: float = 0.0) -> FloatArray:
    """`series` of each value as the rows of one (len(values), periods) array, filled in
    two vectorised steps (the scalars, then the per-period tuples) rather than one array a
    value: a 10,000-peer market has tens of thousands of them."""
    out = np.empty((len(values), periods))
    scalars = [default if v is None else v for v in values]
    at = [i for i, v in enumerate(scalars) if isinstance(v, tuple)]
    if not at:
        out[:] = np.asarray(scalars, dtype=float)[:, None]
        return out
    if len(at) < len(values):
        flat = np.asarray([0.0 if isinstance(v, tuple) else v for v in scalars], dtype=float)
        out[:] = flat[:, None]
    out[at] = np.asarray([scalars[i] for i in at], dtype=float)
    return out
