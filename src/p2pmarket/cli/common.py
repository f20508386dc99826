"""Pieces shared by the command-line modules: exit codes, one-line errors, input helpers."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from p2pmarket import cases as builtin_cases
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
from p2pmarket.io.scenario_files import load_scenario

__all__ = [
    "EXIT_INPUT",
    "EXIT_MARKET",
    "EXIT_OK",
    "choice",
    "errors_to_exit_codes",
    "fail",
    "output_dir",
    "quiet_solver",
    "scenario_source",
]

EXIT_OK, EXIT_MARKET, EXIT_INPUT = 0, 1, 2

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

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int) -> None:
    sys.stderr.write("error: " + " ".join(message.split()) + "\n")
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


def output_dir(out: Path | None) -> Path | None:
    """Refuse an --out that cannot be a directory before any work is done."""
    if out is not None:
        for parent in (out, *out.parents):
            if parent.exists() and not parent.is_dir():
                raise OptionError("--out", f"{str(parent)!r} exists and is not a directory")
    return out


def quiet_solver() -> None:
    """Keep the terminal to our own output: the solver's failures reach the user as one
    line through our errors, not as linopy's multi-line warnings; and HiGHS prints a banner on
    its first use in a process straight to file descriptor 1, so that first instance is
    created with the descriptor pointed at /dev/null."""
    import highspy

    logging.getLogger("linopy").setLevel(logging.ERROR)

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)
