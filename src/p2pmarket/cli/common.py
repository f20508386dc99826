"""Pieces shared by the command-line modules: exit codes, one-line errors, input helpers."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress

from p2pmarket import cases as builtin_cases
from p2pmarket.cli.render import terminal_text
from p2pmarket.core.scenario import Scenario
from p2pmarket.errors import (
    InfeasibleMarketError,
    InputError,
    LedgerError,
    LedgerIntegrityError,
    MarketError,
    OptionError,
    P2PMarketError,
    SolverError,
)
from p2pmarket.io.outputs import OutputDirectory
from p2pmarket.io.scenario_files import load_scenario

__all__ = [
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_MARKET",
    "EXIT_OK",
    "choice",
    "errors_to_exit_codes",
    "fail",
    "output_location",
    "print_written",
    "progress_bar",
    "scenario_source",
]

EXIT_OK, EXIT_MARKET, EXIT_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130
"""Ctrl-C: 128 + SIGINT, as a shell reports a command killed by it."""

F = TypeVar("F", bound=Callable[..., Any])


def errors_to_exit_codes(command: F) -> F:
    """Turn p2pmarket's errors into one line on stderr and the documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            fail(f"invalid input: {exc}", EXIT_INPUT)
        except LedgerIntegrityError as exc:
            fail(f"ledger does not verify: {exc}", EXIT_MARKET)
        except LedgerError as exc:
            fail(f"ledger: {exc}", EXIT_INPUT)
        except InfeasibleMarketError as exc:
            fail(f"infeasible market: {exc}", EXIT_MARKET)
        except SolverError as exc:
            fail(f"solver: {exc}", EXIT_MARKET)
        except MarketError as exc:
            fail(f"market: {exc}", EXIT_MARKET)
        except P2PMarketError as exc:
            fail(str(exc), EXIT_MARKET)
        except KeyboardInterrupt:
            fail("interrupted; no partial output was left", EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int) -> None:
    """Write `message` as one line on stderr, `error: ...`, and exit with `code`. A control
    character or bidirectional override in it (a peer id, a path) is written as its escape
    (`terminal_text`); line breaks and tabs become spaces."""
    line = " ".join(terminal_text(message, keep="\n\t").split())
    sys.stderr.write("error: " + line + "\n")
    raise typer.Exit(code)


def scenario_source(source: str) -> Scenario:
    """A scenario file, or the name of a built-in case."""
    if not Path(source).exists() and source in builtin_cases.names():
        return builtin_cases.load(source)
    return load_scenario(source)


def choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    if value is not None and value not in allowed:
        raise OptionError(option, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def output_location(
    out: Path | None, command: str, *, force: bool = False, option: str = "--out"
) -> OutputDirectory | None:
    """The output directory of `command`, checked before any work is done: writable, and
    empty, new or an earlier p2pmarket output (replaced whole only with `force`)."""
    if out is None:
        return None
    target = OutputDirectory(out, command, option=option, force=force)
    target.check()
    return target


def progress_bar(console: Console | None = None) -> Progress:
    """A transient progress bar on a terminal; nothing at all when the output is piped or
    redirected (rich would leave an empty line behind, e.g. before an error)."""
    console = console or Console()
    return Progress(console=console, transient=True, disable=not console.is_terminal)


def print_written(console: Console, paths: Iterable[Path], where: Path) -> None:
    """`wrote a, b, c to DIR`: what a command wrote, names escaped for the terminal."""
    names = ", ".join(p.name for p in paths)
    console.print(terminal_text(f"wrote {names} to {where}"), markup=False, highlight=False)
