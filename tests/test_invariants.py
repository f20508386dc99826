"""Market invariants on random scenarios (hypothesis), all designs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import p2pmarket
from p2pmarket.core.scenario import DESIGNS
from strategies import scenario_dicts

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-6


def balance_residual(dispatch: pd.DataFrame) -> np.ndarray:
    d = dispatch
    supply = d.generation_kw + d.discharge_kw - d.charge_kw + d.import_kw - d.export_kw
    demand = d.load_kw + d.flexible_load_kw + d.absorbed_kw
    return (supply - demand).to_numpy()


@SETTINGS
@given(scenario_dicts(), st.sampled_from(DESIGNS))
def test_every_peer_is_balanced_in_every_period(data: dict[str, Any], design: str) -> None:
    scenario = p2pmarket.Scenario.from_dict(data)
    result = p2pmarket.clear(scenario, design=design)
    assert len(result.dispatch) == len(scenario.peers) * scenario.periods
    assert np.abs(balance_residual(result.dispatch)).max() < TOL
    # Imports and exports in the dispatch are the trades seen from each peer.
    t = result.trades
    bought = t.groupby(["period", "buyer"])["power_kw"].sum()
    for row in result.dispatch.itertuples():
        assert row.import_kw == pytest.approx(bought.get((row.period, row.peer), 0.0), abs=TOL)


@SETTINGS
@given(scenario_dicts(), st.sampled_from(DESIGNS))
def test_no_peer_resells(data: dict[str, Any], design: str) -> None:
    """A peer sells only what it generates or discharges in the same period."""
    result = p2pmarket.clear(p2pmarket.Scenario.from_dict(data), design=design)
    d = result.dispatch
    assert (d.export_kw <= d.generation_kw + d.discharge_kw + TOL).all()
    consumers = d[d.declared_role == "consumer"]
    assert (consumers.export_kw <= TOL).all()


@SETTINGS
@given(scenario_dicts())
def test_trades_only_on_allowed_links(data: dict[str, Any]) -> None:
    scenario = p2pmarket.Scenario.from_dict(data)
    owner = scenario.community_of()
    for design in DESIGNS:
        trades = p2pmarket.clear(scenario, design=design).trades
        direct = trades[trades.route == "p2p"]
        if design == "community":
            assert direct.empty
            # Every member trades only with its own manager.
            via = trades[trades.route.isin(["member-manager", "manager-member"])]
            for row in via.itertuples():
                member, hub, hub_kind = (
                    (row.seller, row.buyer, row.buyer_kind)
                    if row.route == "member-manager"
                    else (row.buyer, row.seller, row.seller_kind)
                )
                assert (hub_kind, hub) == ("manager", owner[member])
        if scenario.links is not None and design == "p2p":
            allowed = set(scenario.links)
            assert set(zip(direct.seller, direct.buyer, strict=True)) <= allowed
        seller = list(zip(trades.seller_kind, trades.seller, strict=True))
        buyer = list(zip(trades.buyer_kind, trades.buyer, strict=True))
        assert all(s != b for s, b in zip(seller, buyer, strict=True))


@SETTINGS
@given(scenario_dicts())
def test_hybrid_is_never_worse_than_either_design(data: dict[str, Any]) -> None:
    scenario = p2pmarket.Scenario.from_dict(data)
    value = {d: p2pmarket.clear(scenario, design=d).objective for d in DESIGNS}
    assert value["hybrid"] <= value["p2p"] + 1e-6 * max(1.0, abs(value["p2p"]))
    assert value["hybrid"] <= value["community"] + 1e-6 * max(1.0, abs(value["community"]))


@SETTINGS
@given(scenario_dicts(max_peers=8), st.data())
def test_removing_a_link_never_lowers_the_objective(data: dict[str, Any], draw: Any) -> None:
    scenario = p2pmarket.Scenario.from_dict({**data, "design": "p2p"})
    before = p2pmarket.clear(scenario)
    used = sorted(set(zip(before.trades.seller, before.trades.buyer, strict=True)))
    if not used:
        return
    ids = scenario.peer_ids
    links = scenario.links or tuple((a, b) for a in ids for b in ids if a != b)
    removed = draw.draw(st.sampled_from(used))
    fewer = scenario.replace(links=[list(link) for link in links if link != removed])
    try:
        after = p2pmarket.clear(fewer)
    except p2pmarket.InfeasibleMarketError:
        return  # losing the link made the market infeasible: certainly not cheaper
    assert after.objective >= before.objective - 1e-6 * max(1.0, abs(before.objective))


@SETTINGS
@given(scenario_dicts(max_periods=6))
def test_storage_follows_its_equation_and_bounds(data: dict[str, Any]) -> None:
    scenario = p2pmarket.Scenario.from_dict(data)
    result = p2pmarket.clear(scenario)
    dt = scenario.period_hours
    for peer in scenario.peers:
        unit = peer.storage
        if unit is None:
            continue
        rows = result.dispatch[result.dispatch.peer == peer.id].sort_values("period")
        soc = rows.soc_kwh.to_numpy()
        assert (soc >= -TOL).all() and (soc <= unit.capacity_kwh + TOL).all()
        assert (rows.charge_kw <= unit.power_kw + TOL).all()
        assert (rows.discharge_kw <= unit.power_kw + TOL).all()
        previous = np.concatenate([[unit.initial_soc * unit.capacity_kwh], soc[:-1]])
        expected = previous + dt * (
            unit.charge_efficiency * rows.charge_kw.to_numpy()
            - rows.discharge_kw.to_numpy() / unit.discharge_efficiency
        )
        np.testing.assert_allclose(soc, expected, atol=1e-6)
        assert soc[-1] >= unit.final_soc * unit.capacity_kwh - TOL
