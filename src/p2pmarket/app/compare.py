"""Markets side by side: several scenarios, designs and settlement rules on the same footing.

Every market of a comparison has a unique label, and every table is keyed by it: a scenario
is named by its `name`, and where two scenarios share a name each is named `name (LABEL)`
with the label its caller gave (the command line gives the file argument, e.g.
`five-peer (b.yaml)`) or, without labels, `name (N)` with its position from 1. A market that
cannot be cleared stops the comparison with an error that names it (`market 'x (b.yaml)'
under p2p: ...`): a comparison with a market missing would read as complete.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

from p2pmarket.app.clearing import clearing_method
from p2pmarket.app.run import Clearings
from p2pmarket.core.kpis import kpis
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve import SolverOptions
from p2pmarket.errors import InfeasibleMarketError, OptionError, SolverError, TimeLimitError
from p2pmarket.types import Design, Objective, Rule, parse

__all__ = ["MARKET_KEY", "Comparison", "compare", "scenario_labels"]

MARKET_KEY = ("scenario", "design", "method", "rule")
"""The columns that name a market in `Comparison.table` and `Comparison.bills`; together
they are unique (`scenario` is the scenario's unique label, `method` the clearing method's
name, `p2pmarket.app.clearing.METHODS`)."""


@dataclass(frozen=True)
class Comparison:
    """`table`: one row per market (scenario x design x rule) with its objective and KPIs;
    `bills`: one row per market and peer with its baseline cost, market cost and savings;
    `results`: each scenario cleared under each design (for figures), and `labels` the
    `scenario / design` label of each. `scenario` in both tables is the scenario's unique
    label (module docstring); `MARKET_KEY` names a market."""

    table: pd.DataFrame
    bills: pd.DataFrame
    results: tuple[ClearingResult, ...] = ()
    labels: tuple[str, ...] = ()


def scenario_labels(
    scenarios: Sequence[Scenario], labels: Sequence[str] | None = None
) -> list[str]:
    """A unique label per scenario: its name, or `name (LABEL)` where names clash (`LABEL`
    from `labels`, else the position from 1); a label still taken gets `#N` appended."""
    if labels is not None and len(labels) != len(scenarios):
        raise OptionError(
            "labels", f"one label per scenario: {len(labels)} labels for {len(scenarios)}"
        )
    names = [s.name for s in scenarios]
    clash = Counter(names)
    out = [
        name if clash[name] == 1 else f"{name} ({labels[i] if labels else i + 1})"
        for i, name in enumerate(names)
    ]
    seen: Counter[str] = Counter()
    unique = []
    for label in out:
        seen[label] += 1
        unique.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return unique


def compare(
    scenarios: Sequence[Scenario],
    designs: Sequence[Design | str | None] = (None,),
    rules: Sequence[Rule | str] = (Rule.MARGINAL,),
    objective: Objective | str | None = None,
    on_market: Callable[[str], None] | None = None,
    options: SolverOptions | None = None,
    labels: Sequence[str] | None = None,
    methods: Sequence[str] = ("central",),
) -> Comparison:
    """Clear every scenario under every design, settle under every rule.

    A design of None means the scenario's own; a design or rule given twice is cleared once.
    `labels` (e.g. the file each scenario was read from) tell apart scenarios of the same
    name (`scenario_labels`). Each market, its system-cost twin and each scenario's baseline
    are cleared once (`p2pmarket.app.Clearings`), whatever the rules. `methods`: the
    clearing methods to clear every market with (`METHODS`: `central`, `admm`), each with
    its own clearings (the baseline is central for all). Raises
    `InfeasibleMarketError` or `SolverError` naming the market that cannot be cleared.
    """
    for m in methods:
        clearing_method(m)  # an unknown name is refused before anything is cleared
    by_method = {m: Clearings(options or SolverOptions(), method=m) for m in dict.fromkeys(methods)}
    checked = list(dict.fromkeys(parse(Rule, r, "rule") for r in rules))
    rows, bills, results, result_labels = [], [], [], []
    for scenario, name in zip(scenarios, scenario_labels(scenarios, labels), strict=True):
        kind = parse(Objective, objective or scenario.objective, "objective")
        chosen_designs = dict.fromkeys(
            parse(Design, d or scenario.design, "design") for d in designs
        )
        for chosen, (method, clearings) in itertools.product(chosen_designs, by_method.items()):
            market = f"{name} / {chosen}" + ("" if len(by_method) == 1 else f" / {method}")
            if on_market is not None:
                on_market(market)
            with _naming(name, chosen):
                result = clearings.get(scenario, chosen, kind)
            results.append(result)
            result_labels.append(market)
            for rule in checked:
                with _naming(name, chosen):
                    settlement = clearings.settle(result, rule)
                k = kpis(result, settlement).to_dict()
                key = {
                    "scenario": name,
                    "design": str(result.design),
                    "method": method,
                    "rule": str(rule),
                }
                traded = k.pop("traded_kwh")
                k.pop("communities")
                rows.append(
                    {
                        **key,
                        **{f"traded_{part}_kwh": value for part, value in traded.items()},
                        **{field: value for field, value in k.items() if field != "rule"},
                    }
                )
                peer_bills = settlement.bills[["peer", "cost_baseline", "cost_market", "savings"]]
                bills.append(peer_bills.assign(**key))
    table = pd.DataFrame(rows)
    long = pd.concat(bills, ignore_index=True)
    long = long[[*MARKET_KEY, "peer", "cost_baseline", "cost_market", "savings"]]
    return Comparison(table=table, bills=long, results=tuple(results), labels=tuple(result_labels))


@contextmanager
def _naming(name: str, design: Design) -> Iterator[None]:
    """A market error raised inside is raised again naming the market (`market 'x' under
    p2p: ...`), with its fields kept."""
    where = f"market {name!r} under {design}"
    try:
        yield
    except InfeasibleMarketError as exc:
        raise InfeasibleMarketError(
            f"{where}: {exc}", peer=exc.peer, period=exc.period, reason=exc.reason
        ) from exc
    except TimeLimitError:
        raise
    except SolverError as exc:
        raise SolverError(f"{where}: {exc}", status=exc.status) from exc
