"""Imbalance settlement (docs/imbalance.md): metered readings against the cleared schedule.

Expected values are computed here from the scenario's own numbers (the grid's offer and buy
price, `net_import_kw × period_hours`), row by row, not with the module's vectorised code.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import p2pmarket
from p2pmarket.core.scenario import series
from p2pmarket.core.settlement.imbalance import (
    IMBALANCE_BILL_COLUMNS,
    IMBALANCE_LINE_COLUMNS,
    ImbalanceSettlement,
    schedule_readings,
    settle_imbalance,
)
from p2pmarket.errors import OptionError, ScenarioError
from p2pmarket.io.meter_readings import (
    MAX_READINGS_BYTES,
    parse_meter_readings,
    read_meter_readings,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "imbalance.md"
OFFER = [0.096, 0.12, 0.08]
FEED_IN = [0.03, 0.04, 0.02]


@functools.cache
def variant() -> p2pmarket.MarketRun:
    """five-peer-case-2 over three half-hour periods, with a time-varying grid tariff and a
    feed-in price (cleared once: hypothesis runs many examples on it)."""
    data = p2pmarket.cases.load("five-peer-case-2").to_dict()
    data.update(periods=3, period_hours=0.5)
    grid = data["peers"][0]
    assert grid["role"] == "grid"
    grid["generation"]["offer_per_kwh"] = OFFER
    grid["buy_price_per_kwh"] = FEED_IN
    return p2pmarket.run_market(p2pmarket.Scenario.from_dict(data))


@functools.cache
def case() -> p2pmarket.MarketRun:
    return p2pmarket.run_market(p2pmarket.cases.load("five-peer-case-2"))


def schedule(run: p2pmarket.MarketRun) -> pd.DataFrame:
    """Each member's schedule from the dispatch table, as readings (written out here)."""
    s = run.billed.scenario
    d = run.billed.dispatch
    members = d[~d["peer"].isin(s.grid_ids)]
    return pd.DataFrame(
        {
            "peer": members["peer"].to_numpy(),
            "period": members["period"].to_numpy(),
            "net_kwh": (members["import_kw"] - members["export_kw"]).to_numpy() * s.period_hours,
        }
    ).reset_index(drop=True)


def settle(run: p2pmarket.MarketRun, readings: pd.DataFrame) -> ImbalanceSettlement:
    return settle_imbalance(run.billed, run.settlement, readings)


def market_bill(run: p2pmarket.MarketRun) -> pd.Series:
    b = run.settlement.bills.set_index("peer")
    return b["paid_energy"] + b["paid_fees"] - b["received_energy"] - b["received_fees"]


# --- readings equal to the schedule ---------------------------------------------------


@pytest.mark.parametrize("which", [case, variant])
def test_schedule_gives_no_imbalance(which: Any) -> None:
    run = which()
    readings = schedule(run)
    pd.testing.assert_frame_equal(
        schedule_readings(run.billed), readings, check_dtype=False, check_exact=False
    )
    result = settle(run, readings)
    assert list(result.lines.columns) == list(IMBALANCE_LINE_COLUMNS)
    assert list(result.bills.columns) == list(IMBALANCE_BILL_COLUMNS)
    assert (result.lines["imbalance_kwh"] == 0).all()
    assert (result.lines["imbalance_cost"] == 0).all()
    bills = result.bills.set_index("peer")
    market = run.settlement.bills.set_index("peer")
    assert list(bills.index) == list(market.index)
    np.testing.assert_allclose(bills["total"], market_bill(run), atol=1e-9)
    np.testing.assert_allclose(bills["market_bill"], market_bill(run), atol=1e-9)
    np.testing.assert_allclose(bills["cost_total"], market["cost_market"], atol=1e-9)
    np.testing.assert_allclose(bills["fees"], market["paid_fees"] - market["received_fees"])
    np.testing.assert_allclose(bills["scheduled_kwh"], bills["metered_kwh"])


# --- a hand-computed example ----------------------------------------------------------


