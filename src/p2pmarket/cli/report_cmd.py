"""Command-line pieces of the reports (SPEC C7, C8): `p2pmarket report DIR`, the extra files
of `run --report --format parquet`, and the reports of `paper --out DIR`.

`report` is a typer command function; `cli/main.py` registers it. Errors are p2pmarket's own
(`ScenarioError` for a directory that is not a run directory), turned into one line and an
exit code by the command line's wrapper.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress

from p2pmarket.app.clearing import clear
from p2pmarket.app.paper import Reproduction
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import DESIGNS, OBJECTIVES
from p2pmarket.errors import ScenarioError
from p2pmarket.io.scenario_files import load_scenario, write_bytes_atomic

__all__ = ["paper_reports", "rebuild_result", "report", "run_settlement", "write_run_extras"]

SCENARIO_FILE = "scenario.yaml"
SUMMARY_FILE = "summary.json"
BILLS_FILE = "bills.csv"
KPIS_FILE = "kpis.json"


def rebuild_result(run_dir: Path) -> ClearingResult:
    """Clear again the run written by `p2pmarket run --out DIR`: DIR/scenario.yaml under
    the design and objective recorded in DIR/summary.json."""
    if not run_dir.is_dir():
        raise ScenarioError("run_dir", f"{str(run_dir)!r} is not a directory")
    for name in (SCENARIO_FILE, SUMMARY_FILE):
        if not (run_dir / name).is_file():
            raise ScenarioError(
                "run_dir",
                f"no {name} in {str(run_dir)!r} (write a run directory with "
                "`p2pmarket run SCENARIO --out DIR`)",
            )
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(SUMMARY_FILE, f"cannot be read: {exc}") from None
    if not isinstance(summary, dict):
        raise ScenarioError(SUMMARY_FILE, "does not hold a mapping")
    design, objective = summary.get("design"), summary.get("objective_kind")
    if design not in DESIGNS:
        raise ScenarioError(f"{SUMMARY_FILE}.design", f"{design!r} is not one of {DESIGNS}")
    if objective not in OBJECTIVES:
        raise ScenarioError(
            f"{SUMMARY_FILE}.objective_kind", f"{objective!r} is not one of {OBJECTIVES}"
        )
    result = clear(load_scenario(run_dir / SCENARIO_FILE), design=design, objective=objective)
    recorded = summary.get("objective")
    if isinstance(recorded, int | float) and not math.isclose(
        result.objective, recorded, rel_tol=1e-7, abs_tol=1e-9
    ):
        sys.stderr.write(
            f"warning: the objective cleared again, {result.objective:.10g}, differs from "
            f"{recorded:.10g} in {SUMMARY_FILE} (p2pmarket changed since the run?)\n"
        )
    return result


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory, written by `p2pmarket run ... --out DIR`.")
    ],
    table_format: Annotated[
        str | None,
        typer.Option("--format", help="Also write every table in DIR as csv or parquet."),
    ] = None,
) -> None:
    """Write DIR/report.html (summary, KPIs, figures, tables) for a run directory.

    Clears DIR/scenario.yaml again as DIR/summary.json records; shows bills.csv, kpis.json.
    """
    from p2pmarket.cli.common import quiet_solver
    from p2pmarket.io.tables import FORMATS, result_tables, write_tables
    from p2pmarket.reports.html import write_report

    if table_format is not None and table_format not in FORMATS:
        raise ScenarioError("--format", f"{table_format!r} is not one of {', '.join(FORMATS)}")
    quiet_solver()
    console = Console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"clearing {run_dir}", total=3 if table_format else 2)
        result = rebuild_result(run_dir)
        progress.update(task, advance=1, description="drawing the figures")
        bills, kpis = run_settlement(run_dir)
        written = [write_report(result, run_dir, bills=bills, kpis=kpis)]
        if table_format is not None:
            progress.update(task, advance=1, description="writing the tables")
            tables = result_tables(result, bills=bills)
            written += write_tables(tables, run_dir, format=table_format)
        progress.update(task, advance=1)
    console.print(f"wrote {', '.join(p.name for p in written)} to {run_dir}")


def run_settlement(run_dir: Path) -> tuple[pd.DataFrame | None, dict[str, object] | None]:
    """The bills (DIR/bills.csv) and KPIs (DIR/kpis.json) a run wrote, None where absent."""
    bills = kpis = None
    if (run_dir / BILLS_FILE).is_file():
        try:
            bills = pd.read_csv(run_dir / BILLS_FILE, keep_default_na=False, na_values=[""])
        except (OSError, ValueError) as exc:
            raise ScenarioError(BILLS_FILE, f"cannot be read: {exc}") from None
    if (run_dir / KPIS_FILE).is_file():
        try:
            kpis = json.loads((run_dir / KPIS_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ScenarioError(KPIS_FILE, f"cannot be read: {exc}") from None
        if not isinstance(kpis, dict):
            raise ScenarioError(KPIS_FILE, "does not hold a mapping")
    return bills, kpis


def write_run_extras(
    result: ClearingResult,
    out: Path,
    *,
    report: bool = False,
    table_format: str | None = None,
    bills: pd.DataFrame | None = None,
    kpis: Mapping[str, object] | None = None,
) -> list[Path]:
    """What `run --out DIR` writes besides its own files: with `table_format` (csv or
    parquet), every table of the result (and `bills`) in that format and the manifest
    `tables.json`; with `report`, DIR/report.html (with `bills` and `kpis` when given)."""
    from p2pmarket.io.tables import result_tables, write_tables
    from p2pmarket.reports.html import write_report

    written: list[Path] = []
    if table_format is not None:
        written += write_tables(result_tables(result, bills=bills), out, format=table_format)
    if report:
        written.append(write_report(result, out, bills=bills, kpis=kpis))
    return written


def write_comparison_figure(results: Sequence[ClearingResult], out: Path) -> Path:
    """`compare.png`: the compared markets side by side (objective, generation, routes)."""
    from p2pmarket.reports.figures import design_comparison_figure
    from p2pmarket.reports.style import figure_png

    path = out / "compare.png"
    write_bytes_atomic(path, figure_png(design_comparison_figure(results)))
    return path


def paper_reports(
    reproduction: Reproduction,
    out: Path,
    *,
    designs: pd.DataFrame | None = None,
    console: Console | None = None,
) -> Path:
    """`out/CASE/report.html` for every paper case and `out/index.html`, with a progress
    bar; returns the index page's path."""
    from p2pmarket.reports.html import write_paper_reports

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("writing the reports", total=len(reproduction.results))

        def step(name: str) -> None:
            progress.update(task, advance=1, description=f"report of {name}")

        return write_paper_reports(reproduction, out, designs=designs, on_case=step)
