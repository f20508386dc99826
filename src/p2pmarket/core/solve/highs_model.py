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
    h: Any, a: sp.csc_matrix, c: Any, lower: Any, upper: Any, row_lower: Any, row_upper: Any
) -> None:
    """`h.passModel` of min c'x s.t. row_lower <= a x <= row_upper, lower <= x <= upper,
    from the arrays in one call: building a `HighsLp` copies each array into it first
    (about 20 ms at 50,000 columns, a tenth of that this way). Every column continuous."""
    n_rows, n_cols = a.shape
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
        np.zeros(n_cols, dtype=np.int32),  # HiGHS refuses the call without integrality
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
