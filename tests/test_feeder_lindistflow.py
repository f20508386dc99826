"""The feeder in the market LP (issue 17): LinDistFlow rows, the equality with the
unconstrained market when nothing binds, the binding case and its price decomposition, and
the feeder's input (files, validation messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import p2pmarket
from p2pmarket.app.feeder import without_feeder
from p2pmarket.cases import load as load_case
from p2pmarket.cli.main import app
from p2pmarket.core.feeder import FeederNetwork, feeder_outcome, linear_flow, topology
from p2pmarket.errors import ScenarioError
from p2pmarket.io.feeder_files import SHIPPED, read_feeder, shipped_feeder_path, write_feeder
from p2pmarket.io.scenario_files import load_scenario

CASE = "seventeen-peer-feeder"
TOL_KW = 1e-6


@pytest.fixture(scope="module")
def case() -> p2pmarket.Scenario:
    return load_case(CASE)


@pytest.fixture(scope="module")
def cleared(case: p2pmarket.Scenario) -> p2pmarket.ClearingResult:
    return p2pmarket.clear(case)


def _loose(s: p2pmarket.Scenario) -> p2pmarket.Scenario:
    """`s` with a feeder whose limits cannot bind: a wide voltage band, huge ratings."""
    data = s.to_dict()
    data["feeder"].update(vmin_pu=0.5, vmax_pu=1.5, max_loading_percent=1e4)
    return p2pmarket.Scenario.from_dict(data)


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def test_no_binding_limit_gives_the_unconstrained_market(case: p2pmarket.Scenario) -> None:
    loose = p2pmarket.clear(_loose(case))
    free = p2pmarket.clear(without_feeder(case))
    assert loose.objective == pytest.approx(free.objective, rel=1e-9, abs=1e-9)
    columns = ["generation_kw", "charge_kw", "discharge_kw", "net_import_kw", "absorbed_kw"]
    a = loose.dispatch.set_index(["period", "peer"])[columns]
    b = free.dispatch.set_index(["period", "peer"])[columns]
    np.testing.assert_allclose(a.to_numpy(), b.reindex(a.index).to_numpy(), atol=TOL_KW)
    assert feeder_outcome(loose).binding.empty


def test_the_case_binds_and_respects_every_limit(
    case: p2pmarket.Scenario, cleared: p2pmarket.ClearingResult
) -> None:
    free = p2pmarket.clear(without_feeder(case))
    out = feeder_outcome(cleared)
    section = case.feeder
    assert section is not None
    assert len(out.binding) > 0, "the built-in feeder case must bind"
    assert cleared.objective > free.objective + 1e-6
    # Without the feeder the same market pushes a bus above the band: the limit matters.
    assert feeder_outcome(dataclass_with(free, case)).buses["vm_pu"].max() > section.vmax_pu
    vm = out.buses["vm_pu"]
    assert vm.max() <= section.vmax_pu + 1e-7
    assert vm.min() >= section.vmin_pu - 1e-7
    rated = np.isfinite(out.branches["rating_kva"])
    limit = section.max_loading_percent * (1 + 1e-7)
    assert (out.branches.loc[rated, "loading_percent"] <= limit).all()


def dataclass_with(result: p2pmarket.ClearingResult, scenario: p2pmarket.Scenario) -> Any:
    """`result` as if cleared on `scenario` (to read a free market's flows on the feeder)."""
    import dataclasses

    return dataclasses.replace(result, scenario=scenario, duals={})


def test_price_decomposition_sums_and_keeps_the_trade_relation(
    cleared: p2pmarket.ClearingResult,
) -> None:
    out = feeder_outcome(cleared)
    p = out.prices
    total = p["energy_per_kwh"] + p["congestion_per_kwh"] + p["voltage_per_kwh"]
    np.testing.assert_allclose(total, p["price_per_kwh"], atol=1e-12)
    # The network terms are the dual of each peer's withdrawal definition (an independent
    # reading of the same duals).
    network = (
        (p["congestion_per_kwh"] + p["voltage_per_kwh"])
        .to_numpy()
        .reshape(-1, len(out.model.peers))
        .T
    )
    np.testing.assert_allclose(network, out.network_term, atol=1e-9)
    assert (p["voltage_per_kwh"] < -1e-6).any(), "the binding case has a voltage term"
    # On every trade with energy, the energy terms keep the copper-plate relation:
    # buyer's energy price = seller's (selling) energy price + the link's fee.
    d = cleared.dispatch.set_index(["peer", "period"])
    net_term = p.set_index(["peer", "period"])[["congestion_per_kwh", "voltage_per_kwh"]].sum(
        axis=1
    )
    trades = cleared.trades[(cleared.trades.power_kw > 1e-5)]
    trades = trades[(trades.seller_kind == "peer") & (trades.buyer_kind == "peer")]
    trades = trades[(trades.seller != "grid") & (trades.buyer != "grid")]
    assert len(trades) > 0
    for row in trades.itertuples():
        buyer = d.loc[(row.buyer, row.period), "price_per_kwh"] - net_term[(row.buyer, row.period)]
        seller = (
            d.loc[(row.seller, row.period), "sell_price_per_kwh"]
            - net_term[(row.seller, row.period)]
        )
        assert buyer - seller == pytest.approx(row.fee_per_kwh, abs=1e-7), row


def test_settlement_uses_the_nodal_prices(cleared: p2pmarket.ClearingResult) -> None:
    """Under the marginal rule, the bills price energy at the balance duals, which with the
    feeder in the LP are the nodal prices (`dispatch.price_per_kwh`)."""
    from p2pmarket.app.run import settle_result

    settlement = settle_result(cleared, "marginal")
    out = feeder_outcome(cleared)
    t = int(out.binding["period"].iloc[0])
    trades = settlement.trades[settlement.trades.period == t]
    prices = cleared.dispatch[cleared.dispatch.period == t].set_index("peer")["price_per_kwh"]
    assert len(trades)
    for row in trades.itertuples():
        if row.energy_kwh > 1e-6 and np.isfinite(prices[row.buyer]):
            fee = row.fee / row.energy_kwh
            assert row.price_per_kwh + fee == pytest.approx(prices[row.buyer], abs=1e-9)


def test_linear_flow_agrees_with_the_compiled_rows(cleared: p2pmarket.ClearingResult) -> None:
    """Per-bus LinDistFlow (`linear_flow`) and the peer-based rows give the same voltages."""
    out = feeder_outcome(cleared)
    model = out.model
    n = len(model.topology.buses)
    p = np.zeros((n, out.withdrawal_kw.shape[1]))
    q = np.zeros_like(p)
    np.add.at(p, model.bus, out.withdrawal_kw)
    np.add.at(q, model.bus, model.tan_phi[:, None] * out.withdrawal_kw)
    vm, _, _ = linear_flow(model.topology, model.u0, p, q)
    linear = out.buses.pivot(index="bus", columns="period", values="vm_pu")
    np.testing.assert_allclose(linear.reindex(model.topology.buses).to_numpy(), vm, atol=1e-12)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_feeders_are_radial(name: str) -> None:
    net = FeederNetwork.model_validate(_tuples(read_feeder(shipped_feeder_path(name))))
    topo = topology(net)
    assert len(topo.branches) == len(topo.buses) - 1
    assert (topo.depth[np.arange(len(topo.buses)) != topo.root] > 0).all()


def _small_feeder(folder: Path) -> None:
    """Three buses, two lines and a transformer, written as CSV tables beside a YAML file."""
    (folder / "buses.csv").write_text("id,vn_kv\nmv,10\nlv,0.4\nb1,0.4\nb2,0.4\n")
    (folder / "lines.csv").write_text(
        "id,from_bus,to_bus,r_ohm,x_ohm,max_i_ka\nl1,lv,b1,0.05,0.02,0.2\nl2,b1,b2,0.05,0.02,\n"
    )
    (folder / "small.yaml").write_text(
        "name: small\nroot: mv\nbuses: {csv: buses.csv}\nlines: {csv: lines.csv}\n"
        "transformers:\n  - {id: t, hv_bus: mv, lv_bus: lv, sn_kva: 100, vk_percent: 4,"
        " vkr_percent: 1}\n"
    )


def _scenario_text(feeder: str, **extra: str) -> str:
    peers = extra.get("peers", "[{peer: A, bus: b2}, {peer: B, bus: b1, power_factor: 0.9}]")
    return f"""
name: tiny
periods: 2
peers:
  - {{id: grid, role: grid, generation: {{max_kw: 500, offer_per_kwh: 0.1}}}}
  - {{id: A, role: producer, generation: {{max_kw: 80, offer_per_kwh: 0.02}}}}
  - {{id: B, role: consumer, load_kw: [30, 60]}}
feeder:
  {feeder}
  vmax_pu: 1.05
  peers: {peers}
"""


def test_a_plain_csv_yaml_feeder_clears(tmp_path: Path) -> None:
    _small_feeder(tmp_path)
    (tmp_path / "s.yaml").write_text(_scenario_text("file: small.yaml"))
    s = load_scenario(tmp_path / "s.yaml")
    assert s.feeder is not None and s.feeder.source == "file:small.yaml"
    assert s.feeder.network.lines[1].max_i_ka is None
    result = p2pmarket.clear(s)
    out = feeder_outcome(result)
    # A (at b2) serves B (at b1): l2 carries A's export, l1 nothing.
    flows = out.branches.set_index(["period", "branch"])["p_kw"]
    assert flows[(1, "l2")] == pytest.approx(float(out.withdrawal_kw[0, 1]), abs=1e-9)  # A at b2
    assert flows[(1, "l1")] == pytest.approx(0.0, abs=1e-6)  # B at b1 takes what A sends
    assert out.buses["vm_pu"].max() <= 1.05 + 1e-7
    again = load_scenario(tmp_path / "s.yaml")
    assert again == s  # deterministic


def test_write_and_read_a_feeder_round_trip(tmp_path: Path) -> None:
    data = read_feeder(shipped_feeder_path("cigre-lv"))
    write_feeder(data, tmp_path, "copy")
    assert FeederNetwork.model_validate(_tuples(read_feeder(tmp_path / "copy.yaml"))) == (
        FeederNetwork.model_validate(_tuples(data))
    )


@pytest.mark.parametrize(
    ("feeder", "peers", "field", "words"),
    [
        (
            "pandapower: kerber-dorfnetz",
            "[{peer: A, bus: nowhere}, {peer: B, bus: loadbus_1_1}]",
            "feeder.peers[A].bus",
            "unknown bus 'nowhere'",
        ),
        (
            "pandapower: kerber-dorfnetz",
            "[{peer: A, bus: loadbus_1_2}]",
            "feeder.peers",
            "'B' is attached to no bus",
        ),
        (
            "pandapower: kerber-dorfnetz",
            "[{peer: A, bus: loadbus_1_2}, {peer: B, bus: loadbus_1_1},"
            " {peer: grid, bus: loadbus_1_3}]",
            "feeder.peers[grid].peer",
            "grid peer",
        ),
        (
            "pandapower: kerber-dorfnetz",
            "[{peer: A, bus: loadbus_1_2, power_factor: 1.2}, {peer: B, bus: loadbus_1_1}]",
            "feeder.peers",
            "1.2",
        ),
        ("pandapower: atlantis", "[]", "feeder.pandapower", "unknown feeder 'atlantis'"),
    ],
)
def test_invalid_feeders_are_refused_in_one_line(
    tmp_path: Path, feeder: str, peers: str, field: str, words: str
) -> None:
    (tmp_path / "s.yaml").write_text(_scenario_text(feeder, peers=peers))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "s.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(field), message
    assert words in message, message


def test_a_feeder_that_is_not_radial_is_refused(tmp_path: Path) -> None:
    _small_feeder(tmp_path)
    lines = (tmp_path / "lines.csv").read_text() + "l3,lv,b2,0.05,0.02,0.2\n"
    (tmp_path / "lines.csv").write_text(lines)
    (tmp_path / "s.yaml").write_text(_scenario_text("file: small.yaml"))
    with pytest.raises(
        ScenarioError, match=r"^feeder\.network\.lines: 4 lines and transformers for 4 buses"
    ):
        load_scenario(tmp_path / "s.yaml")


def test_the_command_line_exits_2_on_an_invalid_feeder(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        _scenario_text("pandapower: kerber-dorfnetz", peers="[{peer: A, bus: nowhere}]")
    )
    result = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    assert "feeder.peers[A].bus" in result.output


def test_a_scenario_without_feeder_keeps_its_dict(case: p2pmarket.Scenario) -> None:
    assert "feeder" not in without_feeder(case).to_dict()
    assert "feeder" not in load_case("five-peer-case-2").to_dict()


def test_outcome_tables_have_their_columns(cleared: p2pmarket.ClearingResult) -> None:
    from p2pmarket.core.feeder.outcome import BRANCH_COLUMNS, BUS_COLUMNS, DECOMPOSITION_COLUMNS

    out = feeder_outcome(cleared)
    assert tuple(out.buses.columns) == BUS_COLUMNS
    assert tuple(out.branches.columns) == BRANCH_COLUMNS
    assert tuple(out.prices.columns) == DECOMPOSITION_COLUMNS
    assert isinstance(out.binding, pd.DataFrame)


@pytest.mark.parametrize("design", ["community", "hybrid"])
def test_every_design_respects_the_feeder(case: p2pmarket.Scenario, design: str) -> None:
    out = feeder_outcome(p2pmarket.clear(case, design=design))
    assert case.feeder is not None
    assert out.buses["vm_pu"].max() <= case.feeder.vmax_pu + 1e-7
    assert len(out.binding) > 0
    total = out.prices[["energy_per_kwh", "congestion_per_kwh", "voltage_per_kwh"]].sum(axis=1)
    np.testing.assert_allclose(total, out.prices["price_per_kwh"], atol=1e-12)