def test_one_short_one_long_by_hand() -> None:
    """P2 draws 2 kWh more than scheduled in period 1, P3 feeds in 1 kWh more."""
    run = variant()
    s = run.billed.scenario
    grid = next(p for p in s.peers if p.role == "grid")
    assert grid.generation is not None
    tariff = series(grid.generation.offer_per_kwh, s.periods)[1]
    feed_in = series(grid.buy_price_per_kwh, s.periods)[1]
    assert (tariff, feed_in) == (OFFER[1], FEED_IN[1])

    readings = schedule(run)
    at = readings["period"] == 1
    readings.loc[at & (readings["peer"] == "P2"), "net_kwh"] += 2.0
    readings.loc[at & (readings["peer"] == "P3"), "net_kwh"] -= 1.0
    result = settle(run, readings)

    p2_pays = 2.0 * tariff  # short: buys 2 kWh at the tariff
    p3_pays = -1.0 * feed_in  # long: sells 1 kWh at the feed-in price
    lines = result.lines.set_index(["period", "peer"])
    assert lines.loc[(1, "P2"), "imbalance_kwh"] == pytest.approx(2.0)
    assert lines.loc[(1, "P2"), "short_kwh"] == pytest.approx(2.0)
    assert lines.loc[(1, "P2"), "price_per_kwh"] == tariff
    assert lines.loc[(1, "P2"), "imbalance_cost"] == pytest.approx(p2_pays)
    assert lines.loc[(1, "P3"), "imbalance_kwh"] == pytest.approx(-1.0)
    assert lines.loc[(1, "P3"), "long_kwh"] == pytest.approx(1.0)
    assert lines.loc[(1, "P3"), "price_per_kwh"] == feed_in
    assert lines.loc[(1, "P3"), "imbalance_cost"] == pytest.approx(p3_pays)
    assert lines.loc[(1, "grid"), "imbalance_kwh"] == pytest.approx(-1.0)  # delivers 2, takes 1
    assert lines.loc[(1, "grid"), "imbalance_cost"] == pytest.approx(-(p2_pays + p3_pays))
    others = lines.drop([(1, "P2"), (1, "P3"), (1, "grid")])
    assert (others["imbalance_cost"] == 0).all()

    bills = result.bills.set_index("peer")
    market = market_bill(run)
    assert bills.loc["P2", "imbalance_cost"] == pytest.approx(0.24)  # 2 x 0.12
    assert bills.loc["P3", "imbalance_cost"] == pytest.approx(-0.04)  # 1 x 0.04
    assert bills.loc["grid", "imbalance_cost"] == pytest.approx(-0.20)
    assert bills.loc["P2", "total"] == pytest.approx(market["P2"] + p2_pays)
    assert bills.loc["P3", "total"] == pytest.approx(market["P3"] + p3_pays)
    assert result.paid_by_members == pytest.approx(0.20)
    assert result.received_by_grid == pytest.approx(0.20)


def test_the_builtin_case_without_feed_in() -> None:
    """five-peer-case-2 as shipped: a long kWh earns nothing (the grid has no buy price)."""
    readings = schedule(case())
    readings.loc[readings["peer"] == "P2", "net_kwh"] += 2.0
    readings.loc[readings["peer"] == "P3", "net_kwh"] -= 1.0
    bills = settle(case(), readings).bills.set_index("peer")
    assert bills.loc["P2", "imbalance_cost"] == pytest.approx(2 * 0.096)
    assert bills.loc["P3", "imbalance_cost"] == 0.0
    assert bills.loc["grid", "imbalance_cost"] == pytest.approx(-2 * 0.096)


# --- invariants -----------------------------------------------------------------------

