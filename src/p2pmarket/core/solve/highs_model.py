"""An LP given as arrays, as highspy's `HighsLp` (column-wise matrix), and what of it
changed from one LP to the next (`changed`: only that is handed over again)."""

from __future__ import annotations

from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

__all__ = ["changed", "highs_model"]


def highs_model(
    a: sp.csc_matrix, c: Any, lower: Any, upper: Any, row_lower: Any, row_upper: Any
) -> Any:
    """min c'x s.t. row_lower <= a x <= row_upper, lower <= x <= upper, for `passModel`."""
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = a.shape[1], a.shape[0]
    model.col_cost_ = c
    model.col_lower_ = lower
    model.col_upper_ = upper
    model.row_lower_ = row_lower
    model.row_upper_ = row_upper
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_ = a.indptr
    model.a_matrix_.index_ = a.indices
    model.a_matrix_.value_ = a.data
    return model


def changed(*pairs: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int32]]:
    """The positions where any (new, old) pair of arrays differs (NaN-free arrays; an
    infinite bound equals itself), as HiGHS's `change...` calls take them."""
    differs = pairs[0] != pairs[1]
    for i in range(2, len(pairs), 2):
        differs |= pairs[i] != pairs[i + 1]
    return np.flatnonzero(differs).astype(np.int32)
