"""The exact reductions of issue 7: fee hubs for full p2p markets, and periods solved one by one.

Both are checked against the explicit one-LP model (itself checked against the independent
scipy formulation elsewhere): same objective to 1e-9 relative, same net position of every peer
where the optimum is unique.
"""

from __future__ import annotations

import weakref
from dataclasses import fields, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import p2pmarket
from p2pmarket.core.designs import build_network, peer_data
from p2pmarket.core.designs.data import _peer_data
from p2pmarket.core.designs.hubs import build_hub_network, hubs_are_exact
from p2pmarket.core.horizon import Window, period_slice, window_slice
from p2pmarket.core.solve import SolverOptions
from p2pmarket.core.solve.lp import PRIMAL_MIN_LINKS, shaped
from strategies import scenario_dicts

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def full_p2p(data: dict[str, Any]) -> p2pmarket.Scenario:
    return p2pmarket.Scenario.from_dict({**data, "design": "p2p", "links": None})


def net_positions(result: p2pmarket.ClearingResult) -> np.ndarray:
    d = result.dispatch.sort_values(["period", "peer"])
    return (
        d.generation_kw + d.discharge_kw - d.charge_kw - d.load_kw - d.flexible_load_kw
    ).to_numpy()


def unique_offers(scenario: p2pmarket.Scenario) -> bool:
    """Distinct offers and no storage or flexible demand: the generation of each peer, hence
    its net position, is then the same in every optimum."""
    offers = [p.generation.offer_per_kwh for p in scenario.peers if p.generation is not None]
    flat = [o for offer in offers for o in (offer if isinstance(offer, tuple) else (offer,))]
    simple = all(p.storage is None and not p.flexible_load for p in scenario.peers)
    return (
        simple
        and len(set(flat)) == len(flat)
        and all(
            p.generation is None or not isinstance(p.generation.offer_per_kwh, tuple)
            for p in scenario.peers
        )
    )


@SETTINGS
@given(scenario_dicts(), st.sampled_from(["system-cost", "paper"]))
def test_hub_model_has_the_explicit_optimum(data: dict[str, Any], objective: str) -> None:
    scenario = full_p2p(data)
    explicit = p2pmarket.clear(scenario, objective=objective, reduce=False)
    hubs = p2pmarket.clear(scenario, objective=objective, reduce=True)
    assert explicit.model == "explicit" and hubs.model == "hubs"
    assert hubs.objective == pytest.approx(explicit.objective, rel=1e-9, abs=1e-9)
    # The decomposed trades are bilateral p2p trades with the explicit fee of their pair.
    assert (hubs.trades.route == "p2p").all()
    assert not hubs.trades.seller.str.startswith("hub:").any()
    assert not hubs.trades.buyer.str.startswith("hub:").any()
    assert (hubs.trades.seller != hubs.trades.buyer).all()
    d = hubs.dispatch
    balance = d.generation_kw + d.discharge_kw - d.charge_kw + d.import_kw - d.export_kw
    np.testing.assert_allclose(balance, d.load_kw + d.flexible_load_kw + d.absorbed_kw, atol=1e-6)
    if unique_offers(scenario):
        np.testing.assert_allclose(net_positions(hubs), net_positions(explicit), atol=1e-6)


@SETTINGS
@given(scenario_dicts(storage=False, flexible=False), st.sampled_from(["system-cost", "paper"]))
def test_hub_trades_pay_the_explicit_fee_of_their_pair(
    data: dict[str, Any], objective: str
) -> None:
    scenario = full_p2p(data)
    hubs = p2pmarket.clear(scenario, objective=objective, reduce=True)
    explicit = p2pmarket.clear(scenario, objective=objective, reduce=False)
    fee = {(t.period, t.seller, t.buyer): t.fee_per_kwh for t in explicit.trades.itertuples()}
    # Fees of the explicit links, for every pair (the explicit model lists used links only):
    from p2pmarket.core.designs import build_network

    net = build_network(scenario, peer_data(scenario), "p2p")
    names = net.names
    table = {
        (t, names[s], names[b]): net.fee_per_kwh[k, t]
        for k, (s, b) in enumerate(zip(net.seller, net.buyer, strict=True))
        for t in range(scenario.periods)
    }
    fee.update(table)
    for t in hubs.trades.itertuples():
        assert t.fee_per_kwh == pytest.approx(fee[(t.period, t.seller, t.buyer)], abs=1e-9)


