"""Command-line pieces of the reports (SPEC C7, C8): `p2pmarket report DIR` (a run directory,
or a sweep directory: `sweep_report`), the extra files of `run --report --format parquet`,
and the reports of `paper --out DIR`.

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

from p2pmarket.app.clearing import clear
from p2pmarket.app.paper import Reproduction
from p2pmarket.app.run import MarketRun
from p2pmarket.cli.common import print_written, progress_bar
from p2pmarket.core.results import ClearingResult
from p2pmarket.core.scenario import DESIGNS, OBJECTIVES
from p2pmarket.core.settlement import BILL_COLUMNS
from p2pmarket.errors import OptionError, ScenarioError
from p2pmarket.io.outputs import OutputDirectory
from p2pmarket.io.scenario_files import load_scenario, write_bytes_atomic
from p2pmarket.io.tables import read_table
from p2pmarket.types import Objective

__all__ = [
    "draw_sweep_report",
    "paper_reports",
    "read_sweep_table",
    "rebuild_result",
    "report",
    "run_settlement",
    "write_run_extras",
]

SCENARIO_FILE = "scenario.yaml"
SUMMARY_FILE = "summary.json"
BILLS_FILE = "bills.csv"
KPIS_FILE = "kpis.json"
SWEEP_TABLE = "sweep"
"""`p2pmarket sweep --out DIR` writes DIR/sweep.csv (and .parquet, and tables.json)."""


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
        Path,
        typer.Argument(
            help="A run directory, written by `p2pmarket run ... --out DIR`, or a sweep "
            "directory, written by `p2pmarket sweep ... --out DIR`."
        ),
    ],
    table_format: Annotated[
        str | None,
        typer.Option("--format", help="Also write every table in DIR as csv or parquet."),
    ] = None,
) -> None:
    """Write DIR/report.html (summary, KPIs, figures, tables) for a run directory.

    Clears DIR/scenario.yaml again as DIR/summary.json records; shows bills.csv, kpis.json.
    For a sweep directory (DIR/sweep.csv): the variants, the failed ones and a figure of the
    KPIs against each swept parameter (also written as DIR/sweep-kpis.png).
    """
    from p2pmarket.io.tables import FORMATS, result_tables, write_tables

    if table_format is not None and table_format not in FORMATS:
        raise OptionError("--format", f"{table_format!r} is not one of {', '.join(FORMATS)}")
    target = OutputDirectory(run_dir, "p2pmarket report", option="DIR", keep_existing=True)
    console = Console()
    if _is_sweep_dir(run_dir):
        table = read_sweep_table(run_dir)
        target.check()
        with target.staging() as stage:
            written = draw_sweep_report(table, stage, console)
            if table_format is not None:
                written += write_tables({SWEEP_TABLE: table}, stage, format=table_format)
        print_written(console, written, run_dir)
        return
    with progress_bar(console) as progress:
        progress.add_task(f"clearing {run_dir} again", total=None)
        result = rebuild_result(run_dir)
        bills, kpis = run_settlement(run_dir)
        priced = (
            clear(result.scenario, result.design, Objective.SYSTEM_COST)
            if result.objective_kind == Objective.PAPER
            else None
        )
    target.check()
    with target.staging() as stage:
        written = [
            _draw_report(result, stage, priced=priced, bills=bills, kpis=kpis, console=console)
        ]
        if table_format is not None:
            billed = priced if priced is not None else result
            tables = result_tables(result, bills=bills, prices=billed.prices)
            written += write_tables(tables, stage, format=table_format)
    print_written(console, written, run_dir)


def _is_sweep_dir(path: Path) -> bool:
    return (path / f"{SWEEP_TABLE}.csv").is_file() and not (path / SUMMARY_FILE).is_file()


def read_sweep_table(sweep_dir: Path) -> pd.DataFrame:
    """The table a sweep wrote (DIR/sweep.csv, its column types from DIR/tables.json where
    it lists them); `ScenarioError` naming the file when it cannot be read or is not one."""
    from p2pmarket.io.tables import read_tables

    path = sweep_dir / f"{SWEEP_TABLE}.csv"
    try:
        tables = read_tables(sweep_dir) if (sweep_dir / "tables.json").is_file() else {}
        table = tables[SWEEP_TABLE] if SWEEP_TABLE in tables else read_table(path)
    except (OSError, ValueError) as exc:
        raise ScenarioError(path.name, f"cannot be read: {exc}") from None
    missing = [c for c in ("variant", "status", "error") if c not in table.columns]
    if missing:
        raise ScenarioError(path.name, f"has no column {', '.join(map(repr, missing))}")
    return table


def draw_sweep_report(table: pd.DataFrame, out: Path, console: Console | None) -> list[Path]:
    """`out/report.html` and `out/sweep-kpis.png` of a sweep's table."""
    from p2pmarket.reports.sweep import write_sweep_report

    with progress_bar(console) as progress:
        progress.add_task("drawing the sweep's report", total=None)
        return write_sweep_report(table, out)


