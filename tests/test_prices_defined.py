"""Defined prices where the dual is not unique, and the precision of the CSV tables
(docs/prices.md).

A grid that sells in every hour at a constant tariff has a balance dual anywhere between its
buy price and its tariff (its no-resale row is tight): the solver may return either end,
hour by hour. The reported price is the upper end of that interval, the tariff; identical
hours get identical prices. Where the dual is unique, the solver's dual is reported as it is.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import p2pmarket
from p2pmarket.io.tables import read_tables, result_tables, write_tables

TARIFF = 0.25
BUY_PRICE = 0.06
GRID_FEE = 0.01
S_OFFER, S_FEE, S_MAX_KW = 0.05, 0.005, 3.0
C_LOAD_KW = 4.0
HOURS = 3

DECIMALS = 6
"""docs/prices.md, "Precision": every float of a CSV table has at most 6 decimals."""


def grid_sells_every_hour() -> dict[str, Any]:
    """Three identical hours: C needs 4 kW; S makes 3 kW at 0.05 (fee 0.005), the grid
    sells C the last 1 kW at its tariff 0.25 (fee 0.01) and buys surplus at 0.06."""
    return {
        "name": "grid sells every hour",
        "periods": HOURS,
        "design": "p2p",
        "objective": "system-cost",
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 1000, "offer_per_kwh": TARIFF},
                "buy_price_per_kwh": BUY_PRICE,
                "export_fee": GRID_FEE,
            },
            {
                "id": "S",
                "role": "producer",
                "generation": {"max_kw": S_MAX_KW, "offer_per_kwh": S_OFFER},
                "export_fee": S_FEE,
            },
            {"id": "C", "role": "consumer", "load_kw": C_LOAD_KW},
        ],
    }


def interior_market() -> dict[str, Any]:
    """S (10 kW at 0.04, fee 0.005) serves all of C's 6 kW from the inside of its range:
    C's dual is pinned at S's offer plus S's fee, a unique price."""
    return {
        "name": "interior",
        "objective": "system-cost",
        "peers": [
            {
                "id": "grid",
                "role": "grid",
                "generation": {"max_kw": 1000, "offer_per_kwh": 0.10},
                "export_fee": 0.01,
            },
            {
                "id": "S",
                "role": "producer",
                "generation": {"max_kw": 10, "offer_per_kwh": 0.04},
                "export_fee": 0.005,
            },
            {"id": "C", "role": "consumer", "load_kw": 6.0},
        ],
    }


def clear(data: dict[str, Any], design: str = "p2p") -> p2pmarket.ClearingResult:
    return p2pmarket.clear(
        p2pmarket.Scenario.from_dict(data), design=design, objective="system-cost"
    )


def solver_prices(result: p2pmarket.ClearingResult) -> pd.DataFrame:
    """The solver's balance duals per (node, period), in currency/kWh."""
    dual = result.duals["peer-balance"].transpose("peer", "period") / result.scenario.period_hours
    return dual.to_pandas().stack().rename("dual").rename_axis(["node", "period"]).to_frame()


def test_a_grid_that_sells_is_priced_at_its_tariff_in_every_hour() -> None:
    result = clear(grid_sells_every_hour())
    d = result.dispatch.set_index(["peer", "period"])
    grid = result.prices.set_index(["node", "period"]).loc["grid"]
    exports = list(d.xs("grid", level="peer")["export_kw"])
    assert exports == pytest.approx([C_LOAD_KW - S_MAX_KW] * HOURS)
    # The rule, from the scenario: the grid's price is its tariff while it sells (one more
    # kWh there is one more it makes); the interval reaches down to its buy price (one kWh
    # less there is one more it absorbs).
    assert list(grid["price_per_kwh"]) == pytest.approx([TARIFF] * HOURS, abs=1e-9)
    assert list(grid["price_low_per_kwh"]) == pytest.approx([BUY_PRICE] * HOURS, abs=1e-9)
    assert list(grid["price_high_per_kwh"]) == pytest.approx([TARIFF] * HOURS, abs=1e-9)
    assert grid["price_per_kwh"].nunique() == 1
    assert list(grid["sell_price_per_kwh"]) == pytest.approx([TARIFF] * HOURS, abs=1e-9)
    # The solver's dual is somewhere in the interval, whatever vertex it picked.
    raw = solver_prices(result).loc["grid", "dual"]
    assert ((raw >= BUY_PRICE - 1e-9) & (raw <= TARIFF + 1e-9)).all()
    # C buys its last kWh from the grid: a unique price, the tariff plus the grid's fee,
    # the same in the prices table and in the dispatch table (which bills use).
    for t in range(HOURS):
        assert d.loc[("C", t), "price_per_kwh"] == pytest.approx(TARIFF + GRID_FEE, abs=1e-9)
        assert d.loc[("grid", t), "price_per_kwh"] == pytest.approx(TARIFF, abs=1e-9)


def test_a_unique_dual_is_reported_as_the_solver_gives_it() -> None:
    result = clear(interior_market())
    prices = result.prices.set_index(["node", "period"]).join(solver_prices(result))
    c = prices.loc[("C", 0)]
    assert c["price_low_per_kwh"] == c["price_high_per_kwh"] == c["price_per_kwh"]
    assert c["price_per_kwh"] == c["dual"]  # bit for bit: nothing moved
    assert c["price_per_kwh"] == pytest.approx(0.04 + 0.005, abs=1e-9)
    # S sells from the inside of its range: its selling price is its offer, unique.
    s = prices.loc[("S", 0)]
    assert s["sell_price_low_per_kwh"] == s["sell_price_high_per_kwh"]
    assert s["sell_price_per_kwh"] == pytest.approx(0.04, abs=1e-9)


