"""Regression tests of three settlement defects, with every expected value worked by hand.

(a) Individual rationality of the fee collector under `marginal`: its fee income is pay for
    running the market, not a price of energy, so the promise is on `energy_savings` (savings
    leaving out the change in fee income), which must be >= 0 for every peer but the grid.
(b) Two grids: the baseline prices each grid at its own tariff; `mid-market` (defined against
    one grid's prices) is refused with two.
(c) The buying price of a peer that can never buy is NaN (no marginal cost of serving it);
    for every other peer it is the cost of one more kWh there.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import p2pmarket
from strategies import scenario_dicts

NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
"""Each example clears several LPs (about a second): shrinking a failure would take minutes,
so the failing example is reported as drawn."""

# --------------------------------------------------------------------------------------------
# (a) the fee collector's individual rationality under `marginal`
# --------------------------------------------------------------------------------------------

GRID_OFFER = 0.10
GRID_FEE = 0.02  # the grid's export fee: paid on every kWh the grid sells
S_OFFER = 0.03
S_LOAD = 5.0
C_LOAD = 10.0
INTRA = 0.005  # fee inside the community {S, C}


def collector_scenario(s_max_kw: float) -> dict[str, Any]:
    """grid (0.10 $/kWh, export fee 0.02), S (prosumer, 5 kW load, cheap generation at
    0.03) and C (consumer, 10 kW) in community {S, C}; S collects the fees. One hour."""
    return {
        "name": "fee collector",
        "design": "p2p",
        "objective": "system-cost",
        "fee_collector": "S",
        "communities": [{"id": "K", "members": ["S", "C"], "intra_fee": INTRA}],
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 1000, "offer_per_kwh": GRID_OFFER},
                "export_fee": GRID_FEE,
            },
            {
                "id": "S",
                "role": "prosumer",
                "load_kw": S_LOAD,
                "generation": {"max_kw": s_max_kw, "offer_per_kwh": S_OFFER},
                "export_fee": 0.02,
            },
            {"id": "C", "role": "consumer", "load_kw": C_LOAD},
        ],
    }


def expected_collector_bills(s_max_kw: float) -> dict[str, dict[str, float]]:
    """Baseline and market costs of S and C under `marginal`, by hand.

    Baseline (each peer trades with the grid alone; the grid buys nothing): S serves its own
    load (0.03 < 0.10 + 0.02) and cannot sell; C buys 10 kWh from the grid at 0.10 + fee 0.02.
    The fees (10 x 0.02) go to S. So S's energy cost is 5 x 0.03 and its cost that less 0.20.

    Market (system-cost): S's energy reaches C for 0.03 + 0.005 < 0.12, so S generates
    min(max, 15) and sells the rest of it beyond its own load to C; the grid serves what is
    left of C's load. Marginal prices (the optimum is non-degenerate):
    * S has spare capacity (max 20): S is the marginal supplier everywhere; S's price is its
      offer 0.03, C's is 0.03 + 0.005. S sells 10 kWh at 0.03 (C's price less the fee) and
      collects 10 x 0.005. S gains nothing on energy: energy_savings 0, but its fee income
      drops from 0.20 to 0.05, so savings = -0.15.
    * S at capacity (max 10): the grid is marginal for C (price 0.10 + 0.02); one more kWh at
      S would be taken from C, who would buy it from the grid saving the intra fee: S's price
      0.12 - 0.005. S sells 5 kWh at 0.115; fees 5 x 0.005 (S -> C) + 5 x 0.02 (grid -> C).
    """
    fees_baseline = C_LOAD * GRID_FEE
    s_energy_baseline = S_LOAD * S_OFFER
    generated = min(s_max_kw, S_LOAD + C_LOAD)
    sold = generated - S_LOAD
    from_grid = C_LOAD - sold
    price_c = GRID_OFFER + GRID_FEE if from_grid > 0 else S_OFFER + INTRA
    to_seller = price_c - INTRA  # what S receives per kWh sold to C
    fees_market = sold * INTRA + from_grid * GRID_FEE
    s_energy_market = generated * S_OFFER - sold * to_seller
    c_market = sold * (to_seller + INTRA) + from_grid * price_c
    return {
        "S": {
            "cost_baseline": s_energy_baseline - fees_baseline,
            "cost_market": s_energy_market - fees_market,
            "received_fees": fees_market,
            "energy_savings": s_energy_baseline - s_energy_market,
        },
        "C": {
            "cost_baseline": C_LOAD * (GRID_OFFER + GRID_FEE),
            "cost_market": c_market,
            "received_fees": 0.0,
            "energy_savings": C_LOAD * (GRID_OFFER + GRID_FEE) - c_market,
        },
    }


def test_hand_computed_collector_bills_are_what_the_docs_describe() -> None:
    """The hand computation itself, in numbers (guards the helper above)."""
    spare = expected_collector_bills(20.0)
    assert spare["S"]["cost_baseline"] == pytest.approx(0.15 - 0.20)
    assert spare["S"]["cost_market"] == pytest.approx(0.45 - 0.30 - 0.05)
    assert spare["S"]["energy_savings"] == pytest.approx(0.0)
    assert spare["C"]["cost_market"] == pytest.approx(10 * 0.035)
    tight = expected_collector_bills(10.0)
    assert tight["S"]["cost_market"] == pytest.approx(0.30 - 5 * 0.115 - (5 * 0.005 + 5 * 0.02))
    assert tight["S"]["energy_savings"] == pytest.approx(0.15 - (0.30 - 5 * 0.115))
    assert tight["C"]["cost_market"] == pytest.approx(10 * 0.12)


@pytest.mark.parametrize("s_max_kw", [20.0, 10.0], ids=["S-has-spare", "S-at-capacity"])
def test_fee_collector_is_individually_rational_on_its_energy_account(s_max_kw: float) -> None:
    scenario = p2pmarket.Scenario.from_dict(collector_scenario(s_max_kw))
    run = p2pmarket.run_market(scenario, rule="marginal")
    assert run.settlement.fee_collector == "S"
    bills = run.settlement.bills.set_index("peer")
    expected = expected_collector_bills(s_max_kw)
    for peer, values in expected.items():
        for column, value in values.items():
            assert bills.loc[peer, column] == pytest.approx(value, abs=1e-9), (peer, column)
        assert bills.loc[peer, "savings"] == pytest.approx(
            values["cost_baseline"] - values["cost_market"], abs=1e-9
        )
    # The promise: no peer but the grid worse off on its energy account ...
    assert (bills.drop(index="grid").energy_savings >= -1e-9).all(), bills
    # ... and energy_savings differs from savings only for the collector.
    for peer in ("grid", "C"):
        assert bills.loc[peer, "energy_savings"] == pytest.approx(bills.loc[peer, "savings"])
    if s_max_kw == 20.0:
        # Why the promise is not on `savings`: the collector's fee income falls (fewer kWh pay
        # the grid's export fee) although it loses nothing on energy.
        assert bills.loc["S", "savings"] == pytest.approx(-0.15, abs=1e-9)


def non_grid_ids(data: dict[str, Any]) -> list[str]:
    return [p["id"] for p in data["peers"] if p["role"] != "grid"]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=NO_SHRINK,
)
@given(st.data(), st.sampled_from(["p2p", "hybrid"]))
def test_marginal_is_individually_rational_on_energy_whoever_collects_the_fees(
    data: st.DataObject, design: str
) -> None:
    """tests/test_settlement.py's individual-rationality property (designs that keep direct
    links to the grid, system-cost duals, marginal rule) with a random fee collector."""
    drawn = copy.deepcopy(data.draw(scenario_dicts()))
    drawn["fee_collector"] = data.draw(st.sampled_from(non_grid_ids(drawn)))
    scenario = p2pmarket.Scenario.from_dict(drawn)
    run = p2pmarket.run_market(scenario, design=design, objective="system-cost", rule="marginal")
    bills = run.settlement.bills.set_index("peer")
    members = bills.loc[non_grid_ids(drawn)]
    assert (members.energy_savings >= -1e-6).all(), members
    others = bills.drop(index=drawn["fee_collector"])
    np.testing.assert_allclose(others.energy_savings, others.savings, atol=1e-9)


# --------------------------------------------------------------------------------------------
# (b) two grids
# --------------------------------------------------------------------------------------------

G1_OFFER, G1_BUY = 0.08, 0.05
G2_OFFER, G2_BUY = 0.12, 0.03
GRID_EXPORT_FEE = 0.01
P_OFFER, P_FEE, P_MAX = 0.01, 0.005, 10.0
C2_LOAD = 10.0


def two_grids(g1_max_kw: float) -> dict[str, Any]:
    """Grids G1 (sells at 0.08, buys at 0.05) and G2 (0.12, 0.03), a consumer C (10 kW) who
    can buy from either, and a producer P (10 kW at 0.01) who can sell to either."""
    return {
        "name": "two grids",
        "design": "p2p",
        "objective": "system-cost",
        "peers": [
            {
                "id": "G1",
                "role": "grid",
                "generation": {"max_kw": g1_max_kw, "offer_per_kwh": G1_OFFER},
                "buy_price_per_kwh": G1_BUY,
                "export_fee": GRID_EXPORT_FEE,
            },
            {
                "id": "G2",
                "role": "grid",
                "generation": {"max_kw": 1000, "offer_per_kwh": G2_OFFER},
                "buy_price_per_kwh": G2_BUY,
                "export_fee": GRID_EXPORT_FEE,
            },
            {"id": "C", "role": "consumer", "load_kw": C2_LOAD},
            {
                "id": "P",
                "role": "producer",
                "generation": {"max_kw": P_MAX, "offer_per_kwh": P_OFFER},
                "export_fee": P_FEE,
            },
        ],
    }


@pytest.mark.parametrize("g1_max_kw", [1000.0, 6.0], ids=["G1-serves-all", "G1-serves-6-kW"])
def test_baseline_prices_each_grid_at_its_own_tariff(g1_max_kw: float) -> None:
    """Baseline by hand: C buys from the cheaper grid G1 (0.08 + fee 0.01 < 0.12 + 0.01), up
    to G1's capacity, the rest from G2; P sells all it can to G1, whose buy price is the
    better one (0.05 - its fee 0.005 > 0.03 - 0.005 > its offer 0.01)."""
    scenario = p2pmarket.Scenario.from_dict(two_grids(g1_max_kw))
    run = p2pmarket.run_market(scenario, rule="marginal")
    bills = run.settlement.bills.set_index("peer")
    from_g1 = min(C2_LOAD, g1_max_kw)
    from_g2 = C2_LOAD - from_g1
    c_baseline = from_g1 * (G1_OFFER + GRID_EXPORT_FEE) + from_g2 * (G2_OFFER + GRID_EXPORT_FEE)
    assert bills.loc["C", "cost_baseline"] == pytest.approx(c_baseline, abs=1e-9)
    if g1_max_kw >= C2_LOAD:
        assert bills.loc["C", "cost_baseline"] == pytest.approx(10 * 0.09)  # not 10 x 0.13
    else:
        assert bills.loc["C", "cost_baseline"] == pytest.approx(6 * 0.09 + 4 * 0.13)
    # P receives G1's buy price in all, the fee coming out of its share.
    p_baseline = P_MAX * P_OFFER - P_MAX * (G1_BUY - P_FEE)
    assert bills.loc["P", "cost_baseline"] == pytest.approx(p_baseline, abs=1e-9)
    assert bills.loc["P", "cost_baseline"] == pytest.approx(0.1 - 0.45)  # not 0.1 - 0.25
    # A grid sells at its offer (its generation cost) and absorbs at its buy price (what it
    # pays in all): nothing gained or lost against its own tariff.
    assert bills.loc["G1", "cost_baseline"] == pytest.approx(0.0, abs=1e-9)
    assert bills.loc["G2", "cost_baseline"] == pytest.approx(0.0, abs=1e-9)


def test_mid_market_refuses_two_grids() -> None:
    scenario = p2pmarket.Scenario.from_dict(two_grids(1000.0))
    with pytest.raises(p2pmarket.OptionError, match="one grid") as caught:
        p2pmarket.run_market(scenario, rule="mid-market")
    assert "2 grid peers" in str(caught.value)
    result = p2pmarket.clear(scenario)
    with pytest.raises(p2pmarket.OptionError, match="one grid"):
        p2pmarket.settle_result(result, "mid-market")


# --------------------------------------------------------------------------------------------
# (c) the price of a peer that can never buy
# --------------------------------------------------------------------------------------------

PERIOD_HOURS = 0.5
DELTA_KW = 1e-3


def prices_scenario() -> dict[str, Any]:
    """Two half-hour periods. grid (0.10, export fee 0.01, no buy price, no load) and P
    (producer, 10 kW at 0.04, fee 0.005, no load, no storage) can never buy; C (consumer,
    8 then 14 kW) and Q (prosumer, 5 kW load, 6 kW at 0.06, fee 0.002) can.

    Period 0 (demand 13): P (0.045 delivered) is used up, Q makes the other 3 kW for itself
    (serving C would cost its fee 0.002 more); the grid (0.11) is idle. Q is marginal:
    price 0.06 at Q, and at C too (P -> C and P -> Q carry energy at the same fee).
    Period 1 (demand 19): P and Q are used up, Q sends 1 kW to C, the grid serves C's
    last 3 kW: price 0.10 + 0.01 at C; one more kWh at Q is one less sent to C, bought from
    the grid instead: 0.11 - 0.002 at Q.
    """
    return {
        "name": "prices",
        "periods": 2,
        "period_hours": PERIOD_HOURS,
        "design": "p2p",
        "objective": "system-cost",
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 1000, "offer_per_kwh": 0.10},
                "export_fee": 0.01,
            },
            {
                "id": "P",
                "role": "producer",
                "generation": {"max_kw": 10, "offer_per_kwh": 0.04},
                "export_fee": 0.005,
            },
            {"id": "C", "role": "consumer", "load_kw": [8.0, 14.0]},
            {
                "id": "Q",
                "role": "prosumer",
                "load_kw": 5.0,
                "generation": {"max_kw": 6, "offer_per_kwh": 0.06},
                "export_fee": 0.002,
            },
        ],
    }


EXPECTED_PRICES = {("C", 0): 0.06, ("Q", 0): 0.06, ("C", 1): 0.11, ("Q", 1): 0.108}


def with_more_load(data: dict[str, Any], peer: str, period: int, delta_kw: float) -> dict:
    out = copy.deepcopy(data)
    for p in out["peers"]:
        if p["id"] == peer:
            load = p.get("load_kw", 0.0)
            values = list(load) if isinstance(load, list) else [load] * out.get("periods", 1)
            values[period] += delta_kw
            p["load_kw"] = values
    return out


def test_no_buying_price_for_a_peer_that_can_never_buy() -> None:
    data = prices_scenario()
    result = p2pmarket.clear(p2pmarket.Scenario.from_dict(data))
    d = result.dispatch.set_index(["peer", "period"])
    for peer in ("grid", "P"):
        for t in range(2):
            assert np.isnan(d.loc[(peer, t), "price_per_kwh"]), (peer, t)
            assert np.isfinite(d.loc[(peer, t), "sell_price_per_kwh"]), (peer, t)
    # The sellers' selling prices, by hand: P's energy is worth what a buyer pays less
    # P's fee; the grid sells at its offer when it sells (period 1).
    assert d.loc[("P", 0), "sell_price_per_kwh"] == pytest.approx(0.06 - 0.005, abs=1e-9)
    assert d.loc[("P", 1), "sell_price_per_kwh"] == pytest.approx(0.11 - 0.005, abs=1e-9)
    assert d.loc[("grid", 1), "sell_price_per_kwh"] == pytest.approx(0.10, abs=1e-9)
    nodes = result.prices.set_index(["node", "period"])
    assert np.isnan(nodes.loc[("P", 0), "price_per_kwh"])


def test_buying_price_is_the_cost_of_one_more_kwh() -> None:
    data = prices_scenario()
    base = p2pmarket.clear(p2pmarket.Scenario.from_dict(data))
    d = base.dispatch.set_index(["peer", "period"])
    for (peer, t), by_hand in EXPECTED_PRICES.items():
        reported = d.loc[(peer, t), "price_per_kwh"]
        assert np.isfinite(reported)
        assert reported == pytest.approx(by_hand, abs=1e-9), (peer, t)
        more = p2pmarket.clear(
            p2pmarket.Scenario.from_dict(with_more_load(data, peer, t, DELTA_KW))
        )
        marginal_cost = (more.objective - base.objective) / (DELTA_KW * PERIOD_HOURS)
        assert marginal_cost == pytest.approx(reported, abs=1e-6), (peer, t)


def test_a_grid_with_a_buy_price_can_buy_and_is_priced() -> None:
    """A grid that buys surplus has a price: its buy price while it absorbs. The producer
    next to it (no load) still has none. P sells 4 kW to C and 6 kW to the grid (its
    energy is worth 0.04 - 0.005 there, above its offer 0.01); one more kWh at C or at the
    grid is one kWh less absorbed: 0.04."""
    data = {
        "name": "grid buys",
        "objective": "system-cost",
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 1000, "offer_per_kwh": 0.10},
                "buy_price_per_kwh": 0.04,
                "export_fee": 0.01,
            },
            {
                "id": "P",
                "role": "producer",
                "generation": {"max_kw": 10, "offer_per_kwh": 0.01},
                "export_fee": 0.005,
            },
            {"id": "C", "role": "consumer", "load_kw": 4.0},
        ],
    }
    base = p2pmarket.clear(p2pmarket.Scenario.from_dict(data))
    d = base.dispatch.set_index("peer")
    assert d.loc["grid", "absorbed_kw"] == pytest.approx(6.0)
    assert np.isnan(d.loc["P", "price_per_kwh"])
    assert d.loc["P", "sell_price_per_kwh"] == pytest.approx(0.04 - 0.005, abs=1e-9)
    for peer in ("grid", "C"):
        assert d.loc[peer, "price_per_kwh"] == pytest.approx(0.04, abs=1e-9)
        more = p2pmarket.clear(p2pmarket.Scenario.from_dict(with_more_load(data, peer, 0, 1e-3)))
        assert (more.objective - base.objective) / 1e-3 == pytest.approx(0.04, abs=1e-6)
