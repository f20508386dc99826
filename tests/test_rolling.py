"""Rolling horizons (issue 14): consecutive windows with a look-ahead, each storage unit's
state of charge carried from one window into the next.

Expected values come from the single LP over the whole horizon (the principle of
optimality: with a look-ahead that reaches the end, rolling loses nothing) and from
invariants the schedule must keep whatever the look-ahead (balance, storage continuity
across window boundaries, the scenario's start and end states).
"""

from __future__ import annotations

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
from p2pmarket.core.horizon import cut, rolling_plan, window_slice
from p2pmarket.core.scenario import DESIGNS
from p2pmarket.core.solve import SolverOptions
from p2pmarket.errors import OptionError
from p2pmarket.types import PeriodsSolved
from strategies import scenario_dicts
from test_invariants import balance_residual

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def days(name: str, k: int, *, soc: float = 0.5, scale: float = 1.3) -> p2pmarket.Scenario:
    """`k` days of a built-in 24-hour case, each day's loads `scale` times the day before,
    batteries half full at the start and at the end (so the days are not alike and the end
    state binds)."""
    data = p2pmarket.cases.load(name).to_dict()
    periods = data["periods"]

    def tiled(value: Any, factor: bool) -> Any:
        if isinstance(value, list) and len(value) == periods:
            return [v * (scale**d if factor else 1.0) for d in range(k) for v in value]
        return value

    def walk(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {kk: walk(tiled(vv, kk == "load_kw"), kk) for kk, vv in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        return node

    data = walk(data)
    data["periods"] = periods * k
    for peer in data["peers"]:
        if peer.get("storage"):
            peer["storage"].update(initial_soc=soc, final_soc=soc)
    return p2pmarket.Scenario.from_dict(data)


def storage_steps(result: p2pmarket.ClearingResult) -> np.ndarray:
    """soc[t] - soc[t-1] - dt (eta_c charge - discharge / eta_d) for every unit and period,
    soc[-1] being the scenario's initial state: zero where the storage balance holds."""
    s = result.scenario
    d = result.dispatch
    residuals = []
    for peer in s.peers:
        unit = peer.storage
        if unit is None:
            continue
        rows = d[d["peer"] == peer.id].sort_values("period")
        soc = rows["soc_kwh"].to_numpy()
        before = np.concatenate([[unit.initial_soc * unit.capacity_kwh], soc[:-1]])
        step = s.period_hours * (
            unit.charge_efficiency * rows["charge_kw"].to_numpy()
            - rows["discharge_kw"].to_numpy() / unit.discharge_efficiency
        )
        residuals.append(soc - before - step)
    return np.concatenate(residuals) if residuals else np.zeros(1)


@pytest.mark.parametrize(
    ("design", "objective"),
    [("p2p", "paper"), ("community", "system-cost"), ("hybrid", "system-cost")],
)
def test_a_look_ahead_to_the_end_gives_the_single_lp(design: str, objective: str) -> None:
    s = days("seventeen-peer-case-3", 3)  # 72 periods, two batteries
    whole = p2pmarket.clear(s, design=design, objective=objective)
    rolled = p2pmarket.clear(
        s, design=design, objective=objective, options=SolverOptions(window=24, lookahead=48)
    )
    assert rolled.periods_solved == PeriodsSolved.ROLLING
    assert rolled.windows == ((0, 24, 72), (24, 24, 48), (48, 24, 24))
    assert rolled.objective == pytest.approx(whole.objective, rel=1e-6, abs=1e-6)
    assert len(rolled.dispatch) == len(whole.dispatch)
    assert np.abs(storage_steps(rolled)).max() < 1e-6


@SETTINGS
@given(scenario_dicts(max_peers=5, max_periods=6), st.integers(1, 5), st.sampled_from(DESIGNS))
def test_random_markets_rolled_with_a_full_look_ahead_keep_the_optimum(
    data: dict[str, Any], window: int, design: str
) -> None:
    s = p2pmarket.Scenario.from_dict(data)
    whole = p2pmarket.clear(s, design=design)
    options = SolverOptions(window=window, lookahead=s.periods)
    rolled = p2pmarket.clear(s, design=design, options=options)
    assert rolled.objective == pytest.approx(whole.objective, rel=1e-6, abs=1e-6)
    assert np.abs(balance_residual(rolled.dispatch)).max() < 1e-6
    assert np.abs(storage_steps(rolled)).max() < 1e-6


def test_without_look_ahead_the_schedule_is_balanced_and_continuous() -> None:
    s = days("seventeen-peer-case-3", 3)
    whole = p2pmarket.clear(s, objective="system-cost")
    rolled = p2pmarket.clear(
        s, objective="system-cost", options=SolverOptions(window=24, lookahead=0)
    )
    assert rolled.windows == ((0, 24, 24), (24, 24, 24), (48, 24, 24))
    assert np.abs(balance_residual(rolled.dispatch)).max() < 1e-6
    assert np.abs(storage_steps(rolled)).max() < 1e-6  # across window boundaries too
    assert sorted(rolled.dispatch["period"].unique()) == list(range(72))
    units = {p.id: p.storage for p in s.peers if p.storage is not None}
    last = rolled.dispatch[rolled.dispatch["period"] == 71].set_index("peer")["soc_kwh"]
    for peer, unit in units.items():
        assert last[peer] >= unit.final_soc * unit.capacity_kwh - 1e-6
    # Knowing less of the future never does better than knowing all of it.
    assert rolled.objective >= whole.objective - 1e-6


def test_a_rolled_market_is_settled_and_billed_over_the_whole_horizon() -> None:
    s = days("seventeen-peer-case-3", 2)
    run = p2pmarket.run_market(s, options=SolverOptions(window=24, lookahead=24))
    whole = p2pmarket.run_market(s)
    bills, expected = (
        run.settlement.bills.set_index("peer"),
        whole.settlement.bills.set_index("peer"),
    )
    assert list(bills.index) == list(expected.index)
    # With a look-ahead to the end the cleared market is the same, so is what it costs.
    assert bills["cost_market"].sum() == pytest.approx(expected["cost_market"].sum(), rel=1e-6)
    assert bills["cost_baseline"].to_numpy() == pytest.approx(
        expected["cost_baseline"].to_numpy(), rel=1e-6
    )


def test_the_baseline_cleared_beside_the_market_is_the_same() -> None:
    """With local processes allowed, a rolling market's baseline is cleared in a process of
    its own while the market clears here (`Background`): same bills as one after the other,
    and every baseline window told."""
    s = days("seventeen-peer-case-3", 3)
    options = SolverOptions(window=24, lookahead=24)
    told: list[tuple[str, int, int]] = []
    beside = p2pmarket.run_market(
        s,
        options=options,
        runner=p2pmarket.LocalProcesses(2),
        on_window=lambda which, done, total: told.append((which, done, total)),
    )
    alone = p2pmarket.run_market(s, options=options, runner=p2pmarket.InProcess())
    pd.testing.assert_frame_equal(beside.settlement.bills, alone.settlement.bills)
    baseline = [(done, total) for which, done, total in told if which == "no-trading baseline"]
    assert baseline and baseline[-1] == (3, 3)
    assert sorted(set(baseline)) == baseline


def test_windows_solved_warm_equal_windows_solved_cold() -> None:
    """One HiGHS instance kept from window to window (its last basis the next start) finds
    each window's optimum, the same as a fresh instance per window."""
    s = days("seventeen-peer-case-3", 3)
    lp = p2pmarket.CentralisedLP()
    warm = lp.warm()
    instances = set()
    for start in (0, 24, 48):
        window = window_slice(s, rolling_plan(72, 24, 0)[start // 24][0], initial_soc=None)
        objective = warm.clear_window(window, "p2p", "system-cost", SolverOptions()).objective
        cold = lp.clear_window(window, "p2p", "system-cost", SolverOptions()).objective
        assert objective == pytest.approx(cold, rel=1e-9, abs=1e-9)
        instances.add(id(warm.session._highs))
    assert len(instances) == 1  # the windows share their LP's matrix: one instance, warm


def test_a_kept_window_holds_none_of_its_look_ahead() -> None:
    """`cut` keeps a window's own periods as copies: a year's windows wait in memory until
    they are merged, and a view would keep each one's look-ahead (or its Arrow string
    buffers) alive with it."""
    s = days("seventeen-peer-case-3", 2)
    solved = p2pmarket.clear(s, "p2p", "system-cost")
    kept = cut(solved, 24)
    for name in ("dispatch", "trades", "prices"):
        whole, part = getattr(solved, name), getattr(kept, name)
        assert part["period"].max() == 23 and len(part) == (whole["period"] < 24).sum()
        pd.testing.assert_frame_equal(part, whole[whole["period"] < 24].reset_index(drop=True))
        for column in whole.columns:
            a, b = whole[column].array, part[column].array
            if hasattr(a, "_pa_array"):  # Arrow-backed: no buffer of the window's is kept
                assert not _buffers(a) & _buffers(b), (name, column)
            else:
                assert not np.shares_memory(np.asarray(a), np.asarray(b)), (name, column)
    for key, dual in kept.duals.items():
        if "period" in dual.dims:
            assert not np.shares_memory(dual.values, solved.duals[key].values), key


def _buffers(array: Any) -> set[int]:
    """The addresses of the Arrow buffers behind a pandas Arrow-backed array."""
    chunks = array._pa_array.chunks
    return {buf.address for chunk in chunks for buf in chunk.buffers() if buf is not None}


def test_windows_are_planned_to_the_end() -> None:
    assert rolling_plan(50, 24, 24)[-1][1].stop == 50
    assert [k.periods for _, k in rolling_plan(50, 24, 24)] == [24, 24, 2]
    assert [w.periods for w, _ in rolling_plan(50, 24, 24)] == [48, 26, 2]
    with pytest.raises(OptionError):
        rolling_plan(10, 0, 0)
    s = days("seventeen-peer-case-3", 2)
    first = window_slice(s, rolling_plan(48, 24, 0)[0][0], initial_soc=None)
    assert first.periods == 24
    assert all(p.storage.final_soc == 0.0 for p in first.peers if p.storage is not None)


def test_the_command_line_rolls_and_says_so(tmp_path: Any) -> None:
    s = days("seventeen-peer-case-3", 2)
    path = tmp_path / "two-days.yaml"
    p2pmarket.io.scenario_files.dump_scenario(s, path)
    result = CliRunner().invoke(app, ["run", str(path), "--window", "24", "--lookahead", "24"])
    assert result.exit_code == 0, result.output
    assert "2 rolling windows of 24 periods, look-ahead 24 periods" in " ".join(
        result.output.split()
    )
    wrong = CliRunner().invoke(app, ["run", str(path), "--lookahead", "24"])
    assert wrong.exit_code == 2 and "--lookahead" in wrong.stderr


def test_a_long_run_keeps_its_scenario_with_the_series_in_csv(tmp_path: Any) -> None:
    """Past a week of periods a run's copy of its scenario keeps the series in CSV files
    (`scenario-series/`); read back it is the scenario that was cleared, and a short one's
    copy stays one file with the series inline."""
    long = days("seventeen-peer-case-3", 8, scale=1.0)  # 192 periods
    path = tmp_path / "eight-days.yaml"
    p2pmarket.io.scenario_files.dump_scenario(long, path)
    out = tmp_path / "run"
    args = ["run", str(path), "--window", "24", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    series = sorted(p.name for p in (out / "scenario-series").glob("*.csv"))
    assert "load_kw.csv" in series
    copy = yaml.safe_load((out / "scenario.yaml").read_text(encoding="utf-8"))
    p2 = next(peer for peer in copy["peers"] if peer["id"] == "P2")
    assert p2["load_kw"] == {"csv": "scenario-series/load_kw.csv", "column": "P2"}
    assert p2pmarket.load_scenario(out / "scenario.yaml") == long
    short = days("seventeen-peer-case-3", 1)
    p2pmarket.io.scenario_files.dump_scenario(short, path)
    out = tmp_path / "short"
    assert CliRunner().invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    assert not (out / "scenario-series").exists()
    assert p2pmarket.load_scenario(out / "scenario.yaml") == short
