"""The linopy model against the independent scipy formulation (tests/reference_lp.py).

Random scenarios of every design and objective: both formulations must find the same optimum
(1e-6 relative) and the same storage feasibility; the reference is written from SPEC section 3
alone and shares no code with p2pmarket.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import p2pmarket
from p2pmarket.core.scenario import DESIGNS, OBJECTIVES
from reference_lp import solve_reference
from strategies import scenario_dicts

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same_optimum(ours: float, reference: float) -> None:
    assert ours == pytest.approx(reference, rel=1e-6, abs=1e-7)


@SETTINGS
@given(scenario_dicts())
def test_objective_matches_reference_formulation(data: dict[str, Any]) -> None:
    scenario = p2pmarket.Scenario.from_dict(data)
    result = p2pmarket.clear(scenario)
    reference = solve_reference(data)
    assert reference.status == "optimal"
    assert_same_optimum(result.objective, reference.objective)


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("objective", OBJECTIVES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=scenario_dicts(max_peers=8, max_periods=4))
def test_every_design_and_objective_matches_reference(
    design: str, objective: str, data: dict[str, Any]
) -> None:
    scenario = p2pmarket.Scenario.from_dict(data)
    result = p2pmarket.clear(scenario, design=design, objective=objective)
    reference = solve_reference(data, design=design, objective=objective)
    assert_same_optimum(result.objective, reference.objective)


@pytest.mark.parametrize("name", ["five-peer-case-1", "five-peer-case-2"])
@pytest.mark.parametrize("design", DESIGNS)
def test_paper_cases_match_reference_net_positions(name: str, design: str) -> None:
    """On the paper cases the optimum is unique per peer, so net positions must agree too."""
    scenario = p2pmarket.cases.load(name)
    result = p2pmarket.clear(scenario, design=design)
    reference = solve_reference(scenario.to_dict(), design=design)
    assert_same_optimum(result.objective, reference.objective)
    ours = result.dispatch.set_index("peer")["net_import_kw"]
    for peer, values in reference.net_import_kw.items():
        assert ours[peer] == pytest.approx(values[0], abs=1e-6)


def test_infeasible_market_is_infeasible_for_both() -> None:
    data = {
        "periods": 2,
        "peers": [
            {"id": "grid", "role": "grid", "generation": {"max_kw": 10, "offer_per_kwh": 0.1}},
            {"id": "C", "role": "consumer", "load_kw": [5, 50]},
        ],
    }
    assert solve_reference(data).status == "infeasible"
    with pytest.raises(p2pmarket.InfeasibleMarketError, match=r"'C'.*period 1"):
        p2pmarket.clear(p2pmarket.Scenario.from_dict(data))
    assert np.isfinite(
        solve_reference(
            {
                **data,
                "periods": 1,
                "peers": [data["peers"][0], {"id": "C", "role": "consumer", "load_kw": 5}],
            }
        ).objective
    )
