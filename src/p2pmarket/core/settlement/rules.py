"""Settlement rules as a registry: each rule is a function giving the energy price per kWh the
seller receives on every bilateral trade. A new rule is one function and one entry in
`ENERGY_PRICE` (and a member of `p2pmarket.types.Rule`).

Grid tariffs: every peer of role `grid` is priced at its own tariff — a sale from a grid at
that grid's offer, a sale to a grid for that grid's buy price in all (the fee on the way comes
out of the seller's share).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import FloatArray, Scenario, series
from p2pmarket.errors import OptionError
from p2pmarket.types import Rule

__all__ = ["ENERGY_PRICE", "TARIFF", "EnergyPrice", "energy_price"]

TARIFF = "tariff"
"""How the baseline is settled: trades with the grid at the grid's own prices."""

EnergyPrice = Callable[[ClearingResult, pd.DataFrame], FloatArray]
"""(result, bilateral trades) -> energy price per kWh to the seller, one per trade."""


def _fee_per_kwh(trades: pd.DataFrame) -> FloatArray:
    energy = trades["energy_kwh"].to_numpy(float)
    fee: FloatArray = trades["fee"].to_numpy(float) / np.where(energy > 0, energy, 1.0)
    return fee


def _offers(s: Scenario) -> FloatArray:
    """(peers, periods) offer prices, 0 where a peer cannot generate."""
    return np.stack(
        [series(p.generation.offer_per_kwh if p.generation else None, s.periods) for p in s.peers]
    )


def _seller_offer(result: ClearingResult, trades: pd.DataFrame) -> FloatArray:
    s = result.scenario
    seller = pd.Index(s.peer_ids).get_indexer(pd.Index(trades["seller"]))
    offer: FloatArray = _offers(s)[seller, trades["period"].to_numpy()]
    return offer


def marginal(result: ClearingResult, trades: pd.DataFrame) -> FloatArray:
    """The buyer's own balance price (dual) less the fees on the way: under `system-cost`
    exactly the seller's selling price (complementary slackness)."""
    prices = result.dispatch.set_index(["period", "peer"])["price_per_kwh"]
    key = pd.MultiIndex.from_arrays([trades["period"], trades["buyer"]])
    price: FloatArray = prices.reindex(key).to_numpy(float) - _fee_per_kwh(trades)
    return price


def pay_as_offer(result: ClearingResult, trades: pd.DataFrame) -> FloatArray:
    """The seller's offer price."""
    return _seller_offer(result, trades)


def _grid_tariffs(s: Scenario) -> tuple[FloatArray, FloatArray]:
    """(peers, periods) price at which each grid sells, and at which it buys (NaN for
    peers that are not grids, and for a grid without a buy price: 0)."""
    sells = np.full((len(s.peers), s.periods), np.nan)
    buys = np.full((len(s.peers), s.periods), np.nan)
    for i, p in enumerate(s.peers):
        if p.role == "grid":
            sells[i] = series(p.generation.offer_per_kwh if p.generation else None, s.periods)
            buys[i] = series(p.buy_price_per_kwh, s.periods)
    return sells, buys


def _with_grids(
    result: ClearingResult, trades: pd.DataFrame, among_peers: FloatArray
) -> FloatArray:
    """Trades with a grid at that grid's tariff; the others at `among_peers`."""
    s = result.scenario
    index = pd.Index(s.peer_ids)
    period = trades["period"].to_numpy()
    seller = index.get_indexer(pd.Index(trades["seller"]))
    buyer = index.get_indexer(pd.Index(trades["buyer"]))
    sells, buys = _grid_tariffs(s)
    from_grid = ~np.isnan(sells[seller, period])
    to_grid = ~np.isnan(buys[buyer, period])
    sold_to_grid = buys[buyer, period] - _fee_per_kwh(trades)
    price: FloatArray = np.where(
        from_grid, sells[seller, period], np.where(to_grid, sold_to_grid, among_peers)
    )
    return price


def tariff(result: ClearingResult, trades: pd.DataFrame) -> FloatArray:
    """The baseline's rule: trades with a grid at its tariff; any other trade (there is none
    in the baseline) at the seller's offer."""
    return _with_grids(result, trades, _seller_offer(result, trades))


def mid_market(result: ClearingResult, trades: pd.DataFrame) -> FloatArray:
    """Trades among peers at the midpoint of the grid's selling and buying prices; trades with
    the grid at its tariff. Defined against one grid: refused with more than one."""
    s = result.scenario
    grids = [p for p in s.peers if p.role == "grid"]
    if len(grids) != 1:
        what = "no grid peer" if not grids else f"{len(grids)} grid peers"
        raise OptionError(
            "rule",
            f"the mid-market rate is the midpoint of one grid's prices; the scenario has {what}",
        )
    grid = grids[0]
    sells = series(grid.generation.offer_per_kwh if grid.generation else None, s.periods)
    buys = series(grid.buy_price_per_kwh, s.periods)
    midpoint: FloatArray = ((sells + buys) / 2)[trades["period"].to_numpy()]
    return _with_grids(result, trades, midpoint)


ENERGY_PRICE: dict[str, EnergyPrice] = {
    Rule.MARGINAL: marginal,
    Rule.PAY_AS_OFFER: pay_as_offer,
    Rule.MID_MARKET: mid_market,
    TARIFF: tariff,
}


def energy_price(
    result: ClearingResult, trades: pd.DataFrame, rule: str
) -> npt.NDArray[np.float64]:
    """Energy price per kWh the seller receives on each bilateral trade under `rule`."""
    return ENERGY_PRICE[rule](result, trades)
