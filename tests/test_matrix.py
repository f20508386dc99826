"""The array builder (`p2pmarket.core.solve.matrix`) is the linopy model (`model.py`), entry by
entry: same columns with the same bounds and costs, same rows with the same sense and
right-hand side, same coefficients — on every design, objective and shape of market
(storage, flexible demand, absorbing grids, restricted links, contracts, hubs).

Columns and rows are matched through their names in the linopy model (family and
coordinates), never by assuming an order; the comparison is then exact up to float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import p2pmarket
from p2pmarket.core.designs import design_network, peer_data
from p2pmarket.core.designs.hubs import hubs_are_exact
from p2pmarket.core.scenario import series, stacked
from p2pmarket.core.solve.matrix import COLUMNS, ROWS, MatrixLP, build_matrix
from p2pmarket.core.solve.model import build_model
from p2pmarket.types import Design, Objective
from strategies import scenario_dicts

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _positions(model: Any, names: tuple[str, ...], container: str, lp: MatrixLP) -> np.ndarray:
    """For every linopy label of `container` (variables or constraints), its position in the
    array builder's full column (or row) list; -1 where linopy has no such label."""
    items = getattr(model, container)
    blocks = lp.columns if container == "variables" else lp.rows
    total = model._xCounter if container == "variables" else model._cCounter
    out = np.full(total, -1, dtype=np.int64)
    for name in names:
        if name not in items:
            assert blocks[name].size(lp.periods) == 0, name
            continue
        labels = items[name].labels
        block = blocks[name]
        dims = [d for d in labels.dims if d != "period"]
        assert len(dims) == 1
        order = (dims[0], "period") if "period" in labels.dims else (dims[0],)
        labels = labels.transpose(*order)
        # The linopy coordinates of the family, in the builder's element order.
        assert list(labels.indexes[dims[0]]) == list(block.index), name
        values = labels.values
        ok = values >= 0
        out[values[ok]] = block.positions(lp.periods)[ok]
    return out


def assert_same_lp(
    scenario: p2pmarket.Scenario, design: str, objective: str, reduce: bool | None = None
) -> None:
    data = peer_data(scenario)
    net = design_network(scenario, data, Design(design), Objective(objective), reduce)
    model, _ = build_model(scenario, data, net, Objective(objective))
    lp = build_matrix(scenario, data, net, Objective(objective))
    m = model.matrices
    col = _positions(model, COLUMNS, "variables", lp)[m.vlabels]
    row = lp.row_of[_positions(model, ROWS, "constraints", lp)[m.clabels]]
    assert (col >= 0).all() and (row >= 0).all()
    # Every column of the builder is one of linopy's, every kept row one of linopy's rows.
    assert sorted(col) == list(range(lp.a.shape[1]))
    assert sorted(row) == list(range(lp.a.shape[0]))
    np.testing.assert_allclose(lp.lower[col], m.lb, rtol=1e-12, atol=0)
    np.testing.assert_allclose(lp.upper[col], m.ub, rtol=1e-12, atol=0)
    np.testing.assert_allclose(lp.c[col], m.c, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(lp.sense[row], np.asarray(m.sense))
    np.testing.assert_allclose(lp.b[row], m.b, rtol=1e-12, atol=1e-15)
    ours = sp.csr_matrix(lp.a)[row][:, col]
    theirs = sp.csr_matrix(m.A)
    theirs.eliminate_zeros()
    difference = abs(ours - theirs)
    assert difference.nnz == 0 or difference.max() <= 1e-12
    assert ours.nnz == theirs.nnz


@SETTINGS
@given(
    scenario_dicts(),
    st.sampled_from(["p2p", "community", "hybrid"]),
    st.sampled_from(["system-cost", "paper"]),
)
def test_array_builder_is_the_linopy_model(data: dict[str, Any], design: str, objective: str):
    assert_same_lp(p2pmarket.Scenario.from_dict(data), design, objective)


@SETTINGS
@given(
    scenario_dicts(),
    st.sampled_from(["p2p", "hybrid"]),
    st.sampled_from(["system-cost", "paper"]),
)
def test_array_builder_is_the_linopy_hub_model(data: dict[str, Any], design: str, objective: str):
    scenario = p2pmarket.Scenario.from_dict({**data, "design": design, "links": None})
    if not hubs_are_exact(scenario, peer_data(scenario), Objective(objective)):
        return  # the paper objective with negative offers keeps the explicit model
    assert_same_lp(scenario, design, objective, reduce=True)


# A scenario with a feeder is built through linopy only (docs/feeder.md, "Choices"): the array
# builder never sees one, so the feeder case is not compared here.
@pytest.mark.parametrize(
    "case", [n for n in p2pmarket.cases.names() if p2pmarket.cases.load(n).feeder is None]
)
@pytest.mark.parametrize("design", ["p2p", "community", "hybrid"])
def test_array_builder_on_the_paper_cases(case: str, design: str):
    assert_same_lp(p2pmarket.cases.load(case), design, "system-cost")


_VALUES = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda T: st.tuples(
            st.just(T),
            st.lists(st.none() | _VALUES | st.tuples(*[_VALUES] * T), max_size=8),
            _VALUES,
        )
    )
)
def test_stacked_series_are_each_series(case: tuple[int, list[Any], float]):
    """The vectorised per-peer arrays (`stacked`) are `series` of each value, row by row,
    whatever mix of absent values, scalars and per-period tuples."""
    T, values, default = case
    got = stacked(values, T, default)
    assert got.shape == (len(values), T)
    for row, value in zip(got, values, strict=True):
        np.testing.assert_array_equal(row, series(value, T, default))
