"""One agent's subproblem as a QP for HiGHS, the exact fallback of `local`'s Newton method."""

from __future__ import annotations

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from p2pmarket.core.scenario import FloatArray
from p2pmarket.core.solve.highs_model import pass_model
from p2pmarket.core.solve.lp import _silence_highs_banner

__all__ = ["solve_qp"]


def solve_qp(
    q: FloatArray,
    g: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    rows: npt.NDArray[np.int64],
    coef: FloatArray,
    b: FloatArray,
) -> tuple[FloatArray | None, FloatArray]:
    """min g'w + 1/2 sum q w^2 s.t. A w = b, lo <= w <= hi, with A given as each column's
    (row, coefficient) entries (row -1: none). Returns (w, row multipliers) in the sign of
    `local` (grad = A' mu), or (None, zeros) when HiGHS finds no optimum."""
    n, m = q.size, b.size
    valid = rows >= 0
    col = np.broadcast_to(np.arange(n)[:, None], rows.shape)[valid]
    a = sp.csc_matrix((coef[valid], (rows[valid], col)), shape=(m, n))
    _silence_highs_banner()
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", 10.0)
    pass_model(h, a, g, lo, np.where(np.isfinite(hi), hi, highspy.kHighsInf), b, b)
    hessian = highspy.HighsHessian()
    hessian.dim_ = n
    hessian.format_ = highspy.HessianFormat.kTriangular
    hessian.start_ = np.arange(n + 1, dtype=np.int32)
    hessian.index_ = np.arange(n, dtype=np.int32)
    hessian.value_ = np.asarray(q, dtype=np.float64)
    h.passHessian(hessian)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None, np.zeros(m)
    solution = h.getSolution()
    return np.asarray(solution.col_value, dtype=float), np.asarray(solution.row_dual, float)
