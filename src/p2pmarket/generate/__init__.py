"""Markets generated offline from open data (issue 14): `community(...)` builds a German
residential energy community over a year of hours as a `Scenario` (BDEW H25 household load
from demandlib, rooftop PV from DWD test-reference-year weather with pvlib, batteries, a
time-of-use grid tariff, one community per street), `write_community(...)` writes it as a
scenario directory (`scenario.yaml` and CSV series). Needs the extra `year` (demandlib,
pvlib). Every choice, source and licence: docs/generator.md.
"""

from p2pmarket.generate.community import (
    DEFAULT_YEAR,
    Households,
    check_arguments,
    community,
    draw_households,
    require_year_extra,
)
from p2pmarket.generate.files import write_community
from p2pmarket.generate.weather import DEFAULT_WEATHER_ZONE, WEATHER_ZONES

__all__ = [
    "DEFAULT_WEATHER_ZONE",
    "DEFAULT_YEAR",
    "WEATHER_ZONES",
    "Households",
    "check_arguments",
    "community",
    "draw_households",
    "require_year_extra",
    "write_community",
]
