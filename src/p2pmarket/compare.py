"""Markets side by side: several scenarios, designs and settlement rules on the same footing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from p2pmarket.core.clearing import clear
from p2pmarket.core.kpis import kpis
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.settlement import baseline_scenario, settle
from p2pmarket.errors import InfeasibleMarketError

__all__ = ["Comparison", "compare"]


@dataclass(frozen=True)
class Comparison:
    """`table`: one row per market (scenario x design x rule) with its objective and KPIs;
    `bills`: one row per market and peer with its baseline cost, market cost and savings;
    `results`: each scenario cleared under each design (for figures)."""

    table: pd.DataFrame
    bills: pd.DataFrame
    results: tuple[ClearingResult, ...] = ()


def compare(
    scenarios: Sequence[Scenario],
    designs: Sequence[str | None] = (None,),
    rules: Sequence[str] = ("marginal",),
    objective: str | None = None,
    on_market: Callable[[str], None] | None = None,
) -> Comparison:
    """Clear every scenario under every design, settle under every rule.

    A design of None means the scenario's own. The baseline of each scenario is cleared once.
    """
    rows, bills, results = [], [], []
    for scenario in scenarios:
        kind = objective or scenario.objective
        baseline: ClearingResult | None
        try:
            baseline = clear(baseline_scenario(scenario), design="p2p", objective="system-cost")
        except InfeasibleMarketError:
            baseline = None  # settle() says so in each market's baseline note
        for design in designs:
            if on_market is not None:
                on_market(f"{scenario.name} / {design or scenario.design}")
            result = clear(scenario, design=design, objective=kind)
            results.append(result)
            # Settlement prices come from the system-cost clearing: clear it once, not per rule.
            priced = (
                result
                if kind == "system-cost"
                else clear(scenario, design=design, objective="system-cost")
            )
            for rule in rules:
                settlement = settle(priced, rule, baseline=baseline)
                k = kpis(result, settlement)
                label = {"scenario": scenario.name, "design": result.design, "rule": rule}
                traded = k.pop("traded_kwh")
                k.pop("communities")
                rows.append(
                    {
                        **label,
                        **{f"traded_{part}_kwh": value for part, value in traded.items()},
                        **{key: value for key, value in k.items() if key != "rule"},
                    }
                )
                peer_bills = settlement.bills[["peer", "cost_baseline", "cost_market", "savings"]]
                bills.append(peer_bills.assign(**label))
    table = pd.DataFrame(rows)
    long = pd.concat(bills, ignore_index=True)
    long = long[["scenario", "design", "rule", "peer", "cost_baseline", "cost_market", "savings"]]
    return Comparison(table=table, bills=long, results=tuple(results))
