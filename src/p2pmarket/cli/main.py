"""The `p2pmarket` command line (SPEC C8).

Exit codes: 0 success (market cleared optimally), 1 infeasible market or solver failure,
2 invalid input (the scenario, a file, an option). Every error is one line on stderr.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from p2pmarket import cases as builtin_cases
from p2pmarket.app.compare import compare
from p2pmarket.app.record import record_run
from p2pmarket.app.run import Clearings, run_market
from p2pmarket.cli.common import (
    choice,
    errors_to_exit_codes,
    output_dir,
    quiet_solver,
    scenario_source,
)
from p2pmarket.cli.ledger_cmd import check_ledger_options, describe_append, ledger_app
from p2pmarket.cli.render import (
    bills_table,
    comparison_tables,
    design_table,
    paper_table,
    role_table,
    run_tables,
    storage_table,
)
from p2pmarket.cli.report_cmd import (
    paper_reports,
    report,
    write_comparison_figure,
    write_run_extras,
)
from p2pmarket.core.analysis import role_changes, storage_summary
from p2pmarket.core.scenario import DESIGNS, OBJECTIVES
from p2pmarket.core.settlement import RULES
from p2pmarket.core.solve import ALGORITHMS, SolverOptions
from p2pmarket.errors import OptionError
from p2pmarket.io.results import write_comparison, write_paper_tables, write_run
from p2pmarket.io.scenario_files import dump_scenario
from p2pmarket.io.tables import FORMATS
from p2pmarket.types import Algorithm, Design, Objective, Rule

__all__ = ["app", "main"]


def _one_of(kind: type[StrEnum]) -> str:
    """`a, b or c`: the values of an enum, for --help (choices come from the enums)."""
    values = [str(v) for v in kind]
    return ", ".join(values[:-1]) + f" or {values[-1]}" if len(values) > 1 else values[0]


app = typer.Typer(
    name="p2pmarket",
    help="Clear, settle and record peer-to-peer and community electricity markets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cases_app = typer.Typer(
    help="List the built-in scenarios, or export one as a YAML file to start from.",
    invoke_without_command=True,
)
app.add_typer(cases_app, name="cases")
app.add_typer(ledger_app, name="ledger")


@app.command()
@errors_to_exit_codes
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario file (YAML/JSON) or built-in case.")],
    design: Annotated[str | None, typer.Option(help=f"Market design: {_one_of(Design)}.")] = None,
    objective: Annotated[str | None, typer.Option(help=f"Objective: {_one_of(Objective)}.")] = None,
    rule: Annotated[str, typer.Option(help=f"Settlement rule: {_one_of(Rule)}.")] = "marginal",
    out: Annotated[
        Path | None,
        typer.Option(help="Write summary.json, dispatch/trades/prices/bills CSV, kpis.json here."),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(help="Append the run to this ledger (sqlite:///FILE or postgresql://...)."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(help="The manager's private key file (see `p2pmarket ledger keygen`)."),
    ] = None,
    with_report: Annotated[
        bool, typer.Option("--report", help="With --out, also write report.html.")
    ] = False,
    time_limit: Annotated[
        float | None, typer.Option(help="Stop the solver after this many seconds (exit 1).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Solver threads.")] = None,
    algorithm: Annotated[
        str, typer.Option(help=f"HiGHS algorithm: {_one_of(Algorithm)}.")
    ] = "choose",
    solver_log: Annotated[
        Path | None, typer.Option(help="Write the solver's log to this file.")
    ] = None,
    table_format: Annotated[
        str | None,
        typer.Option("--format", help="With --out, also write every table as csv or parquet."),
    ] = None,
) -> None:
    """Clear a market, settle it, print its summary; with --out, write the result tables."""
    s = scenario_source(scenario)
    out = output_dir(out)
    design = choice(design, DESIGNS, "--design")
    objective = choice(objective, OBJECTIVES, "--objective")
    choice(rule, RULES, "--rule")
    check_ledger_options(ledger, key)
    choice(algorithm, ALGORITHMS, "--algorithm")
    if time_limit is not None and time_limit <= 0:
        raise OptionError("--time-limit", f"must be positive, got {time_limit:g}")
    if threads is not None and threads < 1:
        raise OptionError("--threads", f"must be at least 1, got {threads}")
    options = SolverOptions(
        algorithm=Algorithm(algorithm),
        time_limit_s=time_limit,
        threads=threads,
        log_file=str(solver_log) if solver_log is not None else None,
        workers=None,  # periods solved one by one use every core
    )
    table_format = choice(table_format, FORMATS, "--format")
    if (with_report or table_format is not None) and out is None:
        raise OptionError("--out", "--report and --format write into --out DIR; give it")
    quiet_solver()
    market = run_market(s, design, objective, rule, options)
    console = Console()
    for renderable in run_tables(market.result):
        console.print(renderable)
    console.print(bills_table(market.settlement))
    if out is not None:
        written = write_run(market.result, out, market.settlement, market.kpis)
        written += write_run_extras(
            market.result,
            out,
            report=with_report,
            table_format=table_format,
            bills=market.settlement.bills,
            kpis=market.kpis.to_dict(),
        )
        console.print(f"wrote {', '.join(p.name for p in written)} to {out}")
    if ledger is not None and key is not None:
        console.print(describe_append(record_run(market, ledger, key)), soft_wrap=True)


@app.command(name="compare")
@errors_to_exit_codes
def compare_markets(
    scenarios: Annotated[
        list[str], typer.Argument(help="Scenario files or built-in cases to compare.")
    ],
    design: Annotated[
        str | None,
        typer.Option(help="Comma-separated designs to clear each scenario under, e.g. p2p,hybrid."),
    ] = None,
    rule: Annotated[
        str, typer.Option(help="Comma-separated settlement rules, e.g. marginal,pay-as-offer.")
    ] = "marginal",
    objective: Annotated[str | None, typer.Option(help=f"Objective: {_one_of(Objective)}.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write compare.csv, compare_bills.csv and compare.png here."),
    ] = None,
) -> None:
    """Markets side by side: objective, KPIs and each peer's bill, as a table and as CSV."""
    markets = [scenario_source(name) for name in scenarios]
    designs = [choice(d, DESIGNS, "--design") for d in _split(design)] or [None]
    rules = [str(choice(r, RULES, "--rule")) for r in _split(rule)]
    objective = choice(objective, OBJECTIVES, "--objective")
    out = output_dir(out)
    quiet_solver()
    console = Console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("clearing", total=len(markets) * len(designs))

        def step(label: str) -> None:
            progress.update(task, advance=1, description=f"clearing {label}")

        comparison = compare(markets, designs, rules, objective=objective, on_market=step)
    for renderable in comparison_tables(comparison):
        console.print(renderable)
    if out is not None:
        written = write_comparison(comparison.table, comparison.bills, out)
        written.append(write_comparison_figure(comparison.results, out))
        console.print(f"wrote {', '.join(p.name for p in written)} to {out}")


