"""Settlement: what each peer pays and earns, and what it saves against a no-trading baseline.

Every rule settles the bilateral trades (`p2pmarket.core.flows`): the buyer pays an energy
price to the seller plus the fees on the way, which go to the fee collector (a peer named by
the scenario's `fee_collector`, else the network operator, an outside party). So under every
rule, by construction:

    payments by buyers = receipts by sellers + fees collected          (budget balance)

Rules (energy price the seller receives, per kWh):

* `marginal`: the buyer pays its own balance price (dual) on what it buys; the seller receives
  that minus the fees on the way, which under the `system-cost` objective is exactly the
  seller's own selling price (complementary slackness). Promise: with a design that keeps
  direct links to the grid (`p2p`, `hybrid`), no peer but the grid is worse off on its energy
  account than in the baseline (individual rationality): `energy_savings` >= 0. The energy
  account leaves out the fees a peer collects as the scenario's `fee_collector`: fee income
  is the collector's pay for running the market, not a price of energy, and trading inside a
  community may well lower it (fewer trades pay a fee). For every other peer
  `energy_savings` = `savings`.
* `pay-as-offer`: the seller's offer price. Promise: a seller recovers its offer on every
  kWh it sells. Not individually rational: a seller whose offer is below what the grid pays
  for surplus earns less than in the baseline.
* `mid-market`: trades among peers at the midpoint of the grid's selling and buying prices;
  trades with the grid at the grid's own prices. Promise: one price for every trade inside the
  market. Not individually rational: a seller dispatched with an offer above the midpoint
  sells below its cost.

A peer's cost = its generation cost + what it pays - what it receives - the value of the
flexible demand it is served - (the grid) the value of what it absorbs at its buy price.
The baseline is the same scenario with only the links between each peer and the grid
(`baseline_scenario`), settled at the grid's tariff whatever the rule: energy bought from a
grid at that grid's offer plus the fee, energy sold to it for its buy price in all (nothing
without one), the fee on the way coming out of the seller's share. Each grid is priced at its
own tariff. Mid-market settles trades with the grid the same way.

Settlement runs no solver: `settle(market, baseline, rule)` prices a market cleared under
`system-cost` against a baseline cleared the same way. Which clearings a settlement needs,
and caching them, is the application layer's job (`p2pmarket.app.Clearings`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from p2pmarket.core.flows import bilateral_trades
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Peer, Scenario, Series, series, stacked
from p2pmarket.core.settlement.rules import TARIFF, energy_price
from p2pmarket.errors import OptionError
from p2pmarket.types import Objective, Route, Rule, parse

__all__ = ["BILL_COLUMNS", "OPERATOR", "RULES", "Settlement", "settle"]

RULES: tuple[str, ...] = tuple(Rule)
OPERATOR = "operator"
"""Who collects the fees when the scenario names no `fee_collector`."""

BILL_COLUMNS = (
    "peer",
    "cost_baseline",
    "cost_market",
    "savings",
    "energy_savings",
    "bought_kwh",
    "sold_kwh",
    "paid_energy",
    "paid_fees",
    "received_energy",
    "received_fees",
    "generation_cost",
    "flexible_value",
    "absorbed_value",
)
"""`savings` = `cost_baseline` - `cost_market`; `energy_savings` leaves out the change in fee
income (differs from `savings` only for the `fee_collector`)."""
_PARTS = BILL_COLUMNS[5:]


@dataclass(frozen=True)
class Settlement:
    """The money of one cleared market under one rule.

    - `trades`: bilateral trades with `price_per_kwh` (energy price to the seller),
      `buyer_pays` and `seller_receives` (currency).
    - `lines`: one row per peer and period with the parts of its bill and `cost`.
    - `bills`: one row per peer over the horizon (`BILL_COLUMNS`).
    """

    rule: Rule
    cleared_with: Objective
    currency: str
    fee_collector: str
    trades: pd.DataFrame
    lines: pd.DataFrame
    bills: pd.DataFrame
    fees_collected: float
    baseline_note: str

    def priced_trades(self) -> pd.DataFrame:
        """The settled bilateral trades in the layout of `ClearingResult.trades`, with the
        energy price: `period, seller, buyer, route, energy_kwh, price_per_kwh, fee_per_kwh,
        fee` (route `p2p` for a direct trade, `via-manager` otherwise)."""
        t = self.trades
        energy = t["energy_kwh"].to_numpy()
        return pd.DataFrame(
            {
                "period": t["period"].to_numpy(),
                "seller": t["seller"].to_numpy(),
                "buyer": t["buyer"].to_numpy(),
                "route": np.where(
                    t["via_manager"].to_numpy(), str(Route.VIA_MANAGER), str(Route.P2P)
                ),
                "energy_kwh": energy,
                "price_per_kwh": t["price_per_kwh"].to_numpy(),
                "fee_per_kwh": t["fee"].to_numpy() / np.where(energy > 0, energy, 1.0),
                "fee": t["fee"].to_numpy(),
            }
        )

    @property
    def payments(self) -> float:
        return float(self.trades["buyer_pays"].sum())

    @property
    def receipts(self) -> float:
        return float(self.trades["seller_receives"].sum())


def settle(
    market: ClearingResult,
    baseline: ClearingResult | None = None,
    rule: Rule | str = Rule.MARGINAL,
    *,
    baseline_note: str = "",
) -> Settlement:
    """Settle a market cleared under `system-cost` under `rule`, and compare each peer with
    `baseline` (the clearing of `baseline_scenario(market.scenario)`). Runs no solver.

    Prices are duals of the `system-cost` objective (under `paper` a traded kWh's offer is
    counted twice, so its duals are no market prices): a market cleared otherwise is refused;
    `p2pmarket.app.settle_result(result, rule)` clears what is needed. Without a baseline
    (it may be infeasible: a peer the grid alone cannot serve), baseline costs are NaN and
    `baseline_note` says why.
    """
    if isinstance(baseline, str):
        raise TypeError(
            "settle(market, baseline, rule) takes the baseline clearing second and runs no "
            "solver; p2pmarket.app.settle_result(result, rule) clears what settlement needs"
        )
    rule = parse(Rule, rule, "rule")
    for name, cleared in (("market", market), ("baseline", baseline)):
        if cleared is not None and cleared.objective_kind != Objective.SYSTEM_COST:
            raise OptionError(
                name,
                f"cleared under {cleared.objective_kind!r}: settlement prices a system-cost "
                "clearing (p2pmarket.app.settle_result clears it)",
            )
    trades, lines = _settle_market(market, rule)
    market_cost = lines.groupby("peer", sort=False)[[*_PARTS, "cost"]].sum()
    if baseline is not None:
        _, baseline_lines = _settle_market(baseline, TARIFF)
        by_peer = baseline_lines.groupby("peer", sort=False)
        baseline_cost = by_peer["cost"].sum()
        baseline_fees = by_peer["received_fees"].sum()
    else:
        baseline_cost = pd.Series(np.nan, index=market_cost.index)
        baseline_fees = pd.Series(np.nan, index=market_cost.index)
    bills = market_cost.rename(columns={"cost": "cost_market"})
    bills["cost_baseline"] = baseline_cost.reindex(bills.index)
    bills["savings"] = bills["cost_baseline"] - bills["cost_market"]
    fee_income_change = bills["received_fees"] - baseline_fees.reindex(bills.index)
    bills["energy_savings"] = bills["savings"] - fee_income_change
    # Sums of many products leave rounding dust (-4e-16): report it as the zero it is.
    bills = bills.mask(bills.abs() < 1e-9, 0.0).reset_index().loc[:, list(BILL_COLUMNS)]
    collector = market.scenario.fee_collector or OPERATOR
    return Settlement(
        rule=rule,
        cleared_with=market.objective_kind,
        currency=market.scenario.currency,
        fee_collector=collector,
        trades=trades,
        lines=lines,
        bills=bills,
        fees_collected=float(trades["fee"].sum()),
        baseline_note=baseline_note,
    )


def _settle_market(result: ClearingResult, rule: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    s = result.scenario
    dt = s.period_hours
    trades = bilateral_trades(result)
    price = energy_price(result, trades, rule)
    energy = trades["energy_kwh"].to_numpy()
    trades = trades.assign(
        price_per_kwh=price,
        seller_receives=price * energy,
        buyer_pays=price * energy + trades["fee"].to_numpy(),
    )

    d = result.dispatch
    lines = d[["period", "peer"]].copy()
    by = _summed_by_line(lines, trades)

    lines["bought_kwh"] = by("energy_kwh", "buyer")
    lines["sold_kwh"] = by("energy_kwh", "seller")
    lines["paid_energy"] = by("seller_receives", "buyer")
    lines["paid_fees"] = by("fee", "buyer")
    lines["received_energy"] = by("seller_receives", "seller")
    fees = trades.groupby("period")["fee"].sum().reindex(lines["period"], fill_value=0.0)
    is_collector = (lines["peer"] == s.fee_collector).to_numpy()
    lines["received_fees"] = np.where(is_collector, fees.to_numpy(), 0.0)
    offer = _per_peer_period(s, lambda p: p.generation.offer_per_kwh if p.generation else None)
    lines["generation_cost"] = offer * d["generation_kw"].to_numpy() * dt
    lines["flexible_value"] = _flexible_value(s, d) * dt
    buy = _per_peer_period(s, lambda p: p.buy_price_per_kwh)
    lines["absorbed_value"] = buy * d["absorbed_kw"].to_numpy() * dt
    lines["cost"] = (
        lines["generation_cost"]
        + lines["paid_energy"]
        + lines["paid_fees"]
        - lines["received_energy"]
        - lines["received_fees"]
        - lines["flexible_value"]
        - lines["absorbed_value"]
    )
    return trades, lines


def _summed_by_line(
    lines: pd.DataFrame, trades: pd.DataFrame
) -> Callable[[str, str], npt.NDArray[np.float64]]:
    """`by(column, who)`: the sum of the trades' `column` on each line (period, peer) of the
    dispatch, the peer being the trade's `who` (seller or buyer), 0 where it has none. Lines
    in the dispatch's usual order (period by period, the same peers in each) are summed by
    position; any other order through a grouping by (period, peer)."""
    period = lines["period"].to_numpy()
    at, peers = pd.factorize(lines["peer"])
    n = len(peers)
    periods = len(lines) // n if n else 0
    if (
        n
        and np.array_equal(period, np.repeat(np.arange(periods), n))
        and np.array_equal(at, np.tile(np.arange(n), periods))
    ):
        trade_period = trades["period"].to_numpy()
        found: dict[str, tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]] = {}

        def by_position(column: str, who: str) -> npt.NDArray[np.float64]:
            if who not in found:
                peer = peers.get_indexer(pd.Index(trades[who]))
                known = (peer >= 0) & (trade_period >= 0) & (trade_period < periods)
                found[who] = known, trade_period[known] * n + peer[known]
            known, line = found[who]
            values = trades[column].to_numpy(dtype=float)[known]
            summed: npt.NDArray[np.float64] = np.bincount(
                line, weights=values, minlength=len(lines)
            ).astype(float)
            return summed

        return by_position
    key = pd.MultiIndex.from_frame(lines)

    def by_group(column: str, who: str) -> npt.NDArray[np.float64]:
        grouped = trades.groupby(["period", who])[column].sum()
        grouped.index = grouped.index.set_names(["period", "peer"])
        return grouped.reindex(key, fill_value=0.0).to_numpy()

    return by_group


def _per_peer_period(s: Scenario, pick: Callable[[Peer], Series | None]) -> np.ndarray:
    """A per-peer series, laid out like the dispatch rows (period-major)."""
    values = stacked([pick(p) for p in s.peers], s.periods)
    return np.asarray(values.T.ravel(), dtype=float)


def _flexible_value(s: Scenario, dispatch: pd.DataFrame) -> np.ndarray:
    """Value of served flexible demand per dispatch row ($ per hour of the period).

    At one peer and period every block sees the same price, so an optimum serves the blocks
    in order of their price; the value is that of filling them greedily.
    """
    served = dispatch["flexible_load_kw"].to_numpy().reshape(s.periods, len(s.peers)).copy()
    value = np.zeros_like(served)
    for n, peer in enumerate(s.peers):
        if not peer.flexible_load:
            continue
        size = np.stack([series(b.max_kw, s.periods) for b in peer.flexible_load])
        price = np.stack([series(b.price_per_kwh, s.periods) for b in peer.flexible_load])
        order = np.argsort(-price, axis=0, kind="stable")
        size = np.take_along_axis(size, order, axis=0)
        price = np.take_along_axis(price, order, axis=0)
        before = np.cumsum(size, axis=0) - size
        taken = np.clip(served[:, n][None, :] - before, 0.0, size)
        value[:, n] = (taken * price).sum(axis=0)
    return value.ravel()