@SETTINGS
@given(scenario_dicts(), st.sampled_from(["system-cost", "paper"]))
def test_hybrid_hub_model_has_the_explicit_optimum(data: dict[str, Any], objective: str) -> None:
    """Hybrid = the p2p links (through hubs) and the community routes (explicit): same optimum
    as the explicit hybrid model; p2p trades are bilateral at their pair's explicit fee, the
    manager routes are those of the explicit model (member -> manager at the intra fee ...)."""
    scenario = p2pmarket.Scenario.from_dict({**data, "design": "hybrid", "links": None})
    explicit = p2pmarket.clear(scenario, objective=objective, reduce=False)
    if not hubs_are_exact(scenario, peer_data(scenario), p2pmarket.Objective(objective)):
        with pytest.raises(p2pmarket.OptionError, match="reduce"):
            p2pmarket.clear(scenario, objective=objective, reduce=True)
        return
    hubs = p2pmarket.clear(scenario, objective=objective, reduce=True)
    assert explicit.model == "explicit" and hubs.model == "hubs"
    assert hubs.objective == pytest.approx(explicit.objective, rel=1e-9, abs=1e-9)
    assert set(hubs.trades.route) <= {"p2p", "member-manager", "manager-member", "manager-manager"}
    assert set(hubs.prices.kind) == set(explicit.prices.kind)
    assert (hubs.trades.seller_kind != "hub").all() and (hubs.trades.buyer_kind != "hub").all()
    d = hubs.dispatch
    balance = d.generation_kw + d.discharge_kw - d.charge_kw + d.import_kw - d.export_kw
    np.testing.assert_allclose(balance, d.load_kw + d.flexible_load_kw + d.absorbed_kw, atol=1e-6)
    # Every trade pays its link's explicit fee (p2p pairs and manager routes alike).
    net = build_network(scenario, peer_data(scenario), "hybrid")
    fee = {
        (t, net.route[k], net.node_kind[s], net.names[s], net.node_kind[b], net.names[b]): f
        for k, (s, b) in enumerate(zip(net.seller, net.buyer, strict=True))
        for t, f in enumerate(net.fee_per_kwh[k])
    }
    for t in hubs.trades.itertuples():
        key = (t.period, t.route, t.seller_kind, t.seller, t.buyer_kind, t.buyer)
        assert t.fee_per_kwh == pytest.approx(fee[key], abs=1e-9)
    # A manager passes on what it receives, in every period.
    flows = hubs.trades[hubs.trades.route != "p2p"]
    into = flows[flows.buyer_kind == "manager"].groupby(["period", "buyer"]).power_kw.sum()
    out = flows[flows.seller_kind == "manager"].groupby(["period", "seller"]).power_kw.sum()
    both = into.rename_axis(["period", "node"]).sub(
        out.rename_axis(["period", "node"]), fill_value=0.0
    )
    np.testing.assert_allclose(both.to_numpy(), 0.0, atol=1e-6)
    if unique_offers(scenario):
        np.testing.assert_allclose(net_positions(hubs), net_positions(explicit), atol=1e-6)


def test_hybrid_with_restricted_links_keeps_the_explicit_model() -> None:
    data = p2pmarket.cases.load("five-peer-case-2").to_dict()
    data["links"] = [["P2", "P5"], ["P3", "P4"]]
    scenario = p2pmarket.Scenario.from_dict(data)
    with pytest.raises(p2pmarket.OptionError, match="reduce"):
        p2pmarket.clear(scenario, design="hybrid", reduce=True)
    assert p2pmarket.clear(scenario, design="hybrid").model == "explicit"


def four_hundred_prosumers(design: str) -> p2pmarket.Scenario:
    """A grid and 400 prosumers in 8 communities, one period."""
    peers = [{"id": "grid", "role": "grid", "generation": {"max_kw": 1e5, "offer_per_kwh": 0.1}}]
    peers += [
        {"id": f"P{i}", "role": "prosumer", "load_kw": 5,
         "generation": {"max_kw": 8, "offer_per_kwh": 0.05 + i * 1e-5}}
        for i in range(400)
    ]  # fmt: skip
    communities = [
        {"id": f"C{c}", "members": [f"P{i}" for i in range(c, 400, 8)]} for c in range(8)
    ]
    return p2pmarket.Scenario.from_dict(
        {"peers": peers, "communities": communities, "design": design}
    )


