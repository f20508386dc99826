"""Write a scenario as a directory: `scenario.yaml` with every per-period series in CSV files
(one column per peer, one file per kind of series), as `p2pmarket.io.scenario_files` reads
it back; with the drawn households, `households.csv` too (docs/generator.md).

The directory is an output of p2pmarket (`p2pmarket.io.outputs.OutputDirectory`): written
whole into a staging sibling and renamed into place, with the `.p2pmarket.json` marker; an
earlier p2pmarket output is replaced only with `force`, any other non-empty directory is
refused.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import yaml

from p2pmarket.core.scenario import Scenario
from p2pmarket.generate.community import Households
from p2pmarket.io.atomic import write_text_atomic
from p2pmarket.io.outputs import OutputDirectory
from p2pmarket.io.scenario_directory import series_files

__all__ = ["SCENARIO_FILE", "WRITTEN_BY", "write_community", "write_scenario_directory"]

SCENARIO_FILE = "scenario.yaml"
HOUSEHOLDS_FILE = "households.csv"
WRITTEN_BY = "p2pmarket generate community"


def write_community(
    scenario: Scenario,
    directory: str | PathLike[str],
    *,
    force: bool = False,
    households: Households | None = None,
    option: str = "--out",
) -> list[Path]:
    """Write `scenario` into `directory` (all or nothing; `force` replaces an earlier
    p2pmarket output whole) and return the paths written. `households` (from
    `draw_households` with the same arguments) adds `households.csv`. A location that cannot
    be written raises an `OptionError` naming `option`."""
    target = OutputDirectory(Path(directory), WRITTEN_BY, option=option, force=force)
    with target.staging() as stage:
        names = write_scenario_directory(scenario, stage, households=households)
    return [target.path / name for name in names]


def write_scenario_directory(
    scenario: Scenario, directory: Path, *, households: Households | None = None
) -> list[str]:
    """Write the files into an existing `directory` (no staging); the names written."""
    document, files = series_files(scenario)
    for name, csv in files.items():
        write_text_atomic(directory / name, csv)
    written = list(files)
    text = yaml.safe_dump(
        document, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True
    )
    write_text_atomic(directory / SCENARIO_FILE, text)
    written.insert(0, SCENARIO_FILE)
    if households is not None:
        write_text_atomic(directory / HOUSEHOLDS_FILE, households_csv(households))
        written.append(HOUSEHOLDS_FILE)
    return written


def households_csv(households: Households) -> str:
    """One row per household: its street and drawn parameters (empty azimuth without PV)."""
    lines = ["household,street,annual_kwh,pv_kwp,pv_azimuth_deg,battery_kwh,battery_kw"]
    for i, household in enumerate(households.ids):
        kwp = float(households.pv_kwp[i])
        azimuth = str(int(households.pv_azimuth_deg[i])) if kwp > 0 else ""
        lines.append(
            f"{household},{households.street[i]},{households.annual_kwh[i]:.0f},{kwp:.1f},"
            f"{azimuth},{households.battery_kwh[i]:.1f},{households.battery_kw[i]:.2f}"
        )
    return "\n".join(lines) + "\n"