ROWS = 12  # 4 members x 3 periods of variant()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(st.just(0.0), st.floats(-200, 200, allow_nan=False)),
        min_size=ROWS,
        max_size=ROWS,
    ),
    st.permutations(range(ROWS)),
)
def test_invariants(deviations: list[float], order: list[int]) -> None:
    run = variant()
    s = run.billed.scenario
    readings = schedule(run)
    assert len(readings) == ROWS
    readings["net_kwh"] += deviations
    result = settle(run, readings.iloc[order])  # the order of the readings does not matter
    lines = result.lines
    members = lines[lines["peer"] != result.grid]
    grid = lines[lines["peer"] == result.grid]

    # deviation = metered - scheduled, metered = the reading, line by line
    by_key = readings.set_index(["period", "peer"])["net_kwh"]
    for row in members.itertuples():
        assert row.metered_kwh == by_key[(row.period, row.peer)]
        assert row.imbalance_kwh == pytest.approx(row.metered_kwh - row.scheduled_kwh)
        price = OFFER[row.period] if row.imbalance_kwh > 0 else FEED_IN[row.period]
        assert row.imbalance_cost == pytest.approx(price * row.imbalance_kwh, abs=1e-12)
        assert row.short_kwh - row.long_kwh == pytest.approx(row.imbalance_kwh)
        assert min(row.short_kwh, row.long_kwh) == 0

    # the grid is the counterparty: energy and money balance in every period
    for t in range(s.periods):
        at = lines[lines["period"] == t]
        assert at["imbalance_kwh"].sum() == pytest.approx(0, abs=1e-9)
        assert at["imbalance_cost"].sum() == pytest.approx(0, abs=1e-9)
    assert members["imbalance_cost"].sum() == pytest.approx(-grid["imbalance_cost"].sum())
    assert result.paid_by_members == pytest.approx(result.received_by_grid, abs=1e-9)

    # total = market bill + imbalance cost; fees unchanged
    bills = result.bills.set_index("peer")
    market = run.settlement.bills.set_index("peer")
    np.testing.assert_allclose(
        bills["total"], market_bill(run) + bills["imbalance_cost"], atol=1e-9
    )
    np.testing.assert_allclose(
        bills["cost_total"], market["cost_market"] + bills["imbalance_cost"], atol=1e-9
    )
    np.testing.assert_allclose(bills["fees"], market["paid_fees"] - market["received_fees"])
    per_peer = lines.groupby("peer")["imbalance_cost"].sum()
    np.testing.assert_allclose(bills["imbalance_cost"], per_peer.reindex(bills.index), atol=1e-9)


# --- refusals: the readings table ------------------------------------------------------


def _drop_first(r: pd.DataFrame) -> pd.DataFrame:
    return r.iloc[1:]


def _set(column: str, row: int, value: object) -> Any:
    def change(r: pd.DataFrame) -> pd.DataFrame:
        r = r.astype({column: object})
        r.iloc[row, r.columns.get_loc(column)] = value
        return r

    return change


REFUSED_TABLES = [
    (_drop_first, "readings", r"no reading for peer 'P2' in period 0 \(1 of 12 readings"),
    (_set("peer", 2, "P22"), "readings.peer", r"row 3: 'P22' is not a peer.*did you mean 'P2'"),
    (_set("peer", 2, "grid"), "readings.peer", r"row 3: 'grid' is the grid"),
    (_set("peer", 0, 7), "readings.peer", r"row 1: expected a peer id \(text\), got 7"),
    (_set("period", 1, 3), "readings.period", r"row 2: 3 is not a period of the scenario"),
    (_set("period", 1, -1), "readings.period", r"row 2: -1 is not a period"),
    (_set("period", 1, 0.5), "readings.period", r"row 2: 0.5 is not a period"),
    (_set("period", 1, "0"), "readings.period", r"row 2: expected a whole number, got '0'"),
    (_set("net_kwh", 4, float("nan")), "readings.net_kwh", r"row 5: .*finite number, got nan"),
    (_set("net_kwh", 4, float("inf")), "readings.net_kwh", r"row 5: .*finite number, got inf"),
    (_set("net_kwh", 4, 1e12), "readings.net_kwh", r"row 5: 1e\+12 kWh is out of range"),
    (_set("net_kwh", 4, "1.0"), "readings.net_kwh", r"row 5: expected a number of kWh"),
    (_set("net_kwh", 4, True), "readings.net_kwh", r"row 5: expected a number of kWh"),
    (lambda r: pd.concat([r, r.iloc[[3]]]), "readings", r"row 13: a second reading for peer"),
    (lambda r: r.rename(columns={"net_kwh": "kwh"}), "readings", r"no column 'net_kwh'"),
    (lambda r: r.assign(meter="m1"), "readings", r"unknown column 'meter'"),
    (lambda r: r.to_dict("records"), "readings", r"expected a table"),
]