def test_hybrid_hub_network_grows_with_peers_not_their_square() -> None:
    scenario = four_hundred_prosumers("hybrid")
    net = build_hub_network(scenario, peer_data(scenario), p2pmarket.Design.HYBRID)
    assert net.n_links < 7 * len(scenario.peers)  # explicit: 401 x 400 p2p links + 2 per member
    result = p2pmarket.clear(scenario, objective="system-cost")
    assert result.model == "hubs"  # chosen by size
    explicit = p2pmarket.clear(scenario, objective="system-cost", reduce=False)
    assert result.objective == pytest.approx(explicit.objective, rel=1e-9)


def test_hub_network_grows_with_peers_not_their_square() -> None:
    scenario = four_hundred_prosumers("p2p")
    net = build_hub_network(scenario, peer_data(scenario))
    assert net.n_links < 5 * len(scenario.peers)  # explicit: 401 x 400 = 160,400 links
    result = p2pmarket.clear(scenario, objective="system-cost")
    assert result.model == "hubs"  # chosen by size


def _streets(intra: float, export: float, contract: float) -> p2pmarket.Scenario:
    """Four communities of prosumers, C0 long in period 0 and C2 in period 1 (but for one
    member each), a grid seller, and a contract from C0 to C1: trades inside, between and
    along the contract."""
    peers: list[dict[str, Any]] = [
        {"id": "grid", "role": "grid", "generation": {"max_kw": 1e4, "offer_per_kwh": 0.3}}
    ]
    for i in range(24):
        c = i % 4
        peers.append({
            "id": f"P{i}", "role": "prosumer", "export_fee": export,
            "load_kw": [2.0 + (i % 3), 3.0 + (i % 5) * 0.5],
            "generation": {
                "max_kw": [
                    9.0 if c == 0 and i >= 4 else 0.5, 9.0 if c == 2 and i >= 4 else 0.5
                ],
                "offer_per_kwh": 0.05 + 0.001 * i,
            },
        })  # fmt: skip
    communities = [
        {"id": f"C{c}", "members": [f"P{i}" for i in range(c, 24, 4)], "intra_fee": intra}
        for c in range(4)
    ]
    return p2pmarket.Scenario.from_dict({
        "peers": peers, "communities": communities, "periods": 2,
        "community_fees": [{"from": "C0", "to": "C1", "fee": contract}],
    })  # fmt: skip


@pytest.mark.parametrize(
    ("intra", "export", "contract", "one_hub"),
    [
        (0.01, 0.02, 0.015, True),  # every fee it competes with is no higher: one export hub
        (0.02, 0.02, 0.02, True),  # ties: the same fee whichever path
        (0.03, 0.02, 0.015, False),  # inside a community dearer than exporting
        (0.01, 0.02, 0.05, False),  # the contract dearer than exporting
    ],
)
def test_one_export_hub_only_where_it_is_exact(
    intra: float, export: float, contract: float, one_hub: bool
) -> None:
    scenario = _streets(intra, export, contract)
    net = build_hub_network(scenario, peer_data(scenario))
    hubs = list(net.names[net.n_peers :])
    assert ("out" in hubs) == one_hub
    assert sum(h.startswith("out:") for h in hubs) == (0 if one_hub else 5)
    for objective in ("system-cost", "paper"):
        explicit = p2pmarket.clear(scenario, objective=objective, reduce=False)
        reduced = p2pmarket.clear(scenario, objective=objective, reduce=True)
        assert reduced.objective == pytest.approx(explicit.objective, rel=1e-9)
        # Every trade pays its pair's explicit fee: inside, between and along the contract.
        groups = {m: c.id for c in scenario.communities for m in c.members}
        for t in reduced.trades.itertuples():
            a, b = groups.get(t.seller), groups.get(t.buyer)
            expected = (
                intra if a is not None and a == b
                else contract if (a, b) == ("C0", "C1")
                else export if t.seller != "grid" else 0.0
            )  # fmt: skip
            assert t.fee_per_kwh == pytest.approx(expected, abs=1e-12)
    kinds = {(groups.get(t.seller), groups.get(t.buyer)) for t in reduced.trades.itertuples()}
    # Every route is exercised where it is not dearer than exporting: inside a community,
    # along the contract; and exporting to another community.
    assert ("C0", "C0") in kinds or intra > export
    assert ("C0", "C1") in kinds or contract > export
    assert any(a == "C2" and b not in (None, "C2") for a, b in kinds)


