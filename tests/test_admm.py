"""Decentralised clearing by edge-consensus ADMM (SPEC C9, issue 16) against central clearing.

Trade splits are not unique, so the markets are compared by objective (1e-4 relative),
by every peer's balance (1e-3 kWh), by the leftover settled with the grid, and by the
prices where the central duals are unique (1e-3 per kWh) — not trade by trade. The
agents' own-data rule is checked by running the protocol with agents built from their
own records only and exchanging messages (and it gives the vectorised method's iterates).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

import p2pmarket
from p2pmarket.app.run import Clearings
from p2pmarket.core.designs import design_network, peer_data
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.solve.admm import (
    ADMM,
    AdmmOptions,
    Agent,
    AgentRecord,
    InProcessNegotiation,
    admm_report,
    agent_records,
)
from p2pmarket.types import Design, Objective, Status
from strategies import scenario_dicts

REL_OBJECTIVE = 1e-4
BALANCE_KWH = 1e-3
PRICE_PER_KWH = 1e-3


def _both(
    scenario: p2pmarket.Scenario, design: str | None = None, objective: str | None = None
) -> tuple[ClearingResult, ClearingResult]:
    central = p2pmarket.clear(scenario, design=design, objective=objective)
    admm = p2pmarket.clear(scenario, design=design, objective=objective, method="admm")
    return central, admm


def _balance_kwh(result: ClearingResult) -> pd.Series:
    """Each peer's balance (supply + imports - exports - demand), kWh per period."""
    d = result.dispatch
    supply = d["generation_kw"] + d["discharge_kw"] - d["charge_kw"] + d["import_kw"]
    demand = d["export_kw"] + d["load_kw"] + d["flexible_load_kw"] + d["absorbed_kw"]
    return (supply - demand) * result.scenario.period_hours


def assert_same_market(central: ClearingResult, admm: ClearingResult) -> None:
    """Objective, balances, leftover and the unique prices (module docstring)."""
    report = admm_report(admm)
    assert report.converged, report.not_agreed
    assert admm.status == Status.OPTIMAL
    s = admm.scenario
    net = design_network(s, peer_data(s), admm.design, admm.objective_kind, False)
    # 1e-4 relative; for a market whose whole cost is a few cents, the stopping rule's own
    # resolution: 1e-3 kWh on every trade at the dearest price of the market.
    data = peer_data(s)
    dearest = max(float(np.abs(data.offer_per_kwh).max()), 0.2)
    resolution = BALANCE_KWH * dearest * net.n_links * s.periods
    assert admm.objective == pytest.approx(central.objective, rel=REL_OBJECTIVE, abs=resolution)
    assert np.abs(_balance_kwh(admm)).max() <= BALANCE_KWH
    # What the grid settled is listed, per node and period: at most half the tolerance per
    # trade of the node (the mean of two copies within 1e-3 kWh of each other).
    degree = np.bincount(np.concatenate([net.seller, net.buyer]), minlength=net.n_nodes)
    position = {(str(net.names[i]), str(net.node_kind[i])): i for i in range(net.n_nodes)}
    for row in report.imbalance.itertuples():
        allowed = 0.5 * BALANCE_KWH * degree[position[(row.node, row.kind)]]
        assert abs(row.shortfall_kwh) <= allowed + 1e-9, row
    assert report.unsettled_kwh <= BALANCE_KWH
    # Prices where central clearing's are unique: a point interval (docs/prices.md), at a
    # node that trades (the interval is computed one price at a time; a node with no trade
    # may have a point interval and still other optimal prices when its neighbours move).
    c = central.prices.set_index(["period", "node", "kind"])
    a = admm.prices.set_index(["period", "node", "kind"]).reindex(c.index)
    t = central.trades
    trading = pd.concat(
        [
            t[["period", "seller", "seller_kind"]].set_axis(["period", "node", "kind"], axis=1),
            t[["period", "buyer", "buyer_kind"]].set_axis(["period", "node", "kind"], axis=1),
        ]
    )
    trades_there = c.index.isin(pd.MultiIndex.from_frame(trading))
    unique = (c["price_high_per_kwh"] - c["price_low_per_kwh"]).abs() <= 1e-9
    unique &= c["price_per_kwh"].notna() & trades_there
    gap = (a["price_per_kwh"] - c["price_per_kwh"])[unique].abs()
    assert np.nan_to_num(gap.to_numpy()).max(initial=0.0) <= PRICE_PER_KWH, gap.sort_values()


@pytest.mark.parametrize("name", ["five-peer-case-1", "five-peer-case-2"])
@pytest.mark.parametrize("design", ["p2p", "community", "hybrid"])
def test_five_peer_cases_reach_the_central_market(name: str, design: str) -> None:
    central, admm = _both(p2pmarket.cases.load(name), design)
    assert_same_market(central, admm)
    assert admm_report(admm).iterations <= 400


@pytest.mark.parametrize("name", ["seventeen-peer-case-1", "seventeen-peer-case-3"])
@pytest.mark.parametrize("design", ["p2p", "community", "hybrid"])
def test_seventeen_peer_cases_reach_the_central_market(name: str, design: str) -> None:
    """One period, and 24 hours with storage at peers 3 and 6 (in five communities)."""
    central, admm = _both(p2pmarket.cases.load(name), design)
    assert_same_market(central, admm)


@pytest.mark.parametrize("design", ["p2p", "community", "hybrid"])
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=scenario_dicts(max_peers=6, max_periods=3))
def test_random_markets_with_storage_and_flexible_demand(design: str, data: dict[str, Any]) -> None:
    scenario = p2pmarket.Scenario.from_dict(data)
    central, admm = _both(scenario, design, "system-cost")
    assert_same_market(central, admm)


