"""The `p2pmarket` command line (SPEC C8).

Exit codes: 0 success (market cleared optimally), 1 infeasible market or solver failure,
2 invalid input (the scenario, a file, an option). Every error is one line on stderr.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer._click import exceptions as click_errors  # typer 0.29 carries its own click

from p2pmarket import __version__
from p2pmarket import cases as builtin_cases
from p2pmarket.app.clearing import METHODS
from p2pmarket.app.compare import compare
from p2pmarket.app.record import record_run
from p2pmarket.app.run import Clearings, run_market
from p2pmarket.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    choice,
    errors_to_exit_codes,
    output_location,
    print_written,
    progress_bar,
    scenario_source,
)
from p2pmarket.cli.generate_cmd import generate_app
from p2pmarket.cli.ledger_cmd import check_ledger_options, describe_append, ledger_app
from p2pmarket.cli.render import (
    bills_table,
    comparison_tables,
    design_table,
    paper_table,
    role_table,
    run_tables,
    storage_table,
    terminal_text,
)
from p2pmarket.cli.report_cmd import (
    paper_reports,
    report,
    write_comparison_figure,
    write_run_extras,
)
from p2pmarket.cli.serve_cmd import serve, session
from p2pmarket.cli.sweep_cmd import sweep
from p2pmarket.core.analysis import role_changes, storage_summary
from p2pmarket.core.scenario import DESIGNS, OBJECTIVES
from p2pmarket.core.scenario.messages import plural
from p2pmarket.core.settlement import RULES
from p2pmarket.core.solve import ALGORITHMS, Clearing, SolverOptions
from p2pmarket.core.solve.admm import ADMM, AdmmOptions, AdmmReport
from p2pmarket.core.solve.options import MAX_THREADS
from p2pmarket.errors import OptionError, SolverError
from p2pmarket.io.outputs import check_output_file, writing
from p2pmarket.io.results import write_comparison, write_paper_tables, write_run
from p2pmarket.io.scenario_files import dump_scenario
from p2pmarket.io.tables import FORMATS
from p2pmarket.types import Algorithm, Design, Objective, Rule, Status

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
    rich_markup_mode=None,  # plain help: readable at 80 columns, no <bool> on flags
    pretty_exceptions_enable=False,
)
cases_app = typer.Typer(
    help="List the built-in scenarios, or export one as a YAML file to start from.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(cases_app, name="cases")
app.add_typer(ledger_app, name="ledger")
app.add_typer(generate_app, name="generate")


RUN_FILES = (
    "scenario.yaml (its series in scenario-series/ past a week of periods), summary.json, "
    "dispatch.csv, trades.csv, prices.csv, bills.csv, settlement.csv, kpis.json"
)
FORCE_HELP = "Replace an earlier p2pmarket output at --out, whole."
SOLVER_OPTIONS = {
    "window": "--window",
    "lookahead": "--lookahead",
    "threads": "--threads",
    "time_limit_s": "--time-limit",
    "log_file": "--solver-log",
}


@app.command()
@errors_to_exit_codes
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario file (YAML/JSON) or built-in case.")],
    design: Annotated[str | None, typer.Option(help=f"Market design: {_one_of(Design)}.")] = None,
    objective: Annotated[str | None, typer.Option(help=f"Objective: {_one_of(Objective)}.")] = None,
    rule: Annotated[str, typer.Option(help=f"Settlement rule: {_one_of(Rule)}.")] = "marginal",
    out: Annotated[
        Path | None,
        typer.Option(
            help=f"Write the run into this directory: {RUN_FILES} (all or nothing; see --force)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
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
    threads: Annotated[
        int | None, typer.Option(help=f"Solver threads, 1 to {MAX_THREADS}.")
    ] = None,
    algorithm: Annotated[
        str, typer.Option(help=f"HiGHS algorithm: {_one_of(Algorithm)}.")
    ] = "choose",
    solver_log: Annotated[
        Path | None, typer.Option(help="Write the solver's log to this file.")
    ] = None,
    table_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="With --out, also write every table as csv or parquet, and tables.json.",
        ),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(help="Clear as a rolling horizon of windows this many periods long."),
    ] = None,
    lookahead: Annotated[
        int | None,
        typer.Option(
            help="With --window: periods after each window solved with it (default: "
            "as many as the window)."
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(help="Clearing method: central (one LP) or admm (decentralised, C9)."),
    ] = "central",
    max_iterations: Annotated[
        int | None,
        typer.Option(help="With --method admm: the iteration cap (default 5000)."),
    ] = None,
) -> None:
    """Clear a market, settle it, print its summary; with --out, write the result tables."""
    clearing = _clearing_method(method, max_iterations)
    s = scenario_source(scenario)
    design = choice(design, DESIGNS, "--design")
    objective = choice(objective, OBJECTIVES, "--objective")
    choice(rule, RULES, "--rule")
    choice(algorithm, ALGORITHMS, "--algorithm")
    table_format = choice(table_format, FORMATS, "--format")
    if (with_report or table_format is not None) and out is None:
        raise OptionError("--out", "--report and --format write into --out DIR; give it")
    target = output_location(out, "p2pmarket run", force=force)
    check_ledger_options(ledger, key)
    options = _solver_options(
        algorithm=Algorithm(algorithm),
        time_limit_s=time_limit,
        threads=threads,
        log_file=str(solver_log) if solver_log is not None else None,
        workers=None,  # periods solved one by one use every core
        window=window,
        lookahead=lookahead,
    )
    console = Console()
    with progress_bar(console) as progress:
        tasks: dict[str, Any] = {}

        def on_window(which: str, done: int, total: int) -> None:
            if which not in tasks:
                tasks[which] = progress.add_task(f"windows: {which}", total=total)
            progress.update(tasks[which], completed=done)

        market = run_market(
            s, design, objective, rule, options, on_window=on_window, method=clearing
        )
    for renderable in run_tables(market.result, market.billed):
        console.print(renderable)
    console.print(bills_table(market.settlement, market.result))
    if isinstance(market.result.method_report, AdmmReport):
        console.print(_negotiation_line(market.result.method_report), soft_wrap=True)
    if target is not None:
        with target.staging() as stage:
            written = write_run(
                market.result,
                stage,
                market.settlement,
                market.kpis,
                prices=market.billed.prices,
            )
            written += write_run_extras(
                market,
                stage,
                report=with_report,
                table_format=table_format,
                console=console,
            )
        print_written(console, written, target.path)
    if ledger is not None and key is not None:
        console.print(describe_append(record_run(market, ledger, key)), soft_wrap=True)
    if market.result.status != Status.OPTIMAL:
        raise SolverError(market.result.termination, status=str(market.result.status))


def _negotiation_line(report: AdmmReport) -> str:
    """One line on how a decentralised market got there (docs/admm.md)."""
    how = (
        f"every trade agreed after {report.iterations:,} iterations"
        if report.converged
        else f"{len(report.not_agreed):,} trades not agreed at the cap of "
        f"{report.iterations:,} iterations"
    )
    return (
        f"Decentralised (ADMM, {report.runner}): {how}; {report.messages:,} messages "
        f"({report.message_bytes:,} bytes) between neighbours; leftover settled with the grid "
        f"{report.imbalance_kwh:.4g} kWh."
    )


def _clearing_method(method: str, max_iterations: int | None) -> Clearing | str:
    """The clearing method of `--method` and `--max-iterations`; a bad one names its
    option."""
    choice(method, METHODS, "--method")
    if max_iterations is None:
        return method
    if method != "admm":
        raise OptionError(
            "--max-iterations",
            f"{max_iterations} is an iteration cap of --method admm, not of --method {method}",
        )
    try:
        return ADMM(AdmmOptions(max_iterations=max_iterations))
    except OptionError as exc:
        raise OptionError("--max-iterations", exc.detail) from None


def _solver_options(**fields: Any) -> SolverOptions:
    """SolverOptions from command-line values; an invalid one names its option."""
    try:
        return SolverOptions(**fields)
    except OptionError as exc:
        raise OptionError(SOLVER_OPTIONS.get(exc.field, exc.field), exc.detail) from None


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
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    method: Annotated[
        str,
        typer.Option(help="Comma-separated clearing methods, e.g. central,admm."),
    ] = "central",
) -> None:
    """Markets side by side: objective, KPIs and each peer's bill, as a table and as CSV."""
    methods = [str(choice(m, METHODS, "--method")) for m in _split(method)] or ["central"]
    markets = [scenario_source(name) for name in scenarios]
    designs = [choice(d, DESIGNS, "--design") for d in _split(design)] or [None]
    rules = [str(choice(r, RULES, "--rule")) for r in _split(rule)]
    objective = choice(objective, OBJECTIVES, "--objective")
    target = output_location(out, "p2pmarket compare", force=force)
    console = Console()
    with progress_bar(console) as progress:
        task = progress.add_task("clearing", total=len(markets) * len(designs) * len(set(methods)))

        def step(label: str) -> None:
            progress.update(task, advance=1, description=f"clearing {label}")

        comparison = compare(
            markets,
            designs,
            rules,
            objective=objective,
            on_market=step,
            labels=scenarios,
            methods=methods,
        )
    for renderable in comparison_tables(comparison):
        console.print(renderable)
    if target is not None:
        with target.staging() as stage:
            written = write_comparison(comparison.table, comparison.bills, stage)
            written.append(write_comparison_figure(comparison.results, stage, comparison.labels))
        print_written(console, written, target.path)


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
        f"[green]valid[/green]: {s.name} - {plural(len(s.peers), 'peer')}, "
        f"{plural(len(s.communities), 'community', 'communities')}, "
        f"{plural(storage, 'storage unit')}, {plural(s.periods, 'period')} of "
        f"{s.period_hours:g} h, design {s.design}, objective {s.objective}"
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
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write a built-in case as a YAML scenario file to start from."""
    scenario = builtin_cases.load(name)
    target = out or Path(f"{name}.yaml")
    check_output_file(target, option="--out", force=force)
    with writing("--out", target):
        dump_scenario(scenario, target)
    Console().print(terminal_text(f"wrote {target}"), markup=False, highlight=False)


@app.command()
@errors_to_exit_codes
def paper(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also write paper.csv, designs.csv, index.html and CASE/report.html here."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Reproduce the paper's cases: the paper's figure, ours and the deviation."""
    from p2pmarket.app.paper import PAPER_CASES, design_comparison, reproduce

    target = output_location(out, "p2pmarket paper", force=force)
    console = Console()
    with progress_bar(console) as progress:
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
    if target is not None:
        with target.staging() as stage:
            written = write_paper_tables(reproduction.checks, designs, stage)
            priced = {name: clearings.priced(r) for name, r in reproduction.results.items()}
            paper_reports(reproduction, stage, designs=designs, priced=priced, console=console)
        print_written(console, written, target.path)
        console.print(
            terminal_text(f"wrote {target.path / 'index.html'} and a report.html per case"),
            markup=False,
            highlight=False,
        )


app.command("report")(errors_to_exit_codes(report))
app.command("serve")(errors_to_exit_codes(serve))
app.command("session")(errors_to_exit_codes(session))
app.command("sweep")(errors_to_exit_codes(sweep))


def _print_version(value: bool) -> None:
    if value:
        print(f"p2pmarket {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Clear, settle and record peer-to-peer and community electricity markets."""


def main() -> None:
    """Entry point of the `p2pmarket` script: a usage mistake (an unknown option, a missing
    argument, a value of the wrong type) is one line on stderr and exit code 2."""
    try:
        code = app(prog_name="p2pmarket", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            print(exc.ctx.get_help())
        sys.exit(EXIT_OK)
    except click_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "p2pmarket"
        message = " ".join(terminal_text(exc.format_message(), keep="\n\t").split())
        sys.stderr.write(f"error: {message} (see `{command} --help`)\n")
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        message = " ".join(terminal_text(exc.format_message(), keep="\n\t").split())
        sys.stderr.write(f"error: {message}\n")
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("error: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
