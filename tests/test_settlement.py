"""Settlement and KPIs: market invariants on random scenarios, and hand-checked cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import p2pmarket
from p2pmarket.app import settle_result
from p2pmarket.core.flows import bilateral_trades
from p2pmarket.core.kpis import community_shares, gini, jain_index, kpis, traded_volume
from p2pmarket.core.scenario import DESIGNS
from p2pmarket.core.settlement import RULES, baseline_scenario
from strategies import scenario_dicts

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cleared(data: dict[str, Any], design: str) -> p2pmarket.ClearingResult:
    scenario = p2pmarket.Scenario.from_dict(data)
    return p2pmarket.clear(scenario, design=design, objective="system-cost")


@SETTINGS
@given(scenario_dicts(), st.sampled_from(DESIGNS), st.sampled_from(RULES))
def test_budget_balance(data: dict[str, Any], design: str, rule: str) -> None:
    """Payments by buyers = receipts by sellers + fees collected, under every rule."""
    s = settle_result(cleared(data, design), rule)
    assert s.payments == pytest.approx(s.receipts + s.fees_collected, abs=1e-6)
    lines = s.lines
    paid = (lines.paid_energy + lines.paid_fees).sum()
    received = lines.received_energy.sum()
    assert paid == pytest.approx(received + s.fees_collected, abs=1e-6)


@SETTINGS
@given(scenario_dicts(), st.sampled_from(["p2p", "hybrid"]))
def test_marginal_pricing_is_individually_rational(data: dict[str, Any], design: str) -> None:
    """No peer but the grid is worse off on its energy account (fee income aside) in the
    market than trading with the grid alone; a peer that collects no fees not at all."""
    result = cleared(data, design)
    s = settle_result(result, "marginal")
    members = s.bills[~s.bills.peer.isin(result.scenario.grid_ids)]
    assert (members.energy_savings >= -1e-6).all(), members
    others = members[members.peer != result.scenario.fee_collector]
    assert (others.cost_market <= others.cost_baseline + 1e-6).all(), others


def test_pay_as_offer_and_mid_market_are_not_individually_rational() -> None:
    """A seller with a cheap offer earns only its offer (pay-as-offer) or the mid-market rate,
    less than the grid would pay it for its surplus: the counter-example the docs state."""
    data = {
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 100, "offer_per_kwh": 0.10},
                "buy_price_per_kwh": 0.04,
            },
            {"id": "S", "role": "producer", "generation": {"max_kw": 10, "offer_per_kwh": 0.01}},
            {"id": "C", "role": "consumer", "load_kw": 5},
        ]
    }
    result = cleared(data, "p2p")
    marginal = settle_result(result, "marginal").bills.set_index("peer")
    offer = settle_result(result, "pay-as-offer").bills.set_index("peer")
    # Baseline: S sells 10 kWh to the grid at 0.04 (cost 0.1 - 0.4 = -0.3).
    assert offer.loc["S", "cost_baseline"] == pytest.approx(0.1 - 0.4)
    assert offer.loc["S", "cost_market"] > offer.loc["S", "cost_baseline"]  # worse off
    assert marginal.loc["S", "cost_market"] <= marginal.loc["S", "cost_baseline"] + 1e-9
    data["peers"][1]["generation"]["offer_per_kwh"] = 0.09  # above the mid-market rate 0.07
    data["peers"][0]["generation"]["offer_per_kwh"] = 0.10
    mid = settle_result(cleared(data, "p2p"), "mid-market").bills.set_index("peer")
    assert mid.loc["S", "cost_market"] > mid.loc["S", "cost_baseline"]


@SETTINGS
@given(scenario_dicts(), st.sampled_from(DESIGNS))
def test_prices_explain_trades(data: dict[str, Any], design: str) -> None:
    """On every trade with energy: buyer's price - seller's selling price = the link's fee."""
    result = cleared(data, design)
    prices = result.prices.set_index(["period", "node"])
    for t in result.trades.itertuples():
        buyer = prices.loc[(t.period, t.buyer), "price_per_kwh"]
        seller = prices.loc[(t.period, t.seller), "sell_price_per_kwh"]
        assert buyer - seller == pytest.approx(t.fee_per_kwh, abs=1e-6)


@SETTINGS
@given(scenario_dicts(), st.sampled_from(DESIGNS))
def test_bilateral_trades_keep_every_kwh_and_fee(data: dict[str, Any], design: str) -> None:
    result = cleared(data, design)
    bilateral = bilateral_trades(result)
    d = result.dispatch
    dt = result.scenario.period_hours
    sold = bilateral.groupby("seller").energy_kwh.sum()
    bought = bilateral.groupby("buyer").energy_kwh.sum()
    exports = (d.export_kw * dt).groupby(d.peer).sum()
    imports = (d.import_kw * dt).groupby(d.peer).sum()
    for peer in exports.index:
        assert sold.get(peer, 0.0) == pytest.approx(exports[peer], abs=1e-6)
        assert bought.get(peer, 0.0) == pytest.approx(imports[peer], abs=1e-6)
    assert bilateral.fee.sum() == pytest.approx(result.trades.fee.sum(), abs=1e-6)
    peers = set(result.scenario.peer_ids)
    assert set(bilateral.seller) <= peers and set(bilateral.buyer) <= peers


