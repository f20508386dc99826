"""Settlement: what each peer pays and earns, and what it saves against a no-trading baseline
(SPEC C4). Pure: `settle(market, baseline, rule)` runs no solver.

- `rules`: the registry of settlement rules (energy price per kWh to the seller).
- `settle`: bills, lines and priced bilateral trades of one market under one rule.
- `baseline`: the no-trading baseline scenario.
- `imbalance`: metered readings against the schedule, the deviation settled at the grid's
  tariff (short) or feed-in price (long).
"""

from p2pmarket.core.settlement.baseline import baseline_scenario
from p2pmarket.core.settlement.imbalance import (
    IMBALANCE_BILL_COLUMNS,
    IMBALANCE_LINE_COLUMNS,
    READING_COLUMNS,
    ImbalanceSettlement,
    check_readings,
    schedule_readings,
    settle_imbalance,
)
from p2pmarket.core.settlement.rules import ENERGY_PRICE, TARIFF
from p2pmarket.core.settlement.settle import BILL_COLUMNS, OPERATOR, RULES, Settlement, settle

__all__ = [
    "BILL_COLUMNS",
    "ENERGY_PRICE",
    "IMBALANCE_BILL_COLUMNS",
    "IMBALANCE_LINE_COLUMNS",
    "OPERATOR",
    "READING_COLUMNS",
    "RULES",
    "TARIFF",
    "ImbalanceSettlement",
    "Settlement",
    "baseline_scenario",
    "check_readings",
    "schedule_readings",
    "settle",
    "settle_imbalance",
]
