"""Time-varying quantities: a scalar (the same in every period) or one value per period."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "Number", "Series", "series"]

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