@pytest.mark.parametrize(("change", "field", "pattern"), REFUSED_TABLES)
def test_refused_readings(change: Any, field: str, pattern: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        settle(variant(), change(schedule(variant())))
    assert caught.value.field == field
    assert "\n" not in str(caught.value)
    assert re.search(pattern, str(caught.value)), str(caught.value)


def test_another_schedule_is_refused() -> None:
    run = variant()
    lines = run.settlement.lines.assign(bought_kwh=run.settlement.lines["bought_kwh"] + 1)
    other = dataclasses.replace(run.settlement, lines=lines)
    with pytest.raises(OptionError, match="another schedule"):
        settle_imbalance(run.billed, other, schedule(run))


def test_two_grids_are_refused() -> None:
    grid = {"role": "grid", "generation": {"max_kw": 100, "offer_per_kwh": 0.1}}
    scenario = p2pmarket.Scenario.from_dict(
        {
            "peers": [
                {"id": "g1", **grid},
                {"id": "g2", **grid},
                {"id": "home", "role": "consumer", "load_kw": 3},
            ]
        }
    )
    run = p2pmarket.run_market(scenario)
    readings = pd.DataFrame({"peer": ["home"], "period": [0], "net_kwh": [3.0]})
    with pytest.raises(ScenarioError, match=r"one grid.*2 grid peers") as caught:
        settle_imbalance(run.billed, run.settlement, readings)
    assert caught.value.field == "peers"


# --- files -----------------------------------------------------------------------------


def test_csv_and_json_read_the_same_table(tmp_path: Path) -> None:
    readings = schedule(variant())
    csv_file = tmp_path / "meter.csv"
    readings.to_csv(csv_file, index=False)
    records = readings.to_dict("records")
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps(records), encoding="utf-8")
    as_object = tmp_path / "object.json"
    as_object.write_text(json.dumps({"readings": records}), encoding="utf-8")
    for file in (csv_file, as_list, as_object):
        table = read_meter_readings(file)
        assert table.dtypes.astype(str).to_dict() == {
            "peer": "object",
            "period": "int64",
            "net_kwh": "float64",
        }
        pd.testing.assert_frame_equal(table, readings, check_dtype=False)
    result = settle(variant(), read_meter_readings(csv_file))
    assert (result.lines["imbalance_cost"] == 0).all()


def test_csv_columns_in_any_order_and_quoted_ids() -> None:
    table = parse_meter_readings('net_kwh,peer,period\n-1.5,"a, b",2\r\n3,P2,0\n\n')
    assert table.to_dict("list") == {
        "peer": ["a, b", "P2"],
        "period": [2, 0],
        "net_kwh": [-1.5, 3.0],
    }


HEADER = "peer,period,net_kwh\n"
REFUSED_CSV = [
    ("", "readings", "has no header"),
    ("peer,period\nP2,0\n", "readings", "lacks 'net_kwh'"),
    ("peer,period,kwh\n", "readings", "unknown column 'kwh'.*did you mean 'net_kwh'"),
    ("peer,period,net_kwh,x\n", "readings", "unknown column 'x'"),
    ("peer,peer,net_kwh\n", "readings", "lacks 'period'"),
    ("a," * 5000 + "\n", "readings", "5,001 columns or more, expected 3"),
    (HEADER + "P2,0,1,5\n", "readings", r"row 1 \(line 2\) has 4 cells, expected 3"),
    (HEADER + "P2,0\n", "readings", r"row 1 \(line 2\) has 2 cells"),
    (HEADER + "P2,0,1\n\nP3,0,1\n", "readings", r"row 2 \(line 3\) is blank"),
    (HEADER + ",0,1\n", "readings.peer", r"row 1 \(line 2\): the peer is empty"),
    (HEADER + "P" * 300 + ",0,1\n", "readings.peer", "300 characters long"),
    (HEADER + "P2,x,1\n", "readings.period", r"row 1 \(line 2\): 'x' is not a number"),
    (HEADER + "P2,0.5,1\n", "readings.period", "'0.5' is not a period"),
    (HEADER + "P2,-1,1\n", "readings.period", "'-1' is not a period"),
    (HEADER + "P2,0,\n", "readings.net_kwh", "net_kwh is empty"),
    (HEADER + "P2,0,abc\n", "readings.net_kwh", "'abc' is not a number"),
    (HEADER + "P2,0,nan\n", "readings.net_kwh", "'nan' is not a finite number"),
    (HEADER + "P2,0,-inf\n", "readings.net_kwh", "'-inf' is not a finite number"),
    (HEADER + "P2,1,1\nP3,2,\x1b[31m" + "9" * 500 + "\n", "readings.net_kwh", r"row 2 \(line 3\)"),
    (HEADER + '"P2,0,1\n', "readings", "line 2: unexpected end of data"),
]