def test_negative_offers_keep_the_explicit_model_under_the_paper_objective() -> None:
    data = p2pmarket.cases.load("five-peer-case-2").to_dict()
    data["peers"][2]["generation"]["offer_per_kwh"] = -0.01
    scenario = p2pmarket.Scenario.from_dict(data)
    with pytest.raises(p2pmarket.OptionError, match="reduce"):
        p2pmarket.clear(scenario, objective="paper", reduce=True)
    assert p2pmarket.clear(scenario, objective="system-cost", reduce=True).model == "hubs"


@SETTINGS
@given(scenario_dicts(storage=False), st.sampled_from(["p2p", "community", "hybrid"]))
def test_periods_solved_one_by_one_match_one_lp(data: dict[str, Any], design: str) -> None:
    scenario = p2pmarket.Scenario.from_dict(data)
    assume(scenario.periods > 1)
    whole = p2pmarket.clear(scenario, design=design, options=SolverOptions(split_periods=False))
    split = p2pmarket.clear(
        scenario, design=design, options=SolverOptions(split_periods=True, workers=1)
    )
    assert split.periods_solved == "one by one"
    assert split.objective == pytest.approx(whole.objective, rel=1e-9, abs=1e-9)
    # Without storage each period's cost is its own LP's optimum, whatever the start (the
    # periods after the first start warm, from the last one's basis).
    assert split.objective_by_period == pytest.approx(whole.objective_by_period, rel=1e-9, abs=1e-9)
    assert len(split.dispatch) == len(whole.dispatch)
    assert sorted(split.dispatch.period.unique()) == list(range(scenario.periods))


@SETTINGS
@given(scenario_dicts(storage=False), st.data())
def test_a_cut_scenario_has_the_arrays_cut(data: dict[str, Any], draw: st.DataObject) -> None:
    """`period_slice` and `window_slice` hand the cut of the horizon's arrays to the part
    (`PeerData.periods`): the same arrays as reading the part's scenario afresh."""
    scenario = p2pmarket.Scenario.from_dict(data)
    start = draw.draw(st.integers(0, scenario.periods - 1))
    stop = draw.draw(st.integers(start + 1, scenario.periods))
    for part in (period_slice(scenario, start), window_slice(scenario, Window(start, stop))):
        kept, fresh = peer_data(part), _peer_data(part)
        for f in fields(kept):
            a, b = getattr(kept, f.name), getattr(fresh, f.name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f.name)
            else:
                assert list(a) == list(b), f.name


def test_a_cut_scenario_is_freed_with_its_arrays() -> None:
    """The arrays a cut hands on are remembered only while the cut lives: a horizon's
    periods or windows, once cleared, are not kept alive by the memo of `peer_data`."""
    data = p2pmarket.cases.load("seventeen-peer-case-3").to_dict()
    for peer in data["peers"]:
        peer.pop("storage", None)
    scenario = p2pmarket.Scenario.from_dict(data)
    cuts = [period_slice(scenario, 3), window_slice(scenario, Window(2, 9))]
    for cut in cuts:
        assert peer_data(cut).load_kw.shape[1] == cut.periods  # remembered, then asked
    refs = [weakref.ref(cut) for cut in cuts]
    del cut, cuts
    assert [r() for r in refs] == [None, None]
    assert peer_data(scenario).load_kw.shape[1] == scenario.periods  # the horizon's own


def test_period_slice_picks_each_series_at_its_period() -> None:
    scenario = p2pmarket.cases.load("seventeen-peer-case-3")
    data = scenario.to_dict()
    for peer in data["peers"]:
        peer.pop("storage", None)
    plain = p2pmarket.Scenario.from_dict(data)
    one = period_slice(plain, 11)
    assert one.periods == 1
    p5 = next(p for p in one.peers if p.id == "P5")
    assert p5.generation is not None and p5.generation.max_kw == 120.0  # solar peak, hour 12
    p2 = next(p for p in one.peers if p.id == "P2")
    assert p2.load_kw == pytest.approx(150 * 0.95)