def run_settlement(run_dir: Path) -> tuple[pd.DataFrame | None, dict[str, object] | None]:
    """The bills (DIR/bills.csv) and KPIs (DIR/kpis.json) a run wrote, None where absent."""
    bills = kpis = None
    if (run_dir / BILLS_FILE).is_file():
        try:
            bills = read_table(run_dir / BILLS_FILE)  # takes away the quotes of csv_text
        except (OSError, ValueError) as exc:
            raise ScenarioError(BILLS_FILE, f"cannot be read: {exc}") from None
        _check_bills(bills)
    if (run_dir / KPIS_FILE).is_file():
        try:
            kpis = json.loads((run_dir / KPIS_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ScenarioError(KPIS_FILE, f"cannot be read: {exc}") from None
        if not isinstance(kpis, dict):
            raise ScenarioError(KPIS_FILE, "does not hold a mapping")
    return bills, kpis


def _check_bills(bills: pd.DataFrame) -> None:
    """A bills.csv as `run --out` writes it: every bill column, numbers where numbers go."""
    missing = [c for c in BILL_COLUMNS if c not in bills.columns]
    if missing:
        raise ScenarioError(BILLS_FILE, f"has no column {', '.join(map(repr, missing))}")
    for column in BILL_COLUMNS[1:]:
        values = pd.to_numeric(bills[column], errors="coerce")
        bad = values.isna() & bills[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ScenarioError(
                f"{BILLS_FILE}[row {row + 2}].{column}",
                f"{bills[column].iloc[row]!r} is not a number",
            )


def write_run_extras(
    market: MarketRun,
    out: Path,
    *,
    report: bool = False,
    table_format: str | None = None,
    console: Console | None = None,
) -> list[Path]:
    """What `run --out DIR` writes besides its own files: with `table_format` (csv or
    parquet), every table of the run (bills and settled trades included; prices as billed) in
    that format and the manifest `tables.json`; with `report`, DIR/report.html. A run
    cleared by ADMM adds its negotiation (`p2pmarket.reports.admm`), a feeder its tables."""
    from p2pmarket.io.tables import result_tables, write_tables

    written: list[Path] = []
    sections: list[str] = []
    if market.result.scenario.feeder is not None:
        feeder, sections = _feeder_outputs(market, out, report=report, console=console)
        written += feeder
    if market.result.method_report is not None:
        admm, more = _admm_outputs(market, out, report=report)
        written += admm
        sections = [*sections, *more]
    elif market.result.method == "admm" and console is not None:
        console.print(
            "The market was negotiated window by window: admm.json, its history and figure "
            "are written for a market negotiated in one piece (without --window).",
            soft_wrap=True,
        )
    if table_format is not None:
        tables = result_tables(
            market.result,
            bills=market.settlement.bills,
            settlement=market.settlement.trades,
            prices=market.billed.prices,
        )
        written += write_tables(tables, out, format=table_format)
    if report:
        written.append(
            _draw_report(
                market.result,
                out,
                priced=market.priced,
                bills=market.settlement.bills,
                kpis=market.kpis.to_dict(),
                console=console,
                sections=sections,
            )
        )
    return written


def _feeder_outputs(
    market: MarketRun, out: Path, *, report: bool, console: Console | None
) -> tuple[list[Path], list[str]]:
    """The feeder's tables (and with `report` its figures and report section) of a run
    whose scenario has a feeder (docs/feeder.md, "Outputs")."""
    from p2pmarket.app.feeder import feeder_run
    from p2pmarket.io.feeder_files import write_feeder_tables

    run = feeder_run(market)
    if run.note and console is not None:
        console.print(run.note, soft_wrap=True, markup=False)
    written = write_feeder_tables(run.outcome, run.validation, out)
    if not report:
        return written, []
    from p2pmarket.reports.feeder import feeder_report_parts, write_feeder_figures

    written += write_feeder_figures(run, out)
    return written, feeder_report_parts(run)


def _admm_outputs(market: MarketRun, out: Path, *, report: bool) -> tuple[list[Path], list[str]]:
    """A decentralised run's negotiation (docs/admm.md, "Outputs"): `admm.json`, the
    residual history and what was not agreed, and with `report` the convergence figure and
    its report section. The cost gap is measured against the central clearing of the same
    market, cleared here (the agents never see it); none if that clearing fails."""
    from p2pmarket.app.clearing import clear
    from p2pmarket.core.solve.admm import AdmmReport
    from p2pmarket.errors import P2PMarketError
    from p2pmarket.reports.admm import admm_report_parts, write_admm_outputs

    result = market.result
    if not isinstance(result.method_report, AdmmReport):
        return [], []
    try:
        central: float | None = clear(
            result.scenario, result.design, result.objective_kind
        ).objective
    except P2PMarketError:
        central = None
    written = write_admm_outputs(
        result, result.method_report, out, central_objective=central, figure=report
    )
    if not report:
        return written, []
    return written, admm_report_parts(result, result.method_report, central)


def _draw_report(
    result: ClearingResult,
    out: Path,
    *,
    priced: ClearingResult | None,
    bills: pd.DataFrame | None,
    kpis: Mapping[str, object] | None,
    console: Console | None,
    sections: Sequence[str] = (),
) -> Path:
    """`out/report.html`, with a progress bar over its figures; `sections` (HTML) after
    the figures."""
    from p2pmarket.reports.html import report_steps, write_report

    with progress_bar(console) as progress:
        task = progress.add_task("drawing the report", total=len(report_steps(result, bills=bills)))

        def step(what: str) -> None:
            progress.update(task, advance=1, description=what)

        return write_report(
            result, out, bills=bills, kpis=kpis, priced=priced, on_step=step,
            more_sections=sections,
        )  # fmt: skip


def write_comparison_figure(
    results: Sequence[ClearingResult], out: Path, labels: Sequence[str] | None = None
) -> Path:
    """`compare.png`: the compared markets side by side (objective, generation, routes)."""
    from p2pmarket.reports.figures import design_comparison_figure
    from p2pmarket.reports.style import figure_png

    path = out / "compare.png"
    write_bytes_atomic(path, figure_png(design_comparison_figure(results, labels or None)))
    return path


def paper_reports(
    reproduction: Reproduction,
    out: Path,
    *,
    designs: pd.DataFrame | None = None,
    priced: Mapping[str, ClearingResult] | None = None,
    console: Console | None = None,
) -> Path:
    """`out/CASE/report.html` for every paper case and `out/index.html`, with a progress
    bar over every figure; `priced` (by case) are the clearings whose prices the bills use.
    Returns the index page's path."""
    from p2pmarket.reports.html import paper_report_steps, write_paper_reports

    with progress_bar(console) as progress:
        task = progress.add_task("writing the reports", total=len(paper_report_steps(reproduction)))

        def step(what: str) -> None:
            progress.update(task, advance=1, description=what)

        return write_paper_reports(reproduction, out, designs=designs, priced=priced, on_step=step)
