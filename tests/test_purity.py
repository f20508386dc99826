"""The core keeps its promises: settlement and KPIs run no solver, a scenario is checked the
same however it is built, and errors carry their facts as fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import highspy
import linopy
import numpy as np
import pandas as pd
import pytest

import p2pmarket
from p2pmarket.core.scenario import Community, Generation, Peer, Scenario
from p2pmarket.core.settlement import baseline_scenario

CASE = "five-peer-case-2"


class SolverCalled(AssertionError):
    """Raised by the patched solver: something tried to solve."""


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise SolverCalled("the solver was called")


@pytest.fixture(scope="module")
def cleared() -> dict[str, p2pmarket.ClearingResult]:
    """The case cleared as it is (`paper`), under `system-cost`, and its baseline (cleared
    under `system-cost`, as settlement needs: the case's own objective is `paper`)."""
    scenario = p2pmarket.cases.load(CASE)
    assert scenario.objective == "paper"
    return {
        "paper": p2pmarket.clear(scenario),
        "market": p2pmarket.clear(scenario, objective="system-cost"),
        "baseline": p2pmarket.clear(
            baseline_scenario(scenario), design="p2p", objective="system-cost"
        ),
    }


@pytest.fixture
def no_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call of linopy's or HiGHS's solve raises `SolverCalled`."""
    monkeypatch.setattr(linopy.Model, "solve", _refuse)
    monkeypatch.setattr(highspy.Highs, "run", _refuse)
    monkeypatch.setattr(highspy.Highs, "solve", _refuse)


# --- settlement and KPIs run no solver ----------------------------------------------------


def test_the_patch_stops_the_solver(
    cleared: dict[str, p2pmarket.ClearingResult], no_solver: None
) -> None:
    """The patch is real: clearing fails while it is active."""
    with pytest.raises(p2pmarket.SolverError, match="the solver was called"):
        p2pmarket.clear(cleared["market"].scenario)
    with pytest.raises(SolverCalled):
        highspy.Highs().run()


@pytest.mark.parametrize("rule", list(p2pmarket.Rule))
def test_settle_and_kpis_run_no_solver(
    cleared: dict[str, p2pmarket.ClearingResult], no_solver: None, rule: p2pmarket.Rule
) -> None:
    market, baseline = cleared["market"], cleared["baseline"]
    assert len(market.scenario.grid_ids) == 1  # every rule applies (mid-market needs one grid)
    settlement = p2pmarket.settle(market, baseline, rule)
    k = p2pmarket.kpis(market, settlement)

    assert settlement.rule == rule
    t = settlement.trades
    assert len(t) > 0
    # Budget balance: buyers pay sellers' receipts plus the fees collected.
    assert t["buyer_pays"].sum() == pytest.approx(
        t["seller_receives"].sum() + settlement.fees_collected, abs=1e-9
    )
    assert settlement.fees_collected == pytest.approx(t["fee"].sum(), abs=1e-12)
    bills = settlement.bills
    assert list(bills["peer"]) == list(market.scenario.peer_ids)
    assert np.isfinite(bills[["cost_baseline", "cost_market"]].to_numpy()).all()
    np.testing.assert_allclose(
        bills["savings"], bills["cost_baseline"] - bills["cost_market"], atol=1e-9
    )
    # Energy sold = energy bought; nothing traded is lost.
    assert bills["bought_kwh"].sum() == pytest.approx(bills["sold_kwh"].sum())
    # A p2p market: the settled bilateral trades are the cleared trades.
    assert t["energy_kwh"].sum() == pytest.approx(market.trades["energy_kwh"].sum())
    if rule == p2pmarket.Rule.MARGINAL:
        # Individual rationality of the marginal rule under p2p (settlement's promise).
        others = bills[~bills["peer"].isin(market.scenario.grid_ids)]
        assert (others["energy_savings"] >= -1e-9).all(), others

    assert k.rule == rule
    assert k.objective == market.objective
    assert k.social_welfare == pytest.approx(-k.total_cost)
    assert k.fees_collected == pytest.approx(settlement.fees_collected)
    parts = k.traded_kwh
    assert parts["inside"] + parts["between"] + parts["with_grid"] == pytest.approx(parts["total"])
    assert parts["total"] == pytest.approx(t["energy_kwh"].sum())
    for share in (k.self_sufficiency, k.self_consumption):
        assert share is None or 0.0 <= share <= 1.0


def test_baseline_of_a_paper_scenario_can_be_settled_against(
    cleared: dict[str, p2pmarket.ClearingResult],
) -> None:
    """`settle`'s baseline is "the clearing of `baseline_scenario(market.scenario)`": cleared
    as it comes, it must be one that `settle` takes, whatever the market's own objective
    (`baseline_scenario` already fixes the design to `p2p`)."""
    scenario = cleared["market"].scenario
    baseline = p2pmarket.clear(baseline_scenario(scenario), design="p2p")
    assert baseline.objective_kind == p2pmarket.Objective.SYSTEM_COST
    settlement = p2pmarket.settle(cleared["market"], baseline, "marginal")
    expected = p2pmarket.settle(cleared["market"], cleared["baseline"], "marginal")
    pd.testing.assert_frame_equal(settlement.bills, expected.bills)


def test_settle_refuses_a_paper_clearing(
    cleared: dict[str, p2pmarket.ClearingResult], no_solver: None
) -> None:
    with pytest.raises(p2pmarket.OptionError) as market:
        p2pmarket.settle(cleared["paper"], cleared["baseline"], "marginal")
    assert market.value.field == "market"
    assert "paper" in str(market.value)


def test_settle_result_settles_a_paper_clearing_as_its_system_cost_twin(
    cleared: dict[str, p2pmarket.ClearingResult],
) -> None:
    via_app = p2pmarket.settle_result(cleared["paper"], "marginal")
    direct = p2pmarket.settle(cleared["market"], cleared["baseline"], "marginal")
    assert via_app.cleared_with == p2pmarket.Objective.SYSTEM_COST
    pd.testing.assert_frame_equal(via_app.bills, direct.bills, check_exact=False, atol=1e-9)
    assert via_app.fees_collected == pytest.approx(direct.fees_collected)


# --- a scenario is checked the same however it is built -----------------------------------

GRID = {"id": "grid", "role": "grid", "generation": {"max_kw": 100.0, "offer_per_kwh": 0.1}}


def _grid() -> Peer:
    return Peer(id="grid", role="grid", generation=Generation(max_kw=100.0, offer_per_kwh=0.1))


def _consumer(load_kw: float | tuple[float, ...] = 1.0, peer_id: str = "A") -> Peer:
    return Peer(id=peer_id, role="consumer", load_kw=load_kw)


REFUSED: dict[str, tuple[dict[str, Any], Callable[[], Scenario], str]] = {
    "duplicate peer id": (
        {"peers": [GRID, {"id": "A", "role": "consumer"}, {"id": "A", "role": "consumer"}]},
        lambda: Scenario(peers=(_grid(), _consumer(), _consumer())),
        "duplicate peer id 'A'",
    ),
    "consumer with generation": (
        {"peers": [GRID, {"id": "A", "role": "consumer", "generation": {"max_kw": 5.0}}]},
        lambda: Scenario(
            peers=(_grid(), Peer(id="A", role="consumer", generation=Generation(max_kw=5.0)))
        ),
        "peers[A].generation",
    ),
    "3 values in 24 periods": (
        {"periods": 24, "peers": [GRID, {"id": "A", "role": "consumer", "load_kw": [1.0] * 3}]},
        lambda: Scenario(periods=24, peers=(_grid(), _consumer((1.0, 1.0, 1.0)))),
        "peers[A].load_kw: 3 values given, expected 24",
    ),
    "unknown community member": (
        {
            "communities": [{"id": "C", "members": ["A", "X"]}],
            "peers": [GRID, {"id": "A", "role": "consumer"}],
        },
        lambda: Scenario(
            communities=(Community(id="C", members=("A", "X")),), peers=(_grid(), _consumer())
        ),
        "communities[C].members: unknown peer 'X'",
    ),
    "negative load": (
        {"peers": [GRID, {"id": "A", "role": "consumer", "load_kw": -1.0}]},
        lambda: Scenario(peers=(_grid(), _consumer(-1.0))),
        "peers[A].load_kw: must be >= 0",
    ),
    "periods below 1": (
        {"periods": 0, "peers": [GRID]},
        lambda: Scenario(periods=0, peers=(_grid(),)),
        "periods",
    ),
    "unknown field": (
        {"peers": [GRID], "colour": "blue"},
        lambda: Scenario(peers=(_grid(),), colour="blue"),
        "colour: unknown field",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_direct_scenario_refuses_what_from_dict_refuses(case: str) -> None:
    data, build, expected = REFUSED[case]
    with pytest.raises(p2pmarket.ScenarioError) as from_dict:
        Scenario.from_dict(data)
    with pytest.raises(p2pmarket.ScenarioError) as direct:
        build()
    assert str(direct.value) == str(from_dict.value)
    assert expected in str(from_dict.value)
    assert direct.value.field == from_dict.value.field


PART_REFUSED: dict[str, tuple[dict[str, Any], Callable[[], object], str]] = {
    "unknown role": ({"id": "A", "role": "battery"}, lambda: Peer(id="A", role="battery"), "role"),
    "NaN load": (
        {"id": "A", "role": "consumer", "load_kw": float("nan")},
        lambda: Peer(id="A", role="consumer", load_kw=float("nan")),
        "load_kw",
    ),
    "text load": (
        {"id": "A", "role": "consumer", "load_kw": "1"},
        lambda: Peer(id="A", role="consumer", load_kw="1"),
        "load_kw",
    ),
    "text generation bound": (
        {"id": "A", "role": "prosumer", "generation": {"max_kw": "lots"}},
        lambda: Generation(max_kw="lots"),
        "max_kw",
    ),
}


@pytest.mark.parametrize("case", list(PART_REFUSED))
def test_scenario_parts_refuse_with_a_scenario_error(case: str) -> None:
    """What `from_dict` refuses in a peer, building that peer (`Peer(...)`, `Generation(...)`)
    for `Scenario(...)` refuses with a `ScenarioError` too, naming the field, not with
    pydantic's own `ValidationError`."""
    peer, build, field = PART_REFUSED[case]
    with pytest.raises(p2pmarket.ScenarioError, match=field):
        Scenario.from_dict({"peers": [GRID, peer]})
    with pytest.raises(p2pmarket.ScenarioError) as refused:
        build()
    assert field in str(refused.value)


def test_replace_checks_the_new_periods() -> None:
    three = Scenario.from_dict(
        {"periods": 3, "peers": [GRID, {"id": "A", "role": "consumer", "load_kw": [1.0, 2.0, 3.0]}]}
    )
    with pytest.raises(p2pmarket.ScenarioError, match=r"peers\[A\]\.load_kw: 3 values given"):
        three.replace(periods=24)
    one = Scenario(peers=(_grid(), _consumer()))
    assert one.periods == 1
    assert one.replace(periods=24).periods == 24  # scalars hold in every period
    with pytest.raises(p2pmarket.ScenarioError, match=r"peers\[A\]\.load_kw: 3 values given"):
        one.replace(periods=24, peers=[GRID, {"id": "A", "role": "consumer", "load_kw": [1.0] * 3}])


# --- errors carry their facts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "period"),
    [
        # No allowed link at all: refused before solving.
        ({"links": [], "peers": [GRID, {"id": "A", "role": "consumer", "load_kw": 1.0}]}, 0),
        ({"peers": [{"id": "A", "role": "consumer", "load_kw": 1.0}]}, 0),
        (
            {
                "periods": 3,
                "links": [],
                "peers": [GRID, {"id": "A", "role": "consumer", "load_kw": [0.0, 0.0, 2.0]}],
            },
            2,
        ),
        # A seller too small: located by the elastic re-solve.
        (
            {
                "periods": 2,
                "peers": [
                    {"id": "P", "role": "prosumer", "generation": {"max_kw": 1.0}},
                    {"id": "A", "role": "consumer", "load_kw": [0.5, 5.0]},
                ],
            },
            1,
        ),
    ],
)
def test_infeasible_market_names_peer_and_period(data: dict[str, Any], period: int) -> None:
    with pytest.raises(p2pmarket.InfeasibleMarketError) as refused:
        p2pmarket.clear(Scenario.from_dict(data))
    assert refused.value.peer == "A"
    assert refused.value.period == period
    assert refused.value.reason
    assert "'A'" in str(refused.value) and f"period {period}" in str(refused.value)


@pytest.mark.parametrize("field", ["design", "objective"])
def test_unknown_choice_names_its_field(field: str) -> None:
    scenario = Scenario(peers=(_grid(), _consumer()))
    with pytest.raises(p2pmarket.OptionError) as refused:
        p2pmarket.clear(scenario, **{field: "x"})
    assert refused.value.field == field
    assert "'x'" in str(refused.value)


def test_unknown_rule_names_its_field(cleared: dict[str, p2pmarket.ClearingResult]) -> None:
    with pytest.raises(p2pmarket.OptionError) as refused:
        p2pmarket.settle(cleared["market"], cleared["baseline"], "x")
    assert refused.value.field == "rule"