def test_result_settles_like_a_central_one() -> None:
    """Bills come from the same settlement; its budget balances."""
    scenario = p2pmarket.cases.load("five-peer-case-2")
    clearings = Clearings(method="admm")
    result = clearings.get(scenario, Design.P2P, Objective.SYSTEM_COST)
    settlement = clearings.settle(result, "marginal")
    paid = settlement.trades["buyer_pays"].sum()
    received = settlement.trades["seller_receives"].sum()
    assert paid == pytest.approx(received + settlement.fees_collected, abs=1e-6)
    assert result.method == "admm"


def test_report_says_how_it_got_there() -> None:
    result = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"), method="admm")
    report = admm_report(result)
    assert len(report.history) == report.iterations
    assert {"primal_residual", "dual_residual", "cost", "not_agreed", "rho_min", "rho_max"} <= set(
        report.history
    )
    # rho as the links hold it at the end is the history's last row.
    assert report.history["rho_min"].iloc[-1] == report.rho_final.min()
    assert report.history["rho_max"].iloc[-1] == report.rho_final.max()
    assert report.messages > 0 and report.message_bytes > report.messages
    assert report.not_agreed.empty
    with pytest.raises(p2pmarket.OptionError, match="method"):
        admm_report(p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2")))


def test_iteration_cap_reports_what_was_not_agreed() -> None:
    method = ADMM(AdmmOptions(max_iterations=20))
    result = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"), method=method)
    report = admm_report(result)
    assert report.iterations == 20 and not report.converged
    assert result.status == Status.TIME_LIMIT
    assert not report.not_agreed.empty
    assert "not agreed" in result.termination
    # The leftover is settled with the grid, never hidden: every peer still balances.
    assert np.abs(_balance_kwh(result)).max() <= 1e-6


def test_a_window_stopped_at_the_cap_is_not_hidden_by_the_merge() -> None:
    """A rolling horizon whose windows stop at the cap: the merged result says so (the
    merge alone would keep the first window's status)."""
    scenario = p2pmarket.cases.load("seventeen-peer-case-3")
    result = p2pmarket.clear(
        scenario,
        method=ADMM(AdmmOptions(max_iterations=30)),
        options=p2pmarket.SolverOptions(window=12, lookahead=0),
    )
    assert result.status == Status.TIME_LIMIT
    assert (
        result.termination.startswith("window from period") and "not agreed" in result.termination
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_iterations", 0),
        ("max_iterations", 1.5),
        ("rho", -1.0),
        ("alpha", 2.5),
        ("proximal", 0.0),
        ("tau", 1.0),
    ],
)
def test_bad_options_name_the_option(field: str, value: object) -> None:
    with pytest.raises(p2pmarket.OptionError, match=field):
        AdmmOptions(**{field: value})  # type: ignore[arg-type]


def test_unknown_method_is_refused() -> None:
    with pytest.raises(p2pmarket.OptionError, match="method"):
        p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"), method="gossip")


# --- own data only, and the same iterates ----------------------------------------------


def _records(name: str, design: str) -> tuple[tuple[AgentRecord, ...], int]:
    scenario = p2pmarket.cases.load(name)
    data = peer_data(scenario)
    net = design_network(scenario, data, Design(design), Objective.SYSTEM_COST, False)
    return agent_records(scenario, data, net, Objective.SYSTEM_COST), net.n_links


@pytest.mark.parametrize("design", ["p2p", "community"])
def test_agents_with_only_their_own_record_and_messages(design: str) -> None:
    """Each agent is built from its own record alone and hears of the others only through
    their messages; run that way, the protocol gives the vectorised method's iterates."""
    records, n_links = _records("five-peer-case-2", design)
    options = AdmmOptions(max_iterations=60)
    agents = {r.node: Agent(r, options) for r in records}
    for agent in agents.values():
        # Its record names no other agent's data: only link ids and whom to address.
        assert set(vars(agent.record)) == set(vars(records[agent.record.node]))
    for _ in range(options.max_iterations):
        mail: dict[int, dict[int, Any]] = {node: {} for node in agents}
        for node, agent in agents.items():
            for to, message in agent.solve().items():
                mail[to][node] = message
        for node, agent in agents.items():
            agent.receive(mail[node])
    vectorised = InProcessNegotiation(records, options, n_links, records[0].period_hours).run()
    for agent in agents.values():
        r = agent.record
        ns = r.sells.size
        np.testing.assert_array_equal(agent.last.xs[:ns], vectorised.xs[r.sells])
        np.testing.assert_array_equal(agent.last.xb[ns:], vectorised.xb[r.buys])
        np.testing.assert_array_equal(agent.state.z[:ns], vectorised.state.z[r.sells])
        np.testing.assert_array_equal(agent.state.price[ns:], vectorised.state.price[r.buys])
        np.testing.assert_array_equal(agent.state.rho[:ns], vectorised.state.rho[r.sells])


def test_a_record_holds_only_its_own_data() -> None:
    records, _ = _records("five-peer-case-2", "p2p")
    scenario = p2pmarket.cases.load("five-peer-case-2")
    for record, peer in zip(records, scenario.peers, strict=True):
        assert record.name == peer.id
        assert record.load_kw.shape == (scenario.periods,)
        # Costs on sales are the seller's: no record carries a buyer's or another's offer.
        assert record.sell_cost_per_kwh.shape == (record.sells.size, scenario.periods)
        for other in scenario.peers:
            if (
                other.id != peer.id
                and other.generation is not None
                and record.offer_per_kwh is not None
            ):
                # nothing but its own offer
                assert (
                    record.offer_per_kwh.tolist()
                    == [
                        float(peer.generation.offer_per_kwh)  # type: ignore[union-attr, arg-type]
                    ]
                    * scenario.periods
                )
