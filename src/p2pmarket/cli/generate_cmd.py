"""`p2pmarket generate community`: write a generated residential community as a scenario
directory (issue 14; `p2pmarket.generate`, docs/generator.md). Needs the extra `year`.

Every option is checked, and the output location too, before anything is generated; a
mistake is one line naming the option and the value (exit code 2) and nothing is written.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from p2pmarket.cli.common import errors_to_exit_codes, print_written
from p2pmarket.cli.render import terminal_text
from p2pmarket.core.scenario.messages import plural
from p2pmarket.errors import OptionError
from p2pmarket.generate.community import (
    DEFAULT_YEAR,
    check_arguments,
    community,
    draw_households,
    require_year_extra,
)
from p2pmarket.generate.files import WRITTEN_BY, write_scenario_directory
from p2pmarket.generate.weather import DEFAULT_WEATHER_ZONE, WEATHER_ZONES
from p2pmarket.io.outputs import OutputDirectory
from p2pmarket.io.scenario_files import limits_from_environ

__all__ = ["generate_app"]

generate_app = typer.Typer(
    help="Generate scenarios offline from open data (extra `year`).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: readable at 80 columns, no <bool> on flags
    pretty_exceptions_enable=False,
)

OPTIONS = {
    "households": "--households",
    "pv_share": "--pv-share",
    "battery_share": "--battery-share",
    "year": "--year",
    "seed": "--seed",
    "hours": "--hours",
    "weather_zone": "--weather-zone",
}
"""The option of each argument of `p2pmarket.generate.community`."""


@generate_app.command("community")
@errors_to_exit_codes
def generate_community(
    households: Annotated[int, typer.Option(help="Number of households, >= 1.")],
    pv_share: Annotated[float, typer.Option(help="Share of households with rooftop PV, 0 to 1.")],
    battery_share: Annotated[
        float, typer.Option(help="Share of the PV households with a battery, 0 to 1.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Write scenario.yaml, its CSV series and households.csv into this directory."
        ),
    ],
    year: Annotated[
        int, typer.Option(help="Calendar year of the hours (8,784 in a leap year).")
    ] = DEFAULT_YEAR,
    seed: Annotated[int, typer.Option(help="Seed of every random draw, >= 0.")] = 0,
    hours: Annotated[
        int | None, typer.Option(help="Keep only the first HOURS hours of the year.")
    ] = None,
    weather_zone: Annotated[
        int,
        typer.Option(
            help=f"DWD TRY 2010 climate zone, 1 to 15 ({DEFAULT_WEATHER_ZONE}:"
            f" {WEATHER_ZONES[DEFAULT_WEATHER_ZONE]})."
        ),
    ] = DEFAULT_WEATHER_ZONE,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier p2pmarket output at --out, whole.")
    ] = False,
) -> None:
    """A residential community over a year of hours: BDEW H25 household load, rooftop PV
    from DWD test-reference-year weather (pvlib), batteries, a time-of-use grid tariff and
    one community per street (docs/generator.md)."""
    require_year_extra("generate community")
    limits = limits_from_environ()
    try:
        check_arguments(
            households, pv_share, battery_share,
            year=year, seed=seed, hours=hours, weather_zone=weather_zone, limits=limits,
        )  # fmt: skip
    except OptionError as exc:
        raise OptionError(OPTIONS.get(exc.field, exc.field), exc.detail) from None
    target = OutputDirectory(out, WRITTEN_BY, force=force)
    target.check()
    console = Console()
    status = console.status("generating") if console.is_terminal else nullcontext()
    with status:
        scenario = community(
            households, pv_share, battery_share,
            year=year, seed=seed, hours=hours, weather_zone=weather_zone, limits=limits,
        )  # fmt: skip
        drawn = draw_households(households, pv_share, battery_share, seed=seed)
        with target.staging() as stage:
            names = write_scenario_directory(scenario, stage, households=drawn)
    pv, battery = int(drawn.pv.sum()), int(drawn.battery.sum())
    console.print(
        terminal_text(
            f"{scenario.name}: {plural(households, 'household')} on"
            f" {plural(len(drawn.streets), 'street')}, {pv} with PV"
            f" ({drawn.pv_kwp.sum():.1f} kWp), {plural(battery, 'battery', 'batteries')}"
            f" ({drawn.battery_kwh.sum():.1f} kWh), {plural(scenario.periods, 'hour')}"
        ),
        markup=False,
        highlight=False,
    )
    print_written(console, [target.path / name for name in names], target.path)