@SETTINGS
@given(scenario_dicts(), st.sampled_from(DESIGNS))
def test_kpi_identities(data: dict[str, Any], design: str) -> None:
    result = cleared(data, design)
    s = settle_result(result, "marginal")
    volume = traded_volume(result, s)
    assert volume["inside"] + volume["between"] + volume["with_grid"] == pytest.approx(
        volume["total"], abs=1e-6
    )
    shares = community_shares(result, s)
    for column in ("self_sufficiency", "self_consumption"):
        values = shares[column].dropna()
        assert ((values >= 0) & (values <= 1)).all()
    k = kpis(result, s)
    assert k.total_cost == pytest.approx(result.objective, rel=1e-6, abs=1e-6)


def test_fairness_indices_by_hand() -> None:
    assert jain_index(np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert jain_index(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert gini(np.array([1.0, 1.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 0.0, 4.0])) == pytest.approx(0.75)
    assert np.isnan(jain_index(np.array([1.0, -1.0])))


def test_five_peer_case_two_bills_by_hand() -> None:
    """Marginal prices of Case II: P2 and P4 pay 0.0696 $/kWh (P3's offer + its fee), the
    marginal supply; P5 sells 180 kWh at 0.0696 and P3 60 kWh at 0.048."""
    result = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"), objective="system-cost")
    s = settle_result(result, "marginal")
    bills = s.bills.set_index("peer")
    assert bills.loc["P2", "paid_energy"] + bills.loc["P2", "paid_fees"] == pytest.approx(
        140 * 0.0696
    )
    assert bills.loc["P5", "received_energy"] == pytest.approx(180 * 0.0696)
    assert bills.loc["P3", "received_energy"] == pytest.approx(60 * 0.048)
    assert s.fees_collected == pytest.approx(60 * 0.0216)
    # Baseline: P2 buys 140 kWh from the grid at 0.096 + its export fee 0.01584.
    assert bills.loc["P2", "cost_baseline"] == pytest.approx(140 * (0.096 + 0.01584))
    assert bills.loc["P2", "savings"] == pytest.approx(140 * (0.096 + 0.01584 - 0.0696))


def test_baseline_links_every_peer_with_the_grid_only() -> None:
    scenario = p2pmarket.cases.load("five-peer-case-2")
    base = baseline_scenario(scenario)
    assert base.design == "p2p"
    assert base.links is not None
    assert all("grid" in link for link in base.links)
    assert len(base.links) == 2 * (len(scenario.peers) - 1)


def test_paper_objective_is_settled_on_the_system_cost_clearing() -> None:
    scenario = p2pmarket.cases.load("five-peer-case-2")
    paper = settle_result(p2pmarket.clear(scenario, objective="paper"))
    system = settle_result(p2pmarket.clear(scenario, objective="system-cost"))
    assert paper.cleared_with == "system-cost"
    pd.testing.assert_frame_equal(paper.bills, system.bills)


def test_fee_collector_receives_the_fees() -> None:
    data = p2pmarket.cases.load("five-peer-case-2").to_dict()
    data["fee_collector"] = "grid"
    s = settle_result(p2pmarket.clear(p2pmarket.Scenario.from_dict(data), objective="system-cost"))
    bills = s.bills.set_index("peer")
    assert bills.loc["grid", "received_fees"] == pytest.approx(s.fees_collected)
    assert s.fee_collector == "grid"


def test_community_design_can_break_individual_rationality() -> None:
    """Why the promise excludes the community design: when the grid shares a community with
    others, a lone consumer's energy pays the uniform fee twice (into the grid's manager and
    out to the consumer), once more than trading with the grid directly."""
    data = {
        "uniform_fee": 0.01,
        "communities": [{"id": "C1", "members": ["grid", "P"]}],
        "peers": [
            {"id": "grid", "role": "grid", "generation": {"max_kw": 100, "offer_per_kwh": 0.1}},
            {"id": "P", "role": "prosumer", "load_kw": 1},
            {"id": "C", "role": "consumer", "load_kw": 10},
        ],
    }
    bills = settle_result(cleared(data, "community")).bills.set_index("peer")
    assert bills.loc["C", "cost_baseline"] == pytest.approx(10 * 0.11)
    assert bills.loc["C", "cost_market"] == pytest.approx(10 * 0.12)


def _reference_through_managers(period: int, flows: pd.DataFrame) -> pd.DataFrame:
    """The proportional sharing of one period, solved on its own (dense least squares): the
    formulation `p2pmarket.core.flows` solved period by period before it stacked them."""
    from p2pmarket.types import NodeKind

    via_seller = flows["seller_kind"] != NodeKind.PEER
    via_buyer = flows["buyer_kind"] != NodeKind.PEER
    managers = pd.Index(
        sorted(set(flows.loc[via_seller, "seller"]) | set(flows.loc[via_buyer, "buyer"]))
    )
    into, out_of = flows[via_buyer], flows[via_seller]
    from_peer = into[~via_seller[via_buyer]]
    between = into[via_seller[via_buyer]]
    to_peer = out_of[~via_buyer[via_seller]]
    origins = pd.Index(sorted(set(from_peer["seller"])))
    k, o = len(managers), len(origins)
    inflow = np.zeros(k)
    np.add.at(inflow, managers.get_indexer(into["buyer"]), into["energy_kwh"].to_numpy())
    safe = np.where(inflow > 0, inflow, 1.0)
    rows, cols = managers.get_indexer(from_peer["buyer"]), origins.get_indexer(from_peer["seller"])
    b_energy, b_fee = np.zeros((k, o)), np.zeros((k, o))
    np.add.at(b_energy, (rows, cols), from_peer["energy_kwh"].to_numpy())
    np.add.at(b_fee, (rows, cols), from_peer["fee"].to_numpy())
    to_k, from_j = managers.get_indexer(between["buyer"]), managers.get_indexer(between["seller"])
    share, rate = np.zeros((k, k)), np.zeros((k, k))
    np.add.at(share, (to_k, from_j), between["energy_kwh"].to_numpy() / safe[from_j])
    np.add.at(rate, (to_k, from_j), between["fee"].to_numpy() / safe[from_j])
    system = np.eye(k) - share
    energy = np.linalg.lstsq(system, b_energy, rcond=None)[0]
    fees = np.linalg.lstsq(system, b_fee + rate @ energy, rcond=None)[0]
    hub = managers.get_indexer(to_peer["seller"])
    part = to_peer["energy_kwh"].to_numpy()[:, None] / safe[hub][:, None]
    fee_part = (to_peer["fee"].to_numpy() / safe[hub])[:, None]
    return pd.DataFrame(
        {
            "period": period,
            "seller": np.tile(np.asarray(origins), len(to_peer)),
            "buyer": np.repeat(to_peer["buyer"].to_numpy(), o),
            "energy_kwh": (part * energy[hub]).ravel(),
            "fee": (part * fees[hub] + fee_part * energy[hub]).ravel(),
        }
    )


def _summed(table: pd.DataFrame) -> pd.DataFrame:
    kept = table[table["energy_kwh"] > 1e-12]
    return (
        kept.groupby(["period", "seller", "buyer"])[["energy_kwh", "fee"]]
        .sum()
        .sort_index()
        .reset_index()
    )


@pytest.mark.parametrize("seed", range(30))
def test_flows_through_managers_of_all_periods_at_once_match_each_period_solved_alone(
    seed: int,
) -> None:
    """Random flows through chains and cycles of managers over several periods (a name used
    by a peer and a manager both; some periods with no manager-to-manager flow, some managers
    idle): the stacked solve gives each period's own least-squares decomposition."""
    from p2pmarket.core.flows import _through_managers
    from p2pmarket.types import NodeKind

    rng = np.random.default_rng(seed)
    peers = ["P1", "P2", "M1", "P4", "P5"]
    managers = ["M1", "M2", "M3"][: rng.integers(1, 4)]
    rows = []
    for period in rng.choice(np.arange(10), size=rng.integers(1, 6), replace=False):
        for seller in peers:
            for manager in managers:
                if rng.random() < 0.5:
                    rows.append((period, seller, "peer", manager, "manager"))
                if rng.random() < 0.5:
                    rows.append((period, manager, "manager", seller, "peer"))
        if rng.random() < 0.6:
            for a in managers:
                for b in managers:
                    if a != b and rng.random() < 0.5:
                        rows.append((period, a, "manager", b, "manager"))
    flows = pd.DataFrame(rows, columns=["period", "seller", "seller_kind", "buyer", "buyer_kind"])
    flows = flows.assign(
        seller_kind=[NodeKind(v) for v in flows.seller_kind],
        buyer_kind=[NodeKind(v) for v in flows.buyer_kind],
        energy_kwh=rng.uniform(0.0, 3.0, len(flows)) * (rng.random(len(flows)) < 0.9),
        fee=rng.uniform(0.0, 0.05, len(flows)),
    )
    expected = pd.concat(
        [_reference_through_managers(int(p), f) for p, f in flows.groupby("period")],
        ignore_index=True,
    )
    got = _through_managers(flows)
    assert got["via_manager"].all()
    e, g = _summed(expected), _summed(got)
    assert list(zip(e.period, e.seller, e.buyer, strict=True)) == list(
        zip(g.period, g.seller, g.buyer, strict=True)
    )
    np.testing.assert_allclose(g.energy_kwh, e.energy_kwh, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g.fee, e.fee, rtol=1e-9, atol=1e-12)
