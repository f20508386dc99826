"""An LP given as arrays handed to HiGHS (`pass_model`, column-wise matrix), and what of it
changed from one LP to the next (`changed`: only that is handed over again)."""

from __future__ import annotations

from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from p2pmarket.errors import SolverError

__all__ = ["changed", "pass_model"]


def pass_model(
    h: Any,
    a: sp.csc_matrix,
    c: Any,
    lower: Any,
    upper: Any,
    row_lower: Any,
    row_upper: Any,
    *,
    logged: bool = False,
) -> None:
    """`h.passModel` of min c'x s.t. row_lower <= a x <= row_upper, lower <= x <= upper.

    From the arrays in one call: building a `HighsLp` copies each array into it element by
    element first (about 20 ms at 50,000 columns, a tenth of that this way). That call needs
    every column's integrality (all continuous here), and HiGHS's log then warns of "no
    integer variables in model with non-empty integrality": where the solve is `logged`
    (the user asked for HiGHS's log), the LP goes as a `HighsLp`, which has none. Either way
    HiGHS solves the same LP along the same path."""
    n_rows, n_cols = a.shape
    if logged:
        model = highspy.HighsLp()
        model.num_col_, model.num_row_ = n_cols, n_rows
        model.col_cost_, model.col_lower_, model.col_upper_ = c, lower, upper
        model.row_lower_, model.row_upper_ = row_lower, row_upper
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = a.indptr
        model.a_matrix_.index_ = a.indices
        model.a_matrix_.value_ = a.data
        status = h.passModel(model)
    else:
        status = h.passModel(
            n_cols,
            n_rows,
            int(a.nnz),
            int(highspy.MatrixFormat.kColwise),
            int(highspy.ObjSense.kMinimize),
            0.0,
            np.ascontiguousarray(c, dtype=np.float64),
            np.ascontiguousarray(lower, dtype=np.float64),
            np.ascontiguousarray(upper, dtype=np.float64),
            np.ascontiguousarray(row_lower, dtype=np.float64),
            np.ascontiguousarray(row_upper, dtype=np.float64),
            np.ascontiguousarray(a.indptr, dtype=np.int32),
            np.ascontiguousarray(a.indices, dtype=np.int32),
            np.ascontiguousarray(a.data, dtype=np.float64),
            np.zeros(n_cols, dtype=np.int32),  # every column continuous
        )
    if status == highspy.HighsStatus.kError:
        raise SolverError(f"solver 'highs' refused the LP ({n_rows} rows, {n_cols} columns)")


def changed(*pairs: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int32]]:
    """The positions where any (new, old) pair of arrays differs (NaN-free arrays; an
    infinite bound equals itself), as HiGHS's `change...` calls take them."""
    differs = pairs[0] != pairs[1]
    for i in range(2, len(pairs), 2):
        differs |= pairs[i] != pairs[i + 1]
    return np.flatnonzero(differs).astype(np.int32)
