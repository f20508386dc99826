"""An LP given as arrays, as highspy's `HighsLp` (column-wise matrix)."""

from __future__ import annotations

from typing import Any

import highspy
import scipy.sparse as sp

__all__ = ["highs_model"]


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