@pytest.mark.parametrize("name", p2pmarket.cases.names())
@pytest.mark.parametrize("design", ["p2p", "community"])
def test_defined_prices_keep_unique_duals_and_trades(name: str, design: str) -> None:
    """On the built-in cases: a price whose interval is a point is the solver's dual; every
    price lies in its interval, which holds the solver's dual; every buyer of a trade with
    energy keeps the solver's dual, so bills under `marginal` do not change."""
    result = p2pmarket.clear(p2pmarket.cases.load(name), design=design, objective="system-cost")
    peers = result.prices[result.prices["kind"] == "peer"].set_index(["node", "period"])
    peers = peers.join(solver_prices(result))
    priced = peers.dropna(subset=["price_per_kwh"])
    unique = priced["price_high_per_kwh"] - priced["price_low_per_kwh"] <= 1e-9
    assert (priced.loc[unique, "price_per_kwh"] == priced.loc[unique, "dual"]).all()
    for column in ("price_per_kwh", "dual"):
        assert (priced[column] >= priced["price_low_per_kwh"] - 1e-9).all()
        assert (priced[column] <= priced["price_high_per_kwh"] + 1e-9).all()
    d = result.dispatch.set_index(["peer", "period"])
    bought = result.trades[result.trades["buyer_kind"] == "peer"]
    keys = list(zip(bought["buyer"], bought["period"], strict=True))
    reported = d.loc[[(b, t) for b, t in keys], "price_per_kwh"].to_numpy()
    assert np.array_equal(reported, peers.loc[keys, "dual"].to_numpy())


# --- precision of the CSV tables ---------------------------------------------------------------

NUMBER = re.compile(rf"-?\d+(\.\d{{1,{DECIMALS}}})?|-?inf")
NEGATIVE_ZERO = re.compile(r"-0(\.0*)?")


@pytest.mark.parametrize("data", [grid_sells_every_hour(), interior_market()])
def test_csv_tables_keep_the_documented_precision(data: dict[str, Any], tmp_path: Path) -> None:
    result = clear(data)
    tables = result_tables(result)
    write_tables(tables, tmp_path, format="csv")
    back = read_tables(tmp_path, format="csv")
    manifest = json.loads((tmp_path / "tables.json").read_text())["tables"]
    for name, table in tables.items():
        assert list(back[name].columns) == list(table.columns)
        floats = [c for c, t in manifest[name]["columns"].items() if t == "float64"]
        for column in floats:
            mine, read = table[column].to_numpy(float), back[name][column].to_numpy(float)
            assert np.array_equal(np.isnan(mine), np.isnan(read)), (name, column)
            finite = np.isfinite(mine)
            assert np.abs(mine[finite] - read[finite]).max(initial=0) <= 0.5e-6 + 1e-12
        with (tmp_path / f"{name}.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            for column in floats:
                text = row[column]
                assert text == "" or NUMBER.fullmatch(text), (name, column, text)
                assert not NEGATIVE_ZERO.fullmatch(text), (name, column, text)


def test_csv_text_rounds_float_noise_and_negative_zero() -> None:
    from p2pmarket.io.tables import csv_text

    table = pd.DataFrame({"price_per_kwh": [0.00399999999999999, -0.0, -4e-10, 1e-5, 2.0]})
    assert csv_text(table).splitlines() == [
        "price_per_kwh",
        "0.004",
        "0.0",
        "0.0",
        "0.00001",
        "2.0",
    ]


@pytest.mark.parametrize("design", ["p2p", "community", "hybrid"])
def test_an_unpriced_clearing_keeps_the_solution_and_the_unique_prices(design: str) -> None:
    """`CentralisedLP(priced=False)` (the no-trading baseline's clearing) skips moving the
    duals to their defined point: the same dispatch, trades and objective, and where the
    defined price is unique (its interval a point) the solver's dual is that price."""
    from p2pmarket.core.solve import CentralisedLP, SolverOptions

    s = p2pmarket.cases.load("seventeen-peer-case-3")
    priced = CentralisedLP().clear_window(s, design, "system-cost", SolverOptions())
    raw = CentralisedLP(priced=False).clear_window(s, design, "system-cost", SolverOptions())
    assert raw.objective == priced.objective
    pd.testing.assert_frame_equal(
        raw.dispatch.drop(columns=PRICE_COLUMNS), priced.dispatch.drop(columns=PRICE_COLUMNS)
    )
    pd.testing.assert_frame_equal(raw.trades, priced.trades)
    p, r = priced.prices, raw.prices
    unique = (p["price_high_per_kwh"] - p["price_low_per_kwh"]).abs() < 1e-9
    assert unique.sum() > len(p) // 4  # enough unique prices for the comparison to mean much
    np.testing.assert_allclose(
        r.loc[unique, "price_per_kwh"], p.loc[unique, "price_per_kwh"], atol=1e-9
    )
    assert r["price_low_per_kwh"].isna().all() and r["price_high_per_kwh"].isna().all()


PRICE_COLUMNS = ["price_per_kwh", "sell_price_per_kwh"]
