"""The start from the periods (issue 15, item 2; `p2pmarket.core.solve.crash`): a
storage-coupled LP started from its periods' bases, solved with the batteries idle, has the
optimum of the same LP solved from cold.

Expected values come from the cold solve of the same LP (HiGHS from scratch, the start
switched off) and from the basis's own bookkeeping (as many basic variables as rows).
"""

from __future__ import annotations

from typing import Any

import highspy
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import p2pmarket
from p2pmarket.core.designs import design_network, peer_data
from p2pmarket.core.solve import SolverOptions
from p2pmarket.core.solve import highs as highs_module
from p2pmarket.core.solve.crash import _reordered, period_basis
from p2pmarket.core.solve.matrix import MatrixLP, build_matrix
from p2pmarket.types import Design, Objective
from strategies import scenario_dicts

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    # monkeypatch is used through its own context, undone after each example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _matrix(s: p2pmarket.Scenario, design: str) -> MatrixLP:
    data = peer_data(s)
    net = design_network(s, data, Design(design), Objective.SYSTEM_COST, None)
    return build_matrix(s, data, net, Objective.SYSTEM_COST)


def _cleared(s: p2pmarket.Scenario, design: str, start: bool, monkeypatch: Any) -> Any:
    """The market cleared with the start from the periods on every size (`start`) or never."""
    with monkeypatch.context() as m:
        m.setattr(highs_module, "CRASH_MIN_COLUMNS", 0 if start else 10**12)
        return p2pmarket.clear(s, design=design, options=SolverOptions())


@SETTINGS
@given(
    data=scenario_dicts(max_peers=10, max_periods=6),
    design=st.sampled_from(["p2p", "community", "hybrid"]),
)
def test_a_start_from_the_periods_keeps_the_optimum(
    data: dict[str, Any], design: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = p2pmarket.Scenario.from_dict(data)
    assume(period_basis(_matrix(s, design)).basis is not None)  # storage, periods, a start found
    started = _cleared(s, design, True, monkeypatch)
    cold = _cleared(s, design, False, monkeypatch)
    assert started.objective == pytest.approx(cold.objective, rel=1e-9, abs=1e-7)


@pytest.mark.parametrize("design", ["p2p", "community", "hybrid"])
def test_a_community_with_batteries_starts_from_a_full_basis(
    design: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generated community (30 households, 15 % with batteries, two days): the basis has
    a status for every column and row and exactly one basic variable per row; HiGHS starts
    from it and reaches the cold solve's optimum."""
    pytest.importorskip("demandlib")
    from p2pmarket.generate import community

    s = community(30, 0.5, 0.3, seed=4, hours=48)
    lp = _matrix(s, design)
    start = period_basis(lp)
    basis = start.basis
    assert basis is not None and start.solver_seconds > 0
    rows, cols = lp.a.shape
    assert len(basis.col_status) == cols and len(basis.row_status) == rows
    basic = highspy.HighsBasisStatus.kBasic
    assert (
        sum(x == basic for x in basis.col_status) + sum(x == basic for x in basis.row_status)
        == rows
    )
    started = _cleared(s, design, True, monkeypatch)
    cold = _cleared(s, design, False, monkeypatch)
    assert started.objective == pytest.approx(cold.objective, rel=1e-9)


def test_no_start_where_a_period_needs_the_batteries(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the grid short in period 1, the consumer is served only by the battery charged
    before: that period cannot be solved with the batteries idle, so there is no start, and
    the market still clears to the cold solve's optimum."""
    s = p2pmarket.Scenario.from_dict(
        {
            "name": "needs the battery",
            "periods": 3,
            "peers": [
                {
                    "id": "grid",
                    "role": "grid",
                    "generation": {
                        "min_kw": 0.0,
                        "max_kw": [20.0, 2.0, 20.0],
                        "offer_per_kwh": 0.1,
                    },
                },
                {"id": "home", "role": "consumer", "load_kw": [1.0, 6.0, 1.0]},
                {
                    "id": "store",
                    "role": "prosumer",
                    "load_kw": 0.0,
                    "generation": {"min_kw": 0.0, "max_kw": 0.0, "offer_per_kwh": 0.05},
                    "storage": {"capacity_kwh": 10.0, "power_kw": 5.0, "initial_soc": 0.5},
                },
            ],
        }
    )
    assert period_basis(_matrix(s, "p2p")).basis is None
    started = _cleared(s, "p2p", True, monkeypatch)
    cold = _cleared(s, "p2p", False, monkeypatch)
    assert started.objective == pytest.approx(cold.objective, rel=1e-12)
    served = started.dispatch.query("peer == 'store' and period == 1")["discharge_kw"]
    assert float(served.iloc[0]) == pytest.approx(4.0)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 25), st.integers(1, 25), st.floats(0.0, 0.6), st.integers(0, 2**31))
def test_blocks_are_reordered_as_scipy_indexes_them(
    n_rows: int, n_cols: int, density: float, seed: int
) -> None:
    """The blocks' matrix taken by column pointers and renumbered rows (`_reordered`) is the
    matrix scipy's fancy indexing gives for the same rows and columns, entries sorted."""
    rng = np.random.default_rng(seed)
    a = sp.random(n_rows, n_cols, density=density, format="csc", random_state=seed)
    cols = rng.permutation(n_cols)[: rng.integers(1, n_cols + 1)]
    rows = rng.permutation(n_rows)[: rng.integers(1, n_rows + 1)]
    got = _reordered(a, cols, rows)
    want = a.tocsr()[rows][:, cols].tocsc()
    assert got.shape == want.shape and got.nnz == want.nnz and got.has_sorted_indices
    np.testing.assert_array_equal(got.toarray(), want.toarray())
