"""Any string is a valid peer id: no node that is not a peer is ever told apart by its name.

Peer ids are user data. The market's pass-through nodes have names too (community managers
are named by their community's id; the fee hubs of the reduced p2p model are called `to:C1`,
`in:C1`, `out:*`, `uniform`, ...), and a peer may be called exactly like any of them, like a
community, or like the grid. Random scenarios (tests/strategies.py) are renamed with ids drawn
from a pool of such names and cleared under every design (and, for a full p2p market, with and
without the hub model); the result must be the one of the original ids, renamed, and agree
with the independent reference formulation (tests/reference_lp.py).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import p2pmarket
from p2pmarket.cli.main import app
from p2pmarket.core.flows import bilateral_trades
from reference_lp import solve_reference
from strategies import scenario_dicts

SETTINGS = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])

AWKWARD_IDS = (
    "hub:x",
    "hub:to:C1",
    "manager:C1",
    "grid",
    "C1",
    "C2",
    "C3",
    "*",
    "Pé",
    "太阳能",
    "☀",
    "peer one",
    "to:*",
    "out:C1",
    # the exact names of the hub model's nodes
    "to:C1",
    "in:C1",
    "out:*",
    "uniform",
    "contract:C1>C2",
    "P2",
)
"""Names a peer may take: pass-through node names, community ids, the grid's usual id,
unicode, spaces, and another peer's original id (P2), so that renamings also swap ids."""


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def rename_peers(data: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """`data` with every peer id and every reference to one renamed (community members,
    links, fee_collector). Community ids are left alone."""
    out = copy.deepcopy(data)
    for peer in out["peers"]:
        peer["id"] = mapping.get(peer["id"], peer["id"])
    for community in out.get("communities") or []:
        community["members"] = [mapping.get(m, m) for m in community["members"]]
    if out.get("links") is not None:
        out["links"] = [[mapping.get(a, a), mapping.get(b, b)] for a, b in out["links"]]
    if out.get("fee_collector") is not None:
        out["fee_collector"] = mapping.get(out["fee_collector"], out["fee_collector"])
    return out


def for_reference(data: dict[str, Any]) -> dict[str, Any]:
    """The reference formulation refuses a community id equal to a peer id (it keeps the two
    name spaces apart by refusing the clash, not by tagging). Community ids play no part in
    the LP beyond naming the contract pairs, so rename them out of the way consistently."""
    out = copy.deepcopy(data)
    peer_ids = {p["id"] for p in out["peers"]}
    new = {}
    for k, community in enumerate(out.get("communities") or []):
        name = f"#community-{k}"
        assert name not in peer_ids
        new[community["id"]] = name
        community["id"] = name
    for entry in out.get("community_fees") or []:
        entry["from"], entry["to"] = new[entry["from"]], new[entry["to"]]
    return out


@st.composite
def renamed_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(original scenario dict, the same scenario with awkward peer ids, old -> new ids)."""
    data = draw(scenario_dicts(max_peers=10, max_periods=3))
    ids = [p["id"] for p in data["peers"]]
    pool = list(dict.fromkeys([*AWKWARD_IDS, *ids]))  # no id twice (P2 is in both)
    names = draw(st.permutations(pool))[: len(ids)]
    mapping = dict(zip(ids, names, strict=True))
    renamed = rename_peers(data, mapping)
    if draw(st.booleans()):
        # a fee collector among the peers, possibly one with an awkward id
        collector = draw(st.sampled_from(ids))
        data["fee_collector"] = collector
        renamed["fee_collector"] = mapping[collector]
    return data, renamed, mapping


def balance_residual(result: p2pmarket.ClearingResult) -> np.ndarray:
    d = result.dispatch
    supply = d.generation_kw + d.discharge_kw - d.charge_kw + d.import_kw - d.export_kw
    demand = d.load_kw + d.flexible_load_kw + d.absorbed_kw
    return (supply - demand).to_numpy()


def assert_consistent(result: p2pmarket.ClearingResult, peer_ids: list[str]) -> None:
    """Every peer balanced in every period; the peers' sales are the trades sold by peers;
    no pass-through node shows up as a peer in the bilateral trades."""
    d = result.dispatch
    dt = result.scenario.period_hours
    assert sorted(d.peer.unique()) == sorted(peer_ids)
    assert len(d) == len(peer_ids) * result.scenario.periods
    np.testing.assert_allclose(balance_residual(result), 0.0, atol=1e-6)
    sold_by_peers = result.trades.loc[result.trades.seller_kind == "peer", "energy_kwh"].sum()
    assert sold_by_peers == pytest.approx(float((d.export_kw * dt).sum()), rel=1e-9, abs=1e-6)
    peers_trades = result.trades[result.trades.seller_kind == "peer"]
    assert set(peers_trades.seller) <= set(peer_ids)
    bilateral = bilateral_trades(result)
    assert set(bilateral.seller) <= set(peer_ids)
    assert set(bilateral.buyer) <= set(peer_ids)
    exports = (d.export_kw * dt).groupby(d.peer).sum()
    imports = (d.import_kw * dt).groupby(d.peer).sum()
    sold = bilateral.groupby("seller").energy_kwh.sum()
    bought = bilateral.groupby("buyer").energy_kwh.sum()
    for peer in peer_ids:
        assert sold.get(peer, 0.0) == pytest.approx(exports[peer], abs=1e-6)
        assert bought.get(peer, 0.0) == pytest.approx(imports[peer], abs=1e-6)


def unique_net_positions(data: dict[str, Any]) -> bool:
    """Distinct constant offers and no storage or flexible demand (the heuristic of
    tests/test_reduction.py): each peer's generation, hence its net position, is then the
    same in every optimum."""
    flat = []
    for p in data["peers"]:
        if p.get("storage") is not None or p.get("flexible_load"):
            return False
        gen = p.get("generation")
        if gen is None:
            continue
        if isinstance(gen["offer_per_kwh"], list):
            return False
        flat.append(gen["offer_per_kwh"])
    return len(set(flat)) == len(flat)


def net_positions(result: p2pmarket.ClearingResult, rename: dict[str, str]) -> pd.Series:
    d = result.dispatch
    net = d.generation_kw + d.discharge_kw - d.charge_kw - d.load_kw - d.flexible_load_kw
    index = pd.MultiIndex.from_arrays([d.period, d.peer.map(lambda p: rename.get(p, p))])
    return pd.Series(net.to_numpy(), index=index).sort_index()


VARIANTS = [("p2p", False), ("p2p", True), ("community", False), ("hybrid", False)]
"""(design, reduce): every design with its explicit links, and the hub model of p2p."""


def hub_model_is_exact(data: dict[str, Any]) -> bool:
    offers = [
        o
        for p in data["peers"]
        if p.get("generation")
        for o in np.atleast_1d(p["generation"]["offer_per_kwh"])
    ]
    return data.get("links") is None and (
        data["objective"] != "paper" or all(o >= 0 for o in offers)
    )


# --------------------------------------------------------------------------------------------
# Property: any peer id works
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("design", "reduce"), VARIANTS)
@SETTINGS
@given(drawn=renamed_scenarios())
def test_any_peer_id_clears_like_the_original(
    design: str, reduce: bool, drawn: tuple[dict[str, Any], dict[str, Any], dict[str, str]]
) -> None:
    original, renamed, mapping = drawn
    if reduce:  # the hub model is for p2p markets with unrestricted links
        original, renamed = {**original, "links": None}, {**renamed, "links": None}
    back = {new: old for old, new in mapping.items()}
    scenario = p2pmarket.Scenario.from_dict(renamed)
    objective = renamed["objective"]
    peer_ids = [p["id"] for p in renamed["peers"]]
    try:
        result = p2pmarket.clear(scenario, design=design, reduce=reduce)
    except p2pmarket.OptionError:
        # refused only where the hub model is not exact: skip those
        assert reduce and not hub_model_is_exact(renamed)
        return
    assert result.model == ("hubs" if reduce else "explicit")

    reference = solve_reference(for_reference(renamed), design=design, objective=objective)
    assert reference.status == "optimal"
    assert result.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-7)
    assert_consistent(result, peer_ids)

    # The same market under its original ids: the same optimum, renamed.
    same = p2pmarket.clear(p2pmarket.Scenario.from_dict(original), design=design, reduce=reduce)
    assert same.model == result.model
    assert result.objective == pytest.approx(same.objective, rel=1e-9, abs=1e-9)
    if unique_net_positions(original):
        pd.testing.assert_series_equal(
            net_positions(result, back), net_positions(same, {}), atol=1e-6, rtol=0
        )
        generation = result.dispatch.set_index(["peer", "period"]).generation_kw
        for peer, values in reference.generation_kw.items():
            for t, value in enumerate(values):
                assert generation[(peer, t)] == pytest.approx(value, abs=1e-6)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(renamed_scenarios(), st.sampled_from(["p2p", "hybrid", "community"]))
def test_any_peer_id_settles(
    drawn: tuple[dict[str, Any], dict[str, Any], dict[str, str]], design: str
) -> None:
    """Settlement keys peers by id too: one bill per peer, budget balance, fees collected by
    the named collector whatever its id."""
    _, renamed, _ = drawn
    scenario = p2pmarket.Scenario.from_dict(renamed)
    run = p2pmarket.run_market(scenario, design=design, objective="system-cost")
    s = run.settlement
    assert sorted(s.bills.peer) == sorted(p["id"] for p in renamed["peers"])
    assert s.payments == pytest.approx(s.receipts + s.fees_collected, abs=1e-6)
    bills = s.bills.set_index("peer")
    collector = renamed.get("fee_collector")
    for peer in bills.index:
        expected = s.fees_collected if peer == collector else 0.0
        assert bills.loc[peer, "received_fees"] == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------------------------
# The reported bug: a peer called `hub:x`
# --------------------------------------------------------------------------------------------

GRID_OFFER = 0.10
FEE_EXPORT = 0.01
FEE_INTRA = 0.001


def hundred_and_one_peers() -> tuple[dict[str, Any], float]:
    """A full p2p market of the grid and 100 peers in 4 communities, one of them `hub:x`
    (a prosumer with surplus), and the energy it must trade, by hand.

    Every peer's offer + fee (<= 0.05 + 0.01) is below the grid's offer, and the peers
    together cannot cover the load, so every peer generates at its maximum. Every fee is
    positive (export 0.01 for all, intra 0.001), so no peer both buys and sells in a period:
    if A sold to B and bought from C, letting C serve B directly changes the fees by
    fee(C>B) - fee(A>B) - fee(C>A) < 0 (checked case by case: fee(C>B) = 0.01 means C and
    B in different communities, so A differs from C's community (fee(C>A) = 0.01) or from
    B's (fee(A>B) = 0.01); fee(C>B) = 0.001 is less than any sum of two fees).
    So each peer trades exactly max(0, load - generation): the traded energy is unique.
    """
    peers: list[dict[str, Any]] = [
        {
            "id": "grid",
            "role": "grid",
            "generation": {"max_kw": 1e5, "offer_per_kwh": GRID_OFFER},
            "export_fee": FEE_EXPORT,
        }
    ]
    traded = 0.0
    for i in range(100):
        kind = i % 4
        pid = "hub:x" if i == 7 else f"P{i}"
        load = 0.0 if kind == 1 else 10.0 + (i % 5)
        cap = {0: 0.0, 1: 6.0, 2: 4.0, 3: 25.0}[kind]  # consumer, producer, prosumers
        if i == 7:
            cap = 40.0  # hub:x exports 40 - load
        peer: dict[str, Any] = {
            "id": pid,
            "role": {0: "consumer", 1: "producer"}.get(kind, "prosumer"),
            "export_fee": FEE_EXPORT,
        }
        if load:
            peer["load_kw"] = load
        if cap:
            peer["generation"] = {"max_kw": cap, "offer_per_kwh": 0.03 + 2e-4 * i}
        peers.append(peer)
        traded += max(0.0, load - cap)
    members = [p["id"] for p in peers[1:]]
    communities = [
        {"id": f"C{c + 1}", "members": members[25 * c : 25 * (c + 1)], "intra_fee": FEE_INTRA}
        for c in range(4)
    ]
    total_cap = sum(p.get("generation", {}).get("max_kw", 0.0) for p in peers[1:])
    total_load = sum(p.get("load_kw", 0.0) for p in peers[1:])
    assert total_cap < total_load
    data = {
        "name": "101 peers, one called hub:x",
        "design": "p2p",
        "objective": "system-cost",
        "communities": communities,
        "peers": peers,
    }
    return data, traded


def test_peer_called_hub_x_in_a_large_p2p_market() -> None:
    data, traded = hundred_and_one_peers()
    scenario = p2pmarket.Scenario.from_dict(data)
    hubs = p2pmarket.clear(scenario, reduce=True)  # the size rule: test_reduction.py
    explicit = p2pmarket.clear(scenario, reduce=False)
    assert hubs.model == "hubs" and explicit.model == "explicit"
    ids = [p["id"] for p in data["peers"]]
    for result in (hubs, explicit):
        assert_consistent(result, ids)
        gen = result.dispatch.set_index("peer").generation_kw
        for p in data["peers"][1:]:
            assert gen[p["id"]] == pytest.approx(p.get("generation", {}).get("max_kw", 0.0))
        assert result.trades.energy_kwh.sum() == pytest.approx(traded, rel=1e-9)
    assert hubs.objective == pytest.approx(explicit.objective, rel=1e-9)
    exports = explicit.dispatch.set_index("peer").export_kw
    assert exports["hub:x"] == pytest.approx(40.0 - (10.0 + 7 % 5))
    assert hubs.dispatch.set_index("peer").export_kw["hub:x"] == pytest.approx(exports["hub:x"])


def five_peer_case_2_with_hub_x() -> dict[str, Any]:
    data = p2pmarket.cases.load("five-peer-case-2").to_dict()
    return rename_peers(data, {"P3": "hub:x"})


def test_case_two_with_a_peer_called_hub_x_through_the_hub_model() -> None:
    data = five_peer_case_2_with_hub_x()
    scenario = p2pmarket.Scenario.from_dict(data)
    # Case II offers are all positive, so the hub model is exact under `paper` too.
    assert all(p.generation is None or p.generation.offer_per_kwh > 0 for p in scenario.peers)
    result = p2pmarket.clear(scenario, objective="paper", reduce=True)
    assert result.model == "hubs"
    # The paper's objective (Moreno et al. 2021, Table 3).
    assert result.objective == pytest.approx(28.456, abs=1e-9)
    assert_consistent(result, [p["id"] for p in data["peers"]])
    d = result.dispatch.set_index("peer")
    # Table 3: P3 (here hub:x) generates 110 kW and exports 60 kW.
    assert d.loc["hub:x", "generation_kw"] == pytest.approx(110.0)
    assert d.loc["hub:x", "export_kw"] == pytest.approx(60.0)


def awkward_community_market() -> dict[str, Any]:
    """A small hybrid market whose peers are all called like something else: the grid is
    `hub:to:C1`, a consumer is `grid`, a prosumer is `C1` (in community C2, while community
    C1 exists), others are `manager:C1`, `太阳能`, `peer one`, `*`, `to:*` and `out:C1`."""
    grid = {
        "id": "hub:to:C1",
        "role": "grid",
        "generation": {"max_kw": 1000, "offer_per_kwh": 0.1},
        "export_fee": 0.01,
        "buy_price_per_kwh": 0.03,
    }

    def prosumer(pid: str, load: float, cap: float, offer: float) -> dict[str, Any]:
        return {
            "id": pid,
            "role": "prosumer",
            "load_kw": load,
            "generation": {"max_kw": cap, "offer_per_kwh": offer},
            "export_fee": 0.005,
        }

    peers = [
        grid,
        {"id": "grid", "role": "consumer", "load_kw": [20.0, 5.0]},
        prosumer("C1", 4.0, [30.0, 0.0], 0.02),
        prosumer("manager:C1", 6.0, 8.0, 0.05),
        {"id": "太阳能", "role": "producer", "generation": {"max_kw": 12.0, "offer_per_kwh": 0.01}},
        {"id": "peer one", "role": "consumer", "load_kw": 7.5},
        prosumer("*", 3.0, 2.0, 0.04),
        {"id": "to:*", "role": "consumer", "load_kw": [1.0, 9.0]},
        prosumer("out:C1", 2.0, 6.0, 0.03),
    ]
    return {
        "name": "awkward ids",
        "periods": 2,
        "design": "hybrid",
        "objective": "system-cost",
        "fee_collector": "manager:C1",
        "communities": [
            {"id": "C1", "members": ["grid", "manager:C1", "太阳能"], "intra_fee": 0.002},
            {"id": "C2", "members": ["C1", "peer one", "*"], "export_fee": 0.004},
        ],
        "community_fees": [{"from": "C2", "to": "C1", "fee": 0.001}],
        "peers": peers,
    }


def test_awkward_ids_match_the_reference_in_every_design() -> None:
    data = awkward_community_market()
    scenario = p2pmarket.Scenario.from_dict(data)
    ids = [p["id"] for p in data["peers"]]
    for design, reduce in VARIANTS:
        result = p2pmarket.clear(scenario, design=design, reduce=reduce)
        reference = solve_reference(for_reference(data), design=design)
        assert result.objective == pytest.approx(reference.objective, rel=1e-6, abs=1e-7)
        assert_consistent(result, ids)


@pytest.mark.parametrize("which", ["case-2", "101-peers", "awkward"])
def test_cli_runs_scenarios_with_a_peer_called_hub_x(which: str, tmp_path: Path) -> None:
    data = {
        "case-2": five_peer_case_2_with_hub_x,
        "101-peers": lambda: hundred_and_one_peers()[0],
        "awkward": awkward_community_market,
    }[which]()
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    outcome = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    if which == "case-2":
        assert "28.4560" in outcome.output  # the paper's objective
    dispatch = pd.read_csv(out / "dispatch.csv", keep_default_na=False)
    assert set(dispatch.peer) == {p["id"] for p in data["peers"]}
    supply = (
        dispatch.generation_kw
        + dispatch.discharge_kw
        - dispatch.charge_kw
        + dispatch.import_kw
        - dispatch.export_kw
    )
    demand = dispatch.load_kw + dispatch.flexible_load_kw + dispatch.absorbed_kw
    np.testing.assert_allclose(supply, demand, atol=1e-6)