def _split(values: str | None) -> list[str]:
    return [v.strip() for v in (values or "").split(",") if v.strip()]


@app.command()
@errors_to_exit_codes
def validate(
    scenario: Annotated[str, typer.Argument(help="Scenario file (YAML/JSON) or built-in case.")],
) -> None:
    """Check a scenario file; print what it holds, or one line naming the invalid field."""
    s = scenario_source(scenario)
    storage = sum(p.storage is not None for p in s.peers)
    Console(soft_wrap=True).print(
        f"[green]valid[/green]: {s.name} - {len(s.peers)} peers, {len(s.communities)} "
        f"communities, {storage} storage units, {s.periods} periods of {s.period_hours:g} h, "
        f"design {s.design}, objective {s.objective}"
    )


@cases_app.callback()
def cases_list(ctx: typer.Context) -> None:
    """List the built-in scenarios."""
    if ctx.invoked_subcommand is not None:
        return
    console = Console()
    for name in builtin_cases.names():
        s = builtin_cases.load(name)
        console.print(f"[bold]{name}[/bold]: {len(s.peers)} peers, {s.periods} periods")
        console.print(f"    {s.description}", soft_wrap=False, highlight=False)


@cases_app.command("export")
@errors_to_exit_codes
def cases_export(
    name: Annotated[str, typer.Argument(help="Name of a built-in case (see `p2pmarket cases`).")],
    out: Annotated[Path | None, typer.Option(help="File to write (default NAME.yaml).")] = None,
) -> None:
    """Write a built-in case as a YAML scenario file to start from."""
    scenario = builtin_cases.load(name)
    target = out or Path(f"{name}.yaml")
    dump_scenario(scenario, target)
    Console().print(f"wrote {target}")


@app.command()
@errors_to_exit_codes
def paper(
    out: Annotated[
        Path | None, typer.Option(help="Also write paper.csv and designs.csv here.")
    ] = None,
) -> None:
    """Reproduce the paper's cases: the paper's figure, ours and the deviation."""
    from p2pmarket.app.paper import PAPER_CASES, design_comparison, reproduce

    out = output_dir(out)
    quiet_solver()
    console = Console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("clearing the paper's cases", total=2 * len(PAPER_CASES))

        def step(name: str) -> None:
            progress.update(task, advance=1, description=f"clearing {name}")

        clearings = Clearings()
        reproduction = reproduce(on_case=step, clearings=clearings)
        designs = design_comparison(on_case=step, clearings=clearings)
    console.print(paper_table(reproduction.checks))
    case_three = reproduction.results["seventeen-peer-case-3"]
    console.print(storage_table(storage_summary(case_three), "Case III (17 peers): storage"))
    console.print(
        role_table(role_changes(case_three), "Case III (17 peers): peers that change role")
    )
    console.print(design_table(designs))
    if out is not None:
        written = write_paper_tables(reproduction.checks, designs, out)
        index = paper_reports(reproduction, out, designs=designs, console=console)
        console.print(f"wrote {', '.join(p.name for p in written)} to {out}")
        console.print(f"wrote {index} and a report.html per case")


app.command("report")(errors_to_exit_codes(report))


def main() -> None:
    """Entry point of the `p2pmarket` script."""
    app()