def test_storage_refuses_to_be_split() -> None:
    scenario = p2pmarket.cases.load("seventeen-peer-case-3")
    with pytest.raises(p2pmarket.OptionError, match="storage couples"):
        p2pmarket.clear(scenario, options=SolverOptions(split_periods=True))


def _same_where_priced(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """`a` and `b` equal to rounding, but for a price that one of them leaves undefined
    (NaN): a period's own cut has no sale links for a peer that cannot sell in that period,
    so no sell price there; the horizon built whole, as one LP, keeps those links."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for column in a.columns:
        x, y = a[column], b[column]
        if not pd.api.types.is_float_dtype(x):
            assert x.tolist() == y.tolist(), column
            continue
        one = x.isna() != y.isna()
        assert not one.any() or "price" in column, column
        both = x.notna() & y.notna()
        np.testing.assert_allclose(x[both], y[both], rtol=1e-9, atol=1e-9, err_msg=column)


@pytest.mark.parametrize("link_periods", [1, 2_000, 2_000_000])
def test_periods_in_this_process_are_built_in_runs_of_bounded_size(
    link_periods: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process the periods are built as LPs of at most `RUN_LINK_PERIODS` trade
    variables (a period at least): one LP for the whole day, a few, or one per period, and
    the same cost in every period as the one LP of the horizon."""
    from p2pmarket.app import clearing

    monkeypatch.setattr(clearing, "RUN_LINK_PERIODS", link_periods)
    data = p2pmarket.cases.load("seventeen-peer-case-3").to_dict()
    for peer in data["peers"]:
        peer.pop("storage", None)
    scenario = p2pmarket.Scenario.from_dict(data)
    whole = p2pmarket.clear(scenario, options=SolverOptions(split_periods=False))
    split = p2pmarket.clear(scenario, options=SolverOptions(split_periods=True, workers=1))
    assert split.periods_solved == "one by one" and whole.periods_solved == "together"
    assert split.objective_by_period == pytest.approx(whole.objective_by_period, rel=1e-9)
    assert sorted(split.dispatch.period.unique()) == list(range(scenario.periods))
    _same_where_priced(split.dispatch, whole.dispatch)


def test_parallel_workers_give_the_same_result() -> None:
    data = p2pmarket.cases.load("seventeen-peer-case-3").to_dict()
    for peer in data["peers"]:
        peer.pop("storage", None)
    scenario = p2pmarket.Scenario.from_dict(data)
    serial = p2pmarket.clear(scenario, options=SolverOptions(split_periods=True, workers=1))
    parallel = p2pmarket.clear(scenario, options=SolverOptions(split_periods=True, workers=2))
    assert parallel.objective == pytest.approx(serial.objective, rel=1e-12)
    # In this process the horizon is built once and solved period by period; each worker
    # clears its run of periods, each period its own cut, warm from the last period's
    # basis. The optimum is reached along other paths: the same cost in every period, and
    # here the same dispatch and prices to rounding; how equal sellers share a buyer (not
    # unique in this case) may differ, not how much each period trades.
    assert serial.periods_solved == parallel.periods_solved == "one by one"
    assert parallel.objective_by_period == pytest.approx(serial.objective_by_period, rel=1e-9)
    _same_where_priced(parallel.dispatch, serial.dispatch)
    _same_where_priced(parallel.prices, serial.prices)
    traded = [r.trades.groupby("period").energy_kwh.sum() for r in (parallel, serial)]
    pd.testing.assert_series_equal(*traded, rtol=1e-9)


def test_another_runner_gets_one_period_a_job_with_the_same_result() -> None:
    """A runner that is neither in this process nor local processes (a cluster's) is given
    one period per job, each its own one-period cut, and balances them itself."""
    data = p2pmarket.cases.load("seventeen-peer-case-3").to_dict()
    for peer in data["peers"]:
        peer.pop("storage", None)
    scenario = p2pmarket.Scenario.from_dict(data)
    seen: list[int] = []

    class Cluster:
        def map(self, fn: Any, jobs: Any) -> list[Any]:
            seen.extend(job[1].periods for job in jobs)
            return [fn(job) for job in jobs]

    split = SolverOptions(split_periods=True)
    serial = p2pmarket.clear(scenario, options=replace(split, workers=1))
    spread = p2pmarket.clear(scenario, options=split, runner=Cluster())
    assert seen == [1] * scenario.periods
    assert spread.objective_by_period == pytest.approx(serial.objective_by_period, rel=1e-9)
    _same_where_priced(spread.dispatch, serial.dispatch)


def test_large_single_period_hub_models_go_to_primal_simplex_with_the_same_optimum() -> None:
    """The algorithm chosen for the model's shape (`lp.shaped`) changes the path to the
    optimum, not the optimum: the same 2,000-peer market period by period under HiGHS's own
    dual simplex, and the user's choice always wins."""
    peers = [{"id": "grid", "role": "grid", "generation": {"max_kw": 1e5, "offer_per_kwh": 0.1}}]
    peers += [
        {"id": f"P{i}", "role": "prosumer", "load_kw": [5 + i % 3, 4 + i % 5],
         "export_fee": 0.01 + 1e-4 * (i % 7),
         "generation": {"max_kw": [8 * (i % 2), 9 * (i % 3 > 0)], "offer_per_kwh": 0.05 + i * 1e-5}}
        for i in range(2000)
    ]  # fmt: skip
    communities = [
        {"id": f"C{c}", "members": [f"P{i}" for i in range(c, 2000, 8)], "intra_fee": 0.002}
        for c in range(8)
    ]
    scenario = p2pmarket.Scenario.from_dict(
        {"peers": peers, "communities": communities, "periods": 2}
    )
    data = peer_data(scenario)
    net = build_hub_network(scenario, data, p2pmarket.Design.P2P)
    assert net.n_links >= PRIMAL_MIN_LINKS
    chosen = shaped(SolverOptions(), net, 1)
    assert chosen.algorithm == "simplex" and chosen.extra == {"simplex_strategy": 4}
    assert shaped(SolverOptions(), net, 24) == SolverOptions()
    assert shaped(SolverOptions(algorithm="ipm"), net, 1).algorithm == "ipm"
    dual = SolverOptions(extra={"simplex_strategy": 1})
    assert shaped(dual, net, 1) == dual
    split = SolverOptions(split_periods=True)
    primal = p2pmarket.clear(scenario, reduce=True, options=split)
    by_dual = p2pmarket.clear(scenario, reduce=True, options=replace(split, extra=dual.extra))
    assert primal.objective == pytest.approx(by_dual.objective, rel=1e-9)


def test_time_limit_is_a_clear_solver_error() -> None:
    scenario = p2pmarket.cases.load("seventeen-peer-case-3")
    with pytest.raises(p2pmarket.TimeLimitError, match="time limit") as caught:
        p2pmarket.CentralisedLP().clear_window(
            scenario,
            p2pmarket.Design.P2P,
            p2pmarket.Objective.PAPER,
            SolverOptions(time_limit_s=1e-9),
        )
    assert caught.value.time_limit_s == 1e-9


def forty_prosumers(periods: int) -> p2pmarket.Scenario:
    """A grid and 40 prosumers in 5 communities, loads moving with the hour: 1,640 explicit
    p2p links a period."""
    hours = np.arange(periods)
    peers = [{"id": "grid", "role": "grid", "generation": {"max_kw": 1e5, "offer_per_kwh": 0.1}}]
    peers += [
        {"id": f"P{i}", "role": "prosumer",
         "load_kw": (3 + 2 * np.sin(hours / 24 * 2 * np.pi + i)).round(3).tolist(),
         "generation": {"max_kw": 4, "offer_per_kwh": 0.05 + i * 1e-4}}
        for i in range(40)
    ]  # fmt: skip
    communities = [{"id": f"C{c}", "members": [f"P{i}" for i in range(c, 40, 5)]} for c in range(5)]
    return p2pmarket.Scenario.from_dict(
        {"peers": peers, "communities": communities, "periods": periods}
    )


def test_the_hub_model_is_chosen_by_trade_variables_over_the_whole_horizon() -> None:
    """1,640 links are few over a day and many over 120 periods: the size that picks the
    model counts links x periods (a 100-peer year had 40 million explicit trade variables)."""
    assert p2pmarket.clear(forty_prosumers(24), objective="system-cost").model == "explicit"
    longer = forty_prosumers(120)
    result = p2pmarket.clear(longer, objective="system-cost")
    assert result.model == "hubs"
    explicit = p2pmarket.clear(longer, objective="system-cost", reduce=False)
    assert result.objective == pytest.approx(explicit.objective, rel=1e-9)