@pytest.mark.parametrize(("text", "field", "pattern"), REFUSED_CSV)
def test_refused_csv(text: str, field: str, pattern: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_meter_readings(text, name="meter.csv")
    message = str(caught.value)
    assert caught.value.field == field
    assert "\n" not in message and "\x1b" not in message and len(message) < 300, message
    assert re.search(pattern, message), message


def _row(**values: object) -> str:
    item = {"peer": "P2", "period": 0, "net_kwh": 1.0, **values}
    return json.dumps([{k: v for k, v in item.items() if v is not ...}])


REFUSED_JSON = [
    ("", "readings", "not valid JSON"),
    ("[{]", "readings", "not valid JSON"),
    ("3", "readings", "a JSON number; expected a list of readings"),
    ('{"rows": []}', "readings", "unknown key 'rows'"),
    ("{}", "readings", "no key 'readings'"),
    ('{"readings": {}}', "readings", "a JSON object; expected a list"),
    ("[1]", "readings", "row 1: a JSON number, expected an object"),
    (_row(net_kwh=...), "readings", "row 1 lacks 'net_kwh'"),
    (_row(meter="m1"), "readings", "row 1: unknown column 'meter'"),
    (_row(peer=3), "readings.peer", "row 1: the peer is a JSON number, not text"),
    (_row(peer=""), "readings.peer", "row 1: the peer is empty"),
    (_row(period=True), "readings.period", "row 1: True is not a period"),
    (_row(period=0.5), "readings.period", "row 1: 0.5 is not a period"),
    (_row(period=-1), "readings.period", "row 1: -1 is not a period"),
    (_row(period=10**400), "readings.period", "about 401 digits is not a period"),
    (_row(net_kwh="1"), "readings.net_kwh", "row 1: '1' is not a finite number"),
    (_row(net_kwh=None), "readings.net_kwh", "row 1: None is not a finite number"),
    ('[{"peer": "P2", "period": 0, "net_kwh": NaN}]', "readings", "NaN is not a finite"),
    ('[{"peer": "P2", "period": 0, "net_kwh": 1e999}]', "readings.net_kwh", "inf is not"),
    ('[{"peer": "P2", "peer": "P3", "period": 0, "net_kwh": 1}]', "readings", "given twice"),
    ("[" * 100_000 + "]" * 100_000, "readings", "nesting too deep"),
]


@pytest.mark.parametrize(("text", "field", "pattern"), REFUSED_JSON)
def test_refused_json(text: str, field: str, pattern: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_meter_readings(text, format="json")
    message = str(caught.value)
    assert caught.value.field == field
    assert "\n" not in message and len(message) < 300, message
    assert re.search(pattern, message), message


def test_files_that_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no meter-readings file"):
        read_meter_readings(tmp_path / "missing.csv")
    with pytest.raises(ScenarioError, match="not a regular file"):
        read_meter_readings(tmp_path)
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:  # sparse: no 50 MB are written
        handle.truncate(MAX_READINGS_BYTES + 1)
    with pytest.raises(ScenarioError, match="larger than the limit"):
        read_meter_readings(huge)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + "Pé,0,1\n".encode("latin-1"))
    with pytest.raises(ScenarioError, match="not UTF-8"):
        read_meter_readings(latin)
    with pytest.raises(ScenarioError, match="format 'xml'"):
        parse_meter_readings("", format="xml")  # type: ignore[arg-type]


# --- the documentation runs ------------------------------------------------------------


@pytest.mark.parametrize(
    "code", re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
)
def test_doc_examples_run(code: str) -> None:
    exec(compile(code, str(DOC), "exec"), {})
