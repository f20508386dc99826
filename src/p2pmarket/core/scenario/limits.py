"""The limits every scenario is checked against (docs/scenario-limits.md).

Two kinds:

- **Size** (`Limits`): how many periods, and how many peer-periods (peers x periods, the
  rows of the dispatch table and of every per-peer array the model builds), a scenario may
  have. They are checked before anything proportional to them is allocated, and they can be
  raised: `Scenario.from_dict(data, limits=Limits(max_periods=...))`, or at the edge with the
  environment variables `P2PMARKET_MAX_PERIODS` and `P2PMARKET_MAX_PEER_PERIODS`
  (`p2pmarket.io.scenario_files.limits_from_environ`).
- **Structure** (the `MAX_*_CHARS`, `MAX_DEPTH` and `MAX_*_BYTES` constants below): how long
  a text, how deep a nesting of lists and mappings and how large a file may be. They are
  fixed; they keep a hostile or broken file from exhausting memory or time before the
  scenario is even validated.
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
    "MAX_CSV_BYTES",
    "MAX_CSV_COLUMNS",
    "MAX_DEPTH",
    "MAX_DESCRIPTION_CHARS",
    "MAX_ENERGY_KWH",
    "MAX_JSON_BYTES",
    "MAX_PERIOD_HOURS",
    "MAX_POWER_KW",
    "MAX_PRICE_PER_KWH",
    "MAX_TEXT_CHARS",
    "MAX_YAML_BYTES",
    "MIN_PERIOD_HOURS",
    "Limits",
]

MAX_TEXT_CHARS = 200
"""Ids (peers, communities, members, links, `fee_collector`, `from`, `to`), `name`,
`currency`, keys, and the file and column names of a CSV reference: at most 200 characters."""
MAX_DESCRIPTION_CHARS = 10_000
"""`description`: at most 10,000 characters (the longest text a scenario holds)."""
MAX_DEPTH = 20
"""Lists and mappings nest at most 20 deep (a scenario needs 6:
`peers[0].flexible_load[0].max_kw[0]`)."""
MAX_YAML_BYTES = 10_000_000
"""A YAML scenario file: at most 10 MB (reading YAML costs about a second per MB; long series
belong in CSV files)."""
MAX_JSON_BYTES = 50_000_000
"""A JSON scenario file (or text): at most 50 MB."""
MAX_CSV_BYTES = 50_000_000
"""A CSV file a scenario refers to: at most 50 MB."""
MAX_CSV_COLUMNS = 10_000
"""A CSV file a scenario refers to: at most 10,000 columns (pandas takes about a second per
10,000 columns, and much longer beyond: 100,000 columns of one row took 23 s)."""

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
    """Size limits of a scenario (each >= 1).

    `max_periods`: the number of periods (default 100,000; a year of 15-minute periods is
    35,040). `max_peer_periods`: peers x periods (default 10,000,000, e.g. 285 peers over a
    year of 15-minute periods, or 10,000 peers over 1,000 periods). `max_peers`: the number
    of peers, and of communities (default 100,000).
    """

    max_periods: int = 100_000
    max_peer_periods: int = 10_000_000
    max_peers: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_periods", "max_peer_periods", "max_peers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(name, f"must be a whole number >= 1, got {value!r}")

    def widened_to(self, periods: int, peers: int) -> Limits:
        """These limits, raised where needed to admit a scenario of this size (what was
        accepted once stays accepted when a copy of it is validated again)."""
        return Limits(
            max_periods=max(self.max_periods, periods),
            max_peer_periods=max(self.max_peer_periods, periods * peers),
            max_peers=max(self.max_peers, peers),
        )


DEFAULT_LIMITS = Limits()
