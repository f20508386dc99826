"""`p2pmarket sweep`: a market cleared for every combination of the grids, on a Dask cluster
(issue 14; `p2pmarket.app.sweep` does the work, docs/sweeps.md says how to use it).

The journal of a sweep with `--out DIR` is the hidden file `.DIR.sweep-journal.jsonl` beside
`DIR`, outside the output: `DIR` stays all or nothing (it is the earlier output or the whole
new table, written through `OutputDirectory.staging` at the end), while the journal survives
Ctrl-C or a kill, and the same command run again resumes from it. It is removed once the
table is in place.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from p2pmarket import cases as builtin_cases
from p2pmarket.app.sweep import (
    GENERATORS,
    Generator,
    Journal,
    SweepPlan,
    parse_grid,
    plan_sweep,
    run_sweep,
)
from p2pmarket.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_MARKET,
    fail,
    print_written,
    progress_bar,
    scenario_source,
)
from p2pmarket.cli.render import terminal_text
from p2pmarket.cli.report_cmd import draw_sweep_report
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.solve import SolverOptions
from p2pmarket.errors import MissingExtraError, OptionError
from p2pmarket.io.outputs import OutputDirectory
from p2pmarket.io.tables import write_tables

__all__ = ["SWEEP_FILES", "journal_path", "sweep", "sweep_base"]

SWEEP_FILES = ("sweep.csv", "sweep.parquet", "tables.json")
"""What a sweep writes into --out (with --report also report.html and sweep-kpis.png)."""
TABLE = "sweep"


def journal_path(out: Path) -> Path:
    """Where the journal of a sweep into `out` is kept: `.NAME.sweep-journal.jsonl` beside
    it (module docstring)."""
    target = out.absolute()
    return target.parent / f".{target.name}.sweep-journal.jsonl"


def sweep_base(source: str) -> Scenario | Generator:
    """A scenario file, a built-in case, or a generator spec `NAME:KEY=VALUE,...`: a file
    or a case of that name comes first."""
    name = source.partition(":")[0].strip()
    if name in GENERATORS and not Path(source).exists() and source not in builtin_cases.names():
        return Generator.parse(source, option="SCENARIO_OR_GENERATOR")
    return scenario_source(source)


def sweep(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SCENARIO_OR_GENERATOR",
            help="Scenario file (YAML/JSON), built-in case, or generator, e.g. "
            "community:households=50,hours=168,seed=1.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(help="Write sweep.csv and sweep.parquet here (all or nothing; --force)."),
    ],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="NAME=V1,V2,...: values of one parameter (design, objective, rule, "
            "uniform_fee; a generator's households, pv_share, battery_share, seed, hours, "
            "year). Give it once per parameter; every combination is cleared.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes of the local Dask cluster (default: one per core)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Run on this existing Dask cluster instead (tcp://HOST:PORT)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier p2pmarket output at --out, whole.")
    ] = False,
    time_limit: Annotated[
        float | None,
        typer.Option(help="Stop each variant's solver after this many seconds (it fails)."),
    ] = None,
    with_report: Annotated[
        bool,
        typer.Option(
            "--report", help="Also write report.html and sweep-kpis.png (KPIs per parameter)."
        ),
    ] = False,
    window: Annotated[
        int | None,
        typer.Option(help="Clear each variant as a rolling horizon of windows this long."),
    ] = None,
    lookahead: Annotated[
        int | None,
        typer.Option(help="With --window: periods after each window solved with it."),
    ] = None,
) -> None:
    """Clear every combination of the grids; one row per variant in sweep.csv and
    sweep.parquet. An interrupted sweep resumes when run again with the same --out."""
    base = sweep_base(source)
    try:
        options = SolverOptions(
            threads=1, time_limit_s=time_limit, window=window, lookahead=lookahead
        )
    except OptionError as exc:
        flag = {"time_limit_s": "--time-limit"}.get(exc.field, f"--{exc.field}")
        raise OptionError(flag, exc.detail) from None
    plan = plan_sweep(base, parse_grid(grid or []), options=options, option="--grid")
    if workers is not None and scheduler is not None:
        raise OptionError("--scheduler", "give either --scheduler or --workers, not both")
    if workers is not None and not 1 <= workers <= 1024:
        raise OptionError("--workers", f"must be a whole number from 1 to 1024, got {workers}")
    if workers is None and scheduler is None:
        workers = os.cpu_count() or 1
    _require("pyarrow", "sweep.parquet")
    if scheduler is not None or workers != 1:
        _require("distributed", "--workers" if scheduler is None else "--scheduler")
    target = OutputDirectory(out, "p2pmarket sweep", force=force)
    target.check()
    _run(plan, target, workers, scheduler, with_report)


def _require(package: str, feature: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise MissingExtraError(feature, package, "sweep")


def _run(
    plan: SweepPlan,
    target: OutputDirectory,
    workers: int | None,
    scheduler: str | None,
    with_report: bool = False,
) -> None:
    """Run the sweep with its journal, then write the table into `target` (module docstring)."""
    out = target.path
    console = Console()
    done, total, writing = 0, len(plan), False
    with Journal(journal_path(out), option="--out") as journal:
        resumed = sum(v.key in journal.rows() for v in plan.variants)
        try:
            with progress_bar(console) as progress:
                task = progress.add_task("sweeping", total=total)

                def step(finished: int, of: int) -> None:
                    nonlocal done
                    done = finished
                    progress.update(
                        task, completed=finished, description=f"variant {finished}/{of}"
                    )

                try:
                    table = run_sweep(
                        plan,
                        workers=workers if scheduler is None else None,
                        scheduler=scheduler,
                        journal=journal,
                        on_progress=step,
                    )
                except OptionError as exc:
                    if exc.field in ("scheduler", "workers"):
                        raise OptionError(f"--{exc.field}", exc.detail) from None
                    raise
            writing = True
            with target.staging() as stage:
                csv = write_tables({TABLE: table}, stage, format="csv")
                written = [*csv[:-1], *write_tables({TABLE: table}, stage, format="parquet")]
                if with_report:
                    written += draw_sweep_report(table, stage, console)
            journal.remove()
        except KeyboardInterrupt:
            if writing:
                fail(
                    f"interrupted while writing {out}; nothing was written there, and every "
                    f"row is kept in {journal.path}: run the same command again to write it",
                    EXIT_INTERRUPTED,
                )
            fail(
                f"interrupted after {done} of {total} variants; their rows are kept in "
                f"{journal.path}: run the same command again to resume",
                EXIT_INTERRUPTED,
            )
    failed = table[table["status"] != "ok"]
    note = f", {resumed} of them from the journal" if resumed else ""
    console.print(
        terminal_text(f"{total} variants{note}: {total - len(failed)} ok, {len(failed)} failed"),
        markup=False,
        highlight=False,
    )
    print_written(console, written, out)
    if total and len(failed) == total:
        fail(f"every variant failed; the first: {failed['error'].iloc[0]}", EXIT_MARKET)
