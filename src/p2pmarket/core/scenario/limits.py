"""The limits every scenario is checked against (docs/scenario-limits.md).

Two kinds:

- **Size** (`Limits`): how many periods, and how many peer-periods (peers x periods, the
  rows of the dispatch table and of every per-peer array the model builds), a scenario may
  have. They are checked before anything proportional to them is allocated, and they can be
  raised: `Scenario.from_dict(data, limits=Limits(max_periods=...))`, or at the edge with the
  environment variables `P2PMARKET_MAX_PERIODS` and `P2PMARKET_MAX_PEER_PERIODS`
  (`p2pmarket.io.scenario_files.limits_from_environ`).
- **Physical range** (the constants below): the magnitude a power, an energy, a price or a
  period length may have. They are fixed: a number outside them is a mistake (a typo, a unit
  slip), and it would reach the solver as a bound or cost HiGHS treats as infinite (>= 1e20)
  or as badly scaled.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmarket.errors import OptionError

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_ENERGY_KWH",
    "MAX_PERIOD_HOURS",
    "MAX_POWER_KW",
    "MAX_PRICE_PER_KWH",
    "MIN_PERIOD_HOURS",
    "Limits",
]

MAX_POWER_KW = 1e7
"""|power| <= 10 GW: loads, generation bounds, storage power, flexible blocks (kW)."""
MAX_ENERGY_KWH = 1e9
"""Storage capacity <= 1 TWh (kWh)."""
MAX_PRICE_PER_KWH = 1e6
"""|price| and fees <= 1e6 per kWh in the scenario's currency (offers, buy prices, flexible
prices, export, intra, contract and uniform fees)."""
MIN_PERIOD_HOURS = 1 / 3600
"""A period lasts at least one second."""
MAX_PERIOD_HOURS = 24 * 366
"""A period lasts at most a (leap) year: 8,784 h."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits of a scenario (both >= 1).

    `max_periods`: the number of periods (default 100,000; a year of 15-minute periods is
    35,040). `max_peer_periods`: peers x periods (default 10,000,000, e.g. 285 peers over a
    year of 15-minute periods, or 10,000 peers over 1,000 periods).
    """

    max_periods: int = 100_000
    max_peer_periods: int = 10_000_000

    def __post_init__(self) -> None:
        for name in ("max_periods", "max_peer_periods"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(name, f"must be a whole number >= 1, got {value!r}")

    def widened_to(self, periods: int, peers: int) -> Limits:
        """These limits, raised where needed to admit a scenario of this size (what was
        accepted once stays accepted when a copy of it is validated again)."""
        return Limits(
            max_periods=max(self.max_periods, periods),
            max_peer_periods=max(self.max_peer_periods, periods * peers),
        )


DEFAULT_LIMITS = Limits()
