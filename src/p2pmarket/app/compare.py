"""Markets side by side: several scenarios, designs and settlement rules on the same footing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from p2pmarket.app.run import Clearings
from p2pmarket.core.kpis import kpis
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve import SolverOptions
from p2pmarket.types import Design, Objective, Rule, parse

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
    designs: Sequence[Design | str | None] = (None,),
    rules: Sequence[Rule | str] = (Rule.MARGINAL,),
    objective: Objective | str | None = None,
    on_market: Callable[[str], None] | None = None,
    options: SolverOptions | None = None,
) -> Comparison:
    """Clear every scenario under every design, settle under every rule.

    A design of None means the scenario's own. Each market, its system-cost twin and each
    scenario's baseline are cleared once (`p2pmarket.app.Clearings`), whatever the rules.
    """
    clearings = Clearings(options or SolverOptions())
    checked = [parse(Rule, r, "rule") for r in rules]
    rows, bills, results = [], [], []
    for scenario in scenarios:
        kind = parse(Objective, objective or scenario.objective, "objective")
        for design in designs:
            chosen = parse(Design, design or scenario.design, "design")
            if on_market is not None:
                on_market(f"{scenario.name} / {chosen}")
            result = clearings.get(scenario, chosen, kind)
            results.append(result)
            for rule in checked:
                settlement = clearings.settle(result, rule)
                k = kpis(result, settlement).to_dict()
                label = {"scenario": scenario.name, "design": str(result.design), "rule": str(rule)}
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
