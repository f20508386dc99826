"""Storage: charging and discharging at once, hand-checked cases, and the summary's sums."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import p2pmarket
from p2pmarket.core.analysis import charging_cycles, storage_summary
from reference_lp import solve_reference
from strategies import scenario_dicts


def two_period_market(efficiency: float, final_soc: float = 0.0) -> dict[str, Any]:
    """Cheap energy in period 0, dear in period 1; a battery at the prosumer shifts it."""
    return {
        "periods": 2,
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 100, "offer_per_kwh": [0.05, 0.2]},
            },
            {
                "id": "B",
                "role": "prosumer",
                "load_kw": [0, 9],
                "storage": {
                    "capacity_kwh": 20,
                    "power_kw": 20,
                    "charge_efficiency": efficiency,
                    "discharge_efficiency": efficiency,
                    "final_soc": final_soc,
                },
            },
        ],
    }


def test_storage_shifts_cheap_energy_by_hand() -> None:
    # 9 kWh out in period 1 needs 9/0.9 = 10 kWh in the cells, i.e. 10/0.9 kWh bought at 0.05.
    result = p2pmarket.clear(p2pmarket.Scenario.from_dict(two_period_market(0.9)))
    assert result.objective == pytest.approx(0.05 * 10 / 0.9)
    b = result.dispatch[result.dispatch.peer == "B"].set_index("period")
    assert b.charge_kw.tolist() == pytest.approx([10 / 0.9, 0])
    assert b.discharge_kw.tolist() == pytest.approx([0, 9])
    assert b.soc_kwh.tolist() == pytest.approx([10, 0])
    summary = storage_summary(result).iloc[0]
    assert summary.losses_kwh == pytest.approx(10 / 0.9 - 9)
    assert summary.charging_cycles == 1
    assert summary.simultaneous_periods == 0


def test_wasteful_simultaneous_charge_and_discharge_never_happens() -> None:
    """One period, empty at both ends: every kWh cycled through the battery is paid for and
    lost, so the optimum never charges and discharges at once."""
    data = two_period_market(0.8)
    data["periods"] = 1
    data["peers"][0]["generation"]["offer_per_kwh"] = 0.1
    data["peers"][1]["load_kw"] = 5
    result = p2pmarket.clear(p2pmarket.Scenario.from_dict(data))
    assert storage_summary(result).iloc[0].simultaneous_periods == 0
    assert result.objective == pytest.approx(0.5)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario_dicts(max_periods=6, flexible=False))
def test_simultaneous_charge_and_discharge_only_where_it_costs_nothing(
    data: dict[str, Any],
) -> None:
    """Where our optimum charges and discharges at once, an optimum without it exists at the
    same cost: the reference LP with a tiny cost on storage throughput finds one."""
    result = p2pmarket.clear(p2pmarket.Scenario.from_dict(data))
    summary = storage_summary(result)
    if summary.empty or summary.simultaneous_periods.sum() == 0:
        return
    tie_broken = solve_reference(data, storage_penalty=1e-7)
    assert tie_broken.objective == pytest.approx(result.objective, rel=1e-6, abs=1e-5)
    for peer, charge in tie_broken.charge_kw.items():
        unit = next(p for p in data["peers"] if p["id"] == peer)["storage"]
        if unit["charge_efficiency"] * unit["discharge_efficiency"] < 1:
            both = np.minimum(charge, tie_broken.discharge_kw[peer])
            assert both.max() < 1e-6


def test_charging_cycles_count_runs_of_charging() -> None:
    assert charging_cycles(np.array([0, 1, 1, 0, 2, 0, 0, 3])) == 3
    assert charging_cycles(np.array([0.0, 0.0])) == 0
    assert charging_cycles(np.array([1e-9, 5.0])) == 1
