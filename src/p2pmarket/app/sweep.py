"""Sweeps (SPEC C10, issue 14): a market cleared for every combination of parameters, one
row per combination ("variant") in one tidy table.

- The **base** is a `Scenario` (a file or a built-in case, read by the caller), or a
  `Generator`: a scenario generator by name and its fixed keyword arguments
  (`community:households=50,hours=168,seed=1` is `p2pmarket.generate.community`). A
  generator runs inside the task that clears the variant: only its arguments travel.
- The **grid** maps each swept parameter to its values; the variants are their Cartesian
  product, in the order of the grid. Parameters (`PARAMETERS`): the clearing options
  `design`, `objective` and `rule` (applied to `run_market`), the scenario-level number
  `uniform_fee`, and for a generator its keyword arguments (`households`, `pv_share`,
  `battery_share`, `seed`, `hours`, `year`, `weather_zone`). An unknown parameter or a bad
  value is an `OptionError` naming the grid and the value, before any work (a generator's
  own `check_arguments`, where it has one, is asked about every combination).
- Each variant is one job for a runner (`p2pmarket.runners`; `DaskRunner` on a cluster),
  solved with one HiGHS thread so that workers do not fight for cores. It returns its row:
  the parameters, `status` (`ok` or `failed`), the objective, the KPIs, the total of the
  bills' savings, its run time, and for a failed variant its `error` (one line). A variant
  that raises (an infeasible market, a solver failure, a bad generated scenario, any
  `Exception`) is a failed row; it never stops the sweep (`TABLE_COLUMNS` lists the columns).
- A **journal** (`Journal`: JSON lines) receives each row the moment it arrives. A sweep
  given a journal that already holds rows skips those variants: an interrupted sweep
  restarted with the same journal redoes only what is missing. A variant is known by its
  `key`: a hash of the base (the scenario's content, or the generator and its arguments),
  of its parameters, of the solver options that change results and of p2pmarket's version.
  A task lost to the cluster (its worker died, `KilledWorker`) is a failed row in the table
  but is not journaled, so that a restart tries it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import importlib
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from p2pmarket.app.run import MarketRun, run_market
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.scenario.limits import MAX_PRICE_PER_KWH
from p2pmarket.core.solve import SolverOptions
from p2pmarket.errors import (
    InfeasibleMarketError,
    InputError,
    OptionError,
    P2PMarketError,
    SolverError,
)
from p2pmarket.runners import InProcess, Runner
from p2pmarket.types import Design, Objective, Rule

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "GENERATORS",
    "MAX_VARIANTS",
    "PARAMETERS",
    "TABLE_COLUMNS",
    "Generator",
    "Journal",
    "Parameter",
    "SweepPlan",
    "Variant",
    "build_scenario",
    "parse_grid",
    "plan_sweep",
    "run_sweep",
    "run_variant",
    "sweep",
]

Value = int | float | str
"""A parameter's value: a whole number, a number or one of a set of words."""

MAX_VARIANTS = 100_000
"""The most variants one sweep may have (a grid is a product: it grows fast)."""
ERROR_CHARACTERS = 500
"""A failed variant's `error` is cut to this many characters."""


@dataclass(frozen=True)
class Parameter:
    """A parameter that a sweep may vary: what it applies to (`clearing`: an argument of
    `run_market`; `scenario`: a field of the scenario, set with `Scenario.replace`;
    `generator`: a keyword argument of the generator), its kind and range, and the column
    of the table that holds it."""

    name: str
    applies_to: Literal["clearing", "scenario", "generator"]
    kind: Literal["int", "float", "choice"]
    low: float = -math.inf
    high: float = math.inf
    choices: tuple[str, ...] = ()
    column: str = ""

    @property
    def column_name(self) -> str:
        return self.column or self.name

    def value(self, raw: object) -> Value:
        """`raw` (a Python value, or text as the command line gives it) as this parameter's
        value; `ValueError` saying what is allowed."""
        if self.kind == "choice":
            if not isinstance(raw, str) or raw not in self.choices:
                raise ValueError(f"is not one of {', '.join(self.choices)}")
            return str(raw)
        number: int | float
        if self.kind == "int":
            number = _whole(raw)
            allowed = f"a whole number from {self.low:g} to {self.high:g}"
        else:
            number = _finite(raw)
            allowed = f"a number from {self.low:g} to {self.high:g}"
        if not self.low <= number <= self.high:
            raise ValueError(f"must be {allowed}")
        return number


def _whole(raw: object) -> int:
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return int(raw)
    raise ValueError("must be a whole number")


def _finite(raw: object) -> float:
    if isinstance(raw, str):
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        number = float(raw)
    else:
        raise ValueError("must be a number")
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number + 0.0  # -0.0 is 0.0: one value, one key


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("design", "clearing", "choice", choices=tuple(Design)),
        Parameter(
            "objective", "clearing", "choice", choices=tuple(Objective), column="objective_kind"
        ),
        Parameter("rule", "clearing", "choice", choices=tuple(Rule)),
        Parameter("uniform_fee", "scenario", "float", low=0.0, high=MAX_PRICE_PER_KWH),
        Parameter("households", "generator", "int", low=1, high=100_000),
        Parameter("pv_share", "generator", "float", low=0.0, high=1.0),
        Parameter("battery_share", "generator", "float", low=0.0, high=1.0),
        Parameter("seed", "generator", "int", low=0, high=2**32 - 1),
        Parameter("hours", "generator", "int", low=1, high=8_784),
        Parameter("year", "generator", "int", low=1901, high=2099),
        Parameter("weather_zone", "generator", "int", low=1, high=15),
    )
}
"""Every parameter a sweep may vary, by name. `objective` is the column `objective_kind`
of the table (`objective` is the objective's value)."""

GENERATORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "community": (
        ("households", "pv_share", "battery_share"),
        ("seed", "hours", "year", "weather_zone"),
    ),
}
"""Scenario generators of `p2pmarket.generate` by name: (required, optional) keyword
arguments, each a `generator` parameter of `PARAMETERS`."""


@dataclass(frozen=True)
class Generator:
    """A scenario generator and its fixed keyword arguments. `function` is the generator
    (default: `p2pmarket.generate.NAME`, imported where it runs); whatever it is, its
    arguments are those of `GENERATORS[name]`."""

    name: str
    arguments: Mapping[str, Value] = field(default_factory=dict)
    function: Callable[..., Scenario] | None = None

    @classmethod
    def parse(cls, spec: str, *, option: str = "base") -> Generator:
        """`NAME` or `NAME:KEY=VALUE,KEY=VALUE` (e.g. `community:households=50,seed=1`);
        `OptionError` naming `option` for an unknown generator, argument or value."""
        name, _, rest = spec.partition(":")
        name = name.strip()
        if name not in GENERATORS:
            raise OptionError(
                option, f"{spec!r}: no generator {name!r}; generators: {', '.join(GENERATORS)}"
            )
        arguments: dict[str, Value] = {}
        for item in (part.strip() for part in rest.split(",")):
            if not item:
                continue
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep:
                raise OptionError(option, f"{spec!r}: {item!r} is not KEY=VALUE")
            if key in arguments:
                raise OptionError(option, f"{spec!r}: {key} is given twice")
            arguments[key] = raw.strip()
        return cls(name, _checked_arguments(name, arguments, option, spec))

    def resolve(self) -> Callable[..., Scenario]:
        """The generator function: `function`, or `p2pmarket.generate.NAME` imported now
        (`ImportError` or `AttributeError` when it is not there)."""
        if self.function is not None:
            return self.function
        found: Any = getattr(importlib.import_module("p2pmarket.generate"), self.name, None)
        if found is None or isinstance(found, ModuleType):  # the package does not export it
            found = getattr(importlib.import_module(f"p2pmarket.generate.{self.name}"), self.name)
        function: Callable[..., Scenario] = found
        return function

    def checker(self) -> Callable[..., object] | None:
        """The generator's own check of its arguments, `check_arguments` beside
        `p2pmarket.generate.NAME` (it raises `OptionError` naming the argument, and does no
        work), or None (a given `function`, or a generator without one)."""
        if self.function is not None:
            return None
        try:
            module = importlib.import_module(f"p2pmarket.generate.{self.name}")
        except ImportError:
            return None
        check: Callable[..., object] | None = getattr(module, "check_arguments", None)
        return check

    def identity(self) -> dict[str, Any]:
        """What the variant keys hash for this base."""
        return {
            "generator": self.name,
            "arguments": dict(sorted(self.arguments.items())),
            "function": _callable_name(self.function)
            if self.function is not None
            else f"p2pmarket.generate.{self.name}",
        }


def _checked_arguments(
    name: str, arguments: Mapping[str, object], option: str, spec: str
) -> dict[str, Value]:
    required, optional = GENERATORS[name]
    checked: dict[str, Value] = {}
    for key, raw in arguments.items():
        if key not in (*required, *optional):
            raise OptionError(
                option,
                f"{spec!r}: {key!r} is not an argument of the generator {name!r}; "
                f"arguments: {', '.join((*required, *optional))}",
            )
        try:
            checked[key] = PARAMETERS[key].value(raw)
        except ValueError as exc:
            raise OptionError(option, f"{spec!r}: {key}={raw!r} {exc}") from None
    return checked


def _callable_name(function: Callable[..., Any]) -> str:
    if isinstance(function, functools.partial):
        keywords = sorted(function.keywords.items())
        return f"partial({_callable_name(function.func)}, {function.args!r}, {keywords!r})"
    module = getattr(function, "__module__", "")
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"


Base = Scenario | Generator


@dataclass(frozen=True)
class Variant:
    """One combination of the grid: its `key` (a hash, module docstring), its `parameters`
    in the order of the grid, the base and the solver options. A job for a runner."""

    key: str
    parameters: tuple[tuple[str, Value], ...]
    base: Base
    options: SolverOptions


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep: the base, the grid (values checked and typed), every variant in the
    order of the grid's product, and the columns of its table."""

    base: Base
    grid: tuple[tuple[str, tuple[Value, ...]], ...]
    variants: tuple[Variant, ...]
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.variants)


# --- the table -------------------------------------------------------------------------

_FLOAT_COLUMNS = (
    "objective",
    "total_cost",
    "social_welfare",
    "fees_collected",
    "traded_inside_kwh",
    "traded_between_kwh",
    "traded_with_grid_kwh",
    "traded_total_kwh",
    "grid_import_kwh",
    "grid_export_kwh",
    "self_sufficiency",
    "self_consumption",
    "savings_total",
    "savings_jain_index",
    "savings_gini",
    "savings",
)
_TEXT_COLUMNS = ("currency", "fee_collector", "baseline_note")
_CLEARING_COLUMNS = ("design", "objective_kind", "rule")
TABLE_COLUMNS = (
    "variant",
    "...parameters",
    *_CLEARING_COLUMNS,
    "status",
    *_FLOAT_COLUMNS,
    *_TEXT_COLUMNS,
    "run_time_s",
    "error",
)
"""The columns of a sweep's table in order; `...parameters` stands for the swept parameters
in the order of the grid (`design`, `objective_kind` and `rule` are there whether swept or
not: what was cleared). docs/sweeps.md says what each holds."""


def _columns(grid: Sequence[tuple[str, Sequence[Value]]]) -> tuple[str, ...]:
    swept = [PARAMETERS[name].column_name for name, _ in grid]
    clearing = [c for c in _CLEARING_COLUMNS if c not in swept]
    rest = TABLE_COLUMNS[TABLE_COLUMNS.index("status") :]
    return ("variant", *swept, *clearing, *rest)


def _table(plan: SweepPlan, rows: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The rows of `plan`'s variants, in its order, with one type per column."""
    records = [rows[v.key] for v in plan.variants]
    table = pd.DataFrame.from_records(records, columns=list(plan.columns))
    types: dict[str, str] = {c: "float64" for c in (*_FLOAT_COLUMNS, "run_time_s")}
    types.update({c: "str" for c in ("variant", *_CLEARING_COLUMNS, "status", *_TEXT_COLUMNS)})
    types["error"] = "str"
    for name, _ in plan.grid:
        p = PARAMETERS[name]
        types[p.column_name] = {"int": "int64", "float": "float64", "choice": "str"}[p.kind]
    return table.astype(types)


# --- planning --------------------------------------------------------------------------


def parse_grid(texts: Sequence[str], *, option: str = "--grid") -> dict[str, list[str]]:
    """`["pv_share=0.2,0.4", "design=p2p,hybrid"]` as `{name: [value, ...]}` (values as text,
    checked by `plan_sweep`); `OptionError` naming `option` and the text for a mistake."""
    grid: dict[str, list[str]] = {}
    for text in texts:
        name, sep, values = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise OptionError(option, f"{text!r} is not NAME=VALUE,VALUE,...")
        if name in grid:
            raise OptionError(option, f"{text!r}: {name} is given twice; give its values once")
        items = [v.strip() for v in values.split(",")]
        if not any(items) or not all(items):
            raise OptionError(option, f"{text!r}: a value is empty")
        grid[name] = items
    return grid


def plan_sweep(
    base: Base,
    grid: Mapping[str, Sequence[object]],
    *,
    options: SolverOptions | None = None,
    option: str = "grid",
) -> SweepPlan:
    """Check the grid against the base and list the variants. `OptionError` naming `option`
    for an unknown parameter, a parameter that does not apply to the base, a bad or repeated
    value, a generator argument missing or given twice, or more than `MAX_VARIANTS`
    variants; for a `Generator` without a `function`, `OptionError` too when
    `p2pmarket.generate` has no such generator. Nothing is cleared."""
    if not isinstance(base, Scenario | Generator):
        raise OptionError("base", f"expected a Scenario or a Generator, got {type(base).__name__}")
    checked: list[tuple[str, tuple[Value, ...]]] = []
    for name, raw_values in grid.items():
        parameter = _parameter(name, base, option)
        if isinstance(raw_values, str) or not isinstance(raw_values, Sequence):
            raw_values = [raw_values]
        if not raw_values:
            raise OptionError(option, f"{name}: no values")
        values: list[Value] = []
        for raw in raw_values:
            try:
                value = parameter.value(raw)
            except ValueError as exc:
                raise OptionError(option, f"{name}={raw!r} {exc}") from None
            if value in values:
                raise OptionError(option, f"{name}={raw!r} is given twice")
            values.append(value)
        if isinstance(base, Generator) and name in base.arguments:
            raise OptionError(
                option,
                f"{name} is set in the generator ({name}={base.arguments[name]!r}) and swept; "
                "give it in one place",
            )
        checked.append((name, tuple(values)))
    if isinstance(base, Generator):
        _check_generator(base, checked, option)
    count = math.prod(len(values) for _, values in checked)
    if count > MAX_VARIANTS:
        raise OptionError(option, f"{count:,} variants; a sweep has at most {MAX_VARIANTS:,}")
    options = _per_variant(options)
    identity = {
        "p2pmarket": _version(),
        "base": _base_identity(base),
        "options": _options_identity(options),
    }
    names = [name for name, _ in checked]
    variants = []
    for combination in itertools.product(*(values for _, values in checked)):
        parameters = tuple(zip(names, combination, strict=True))
        key = _hash({**identity, "parameters": dict(sorted(parameters))})[:16]
        variants.append(Variant(key, parameters, base, options))
    return SweepPlan(base, tuple(checked), tuple(variants), _columns(checked))


def _parameter(name: str, base: Base, option: str) -> Parameter:
    """The parameter `name` if it applies to `base`, else `OptionError` listing those that do."""
    own = GENERATORS[base.name][0] + GENERATORS[base.name][1] if isinstance(base, Generator) else ()
    allowed = [p.name for p in PARAMETERS.values() if p.applies_to != "generator" or p.name in own]
    if name in allowed:
        return PARAMETERS[name]
    if name in PARAMETERS and isinstance(base, Scenario):
        reason = f"{name!r} is an argument of a generator, not a field of a scenario"
    elif isinstance(base, Generator):
        reason = f"{name!r} is not a parameter of a sweep of the generator {base.name!r}"
    else:
        reason = f"{name!r} is not a parameter of a sweep of a scenario"
    raise OptionError(option, f"{reason}; parameters: {', '.join(allowed)}")


def _check_generator(
    base: Generator, grid: Sequence[tuple[str, Sequence[Value]]], option: str
) -> None:
    """Every argument the generator needs is there, it can be loaded, and (where it has a
    check of its own) each combination of its arguments is one it accepts."""
    required, _ = GENERATORS[base.name]
    swept = [(name, values) for name, values in grid if PARAMETERS[name].applies_to == "generator"]
    missing = [a for a in required if a not in base.arguments and a not in dict(swept)]
    if missing:
        raise OptionError(
            option,
            f"the generator {base.name!r} needs {' and '.join(missing)}: set "
            f"{'it' if len(missing) == 1 else 'them'} in the generator "
            f"({base.name}:{missing[0]}=...) or sweep {'it' if len(missing) == 1 else 'them'}",
        )
    try:
        base.resolve()
    except (ImportError, AttributeError) as exc:
        raise OptionError(
            "generator", f"{base.name!r} cannot be loaded from p2pmarket.generate: {exc}"
        ) from None
    check = base.checker()
    if check is None:
        return
    names = [name for name, _ in swept]
    for combination in itertools.product(*(values for _, values in swept)):
        arguments = dict(zip(names, combination, strict=True))
        try:
            check(**base.arguments, **arguments)
        except InputError as exc:
            given = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
            where = f"{given}: " if given else ""
            raise OptionError(option, f"{where}the generator {base.name!r}: {exc}") from None


def _per_variant(options: SolverOptions | None) -> SolverOptions:
    """The options of each variant: one solver thread unless asked otherwise, and the
    periods of a variant solved in its own task (`workers=1`: a task starts no processes)."""
    options = options or SolverOptions()
    return dataclasses.replace(options, threads=options.threads or 1, workers=1)


def _version() -> str:
    from p2pmarket import __version__

    return __version__


def _base_identity(base: Base) -> dict[str, Any]:
    if isinstance(base, Generator):
        return base.identity()
    return {"scenario": _hash(base.to_dict())}


def _options_identity(options: SolverOptions) -> dict[str, Any]:
    """The solver options that can change a variant's row (not threads or logging)."""
    return {
        "solver": options.solver,
        "algorithm": str(options.algorithm),
        "time_limit_s": options.time_limit_s,
        "primal_tolerance": options.primal_tolerance,
        "dual_tolerance": options.dual_tolerance,
        "split_periods": options.split_periods,
        "window": options.window,
        "lookahead": options.lookahead,
        "extra": {k: repr(v) for k, v in sorted(options.extra.items())},
    }


def _hash(data: object) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- one variant (runs where the runner puts it) -----------------------------------------


def build_scenario(base: Base, parameters: Mapping[str, Value]) -> Scenario:
    """The scenario of a variant: the base scenario, or the generator called with its fixed
    and swept arguments; then the swept scenario fields set."""
    if isinstance(base, Generator):
        arguments = {
            **base.arguments,
            **{k: v for k, v in parameters.items() if PARAMETERS[k].applies_to == "generator"},
        }
        scenario = base.resolve()(**arguments)
        if not isinstance(scenario, Scenario):
            raise TypeError(
                f"the generator {base.name!r} returned a {type(scenario).__name__}, not a Scenario"
            )
    else:
        scenario = base
    changes: dict[str, Any] = {
        k: v for k, v in parameters.items() if PARAMETERS[k].applies_to == "scenario"
    }
    return scenario.replace(**changes) if changes else scenario


def run_variant(variant: Variant) -> dict[str, Any]:
    """Build the variant's scenario, clear, settle and compute its KPIs; its row (plain
    values). Any `Exception` is caught and makes a `failed` row with the error."""
    start = time.perf_counter()
    parameters = dict(variant.parameters)
    try:
        scenario = build_scenario(variant.base, parameters)
        run = run_market(
            scenario,
            parameters.get("design"),  # type: ignore[arg-type]  # checked choices
            parameters.get("objective"),  # type: ignore[arg-type]
            str(parameters.get("rule", Rule.MARGINAL)),
            variant.options,
        )
        outcome = _outcome(run)
    except Exception as exc:
        outcome = {"status": "failed", "error": _one_line(exc)}
    return _row(variant, outcome, time.perf_counter() - start)


def _outcome(run: MarketRun) -> dict[str, Any]:
    k = run.kpis.to_dict()
    traded = k.pop("traded_kwh")
    return {
        "design": str(run.result.design),
        "objective_kind": str(run.result.objective_kind),
        "rule": str(k["rule"]),
        "status": "ok",
        **{c: k[c] for c in _FLOAT_COLUMNS if c in k},
        **{f"traded_{part}_kwh": float(value) for part, value in traded.items()},
        "savings": float(run.settlement.bills["savings"].sum()),
        **{c: k[c] or None for c in _TEXT_COLUMNS},  # "" is a missing value in CSV
        "error": None,
    }


def _row(variant: Variant, outcome: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": variant.key}
    row.update({PARAMETERS[name].column_name: value for name, value in variant.parameters})
    row.update({k: v for k, v in outcome.items() if k not in row})
    row["run_time_s"] = seconds
    return row


def _one_line(exc: BaseException) -> str:
    """An error as one line: what kind of failure, then its message."""
    if isinstance(exc, InfeasibleMarketError):
        kind = "infeasible market"
    elif isinstance(exc, SolverError):
        kind = "solver"
    elif isinstance(exc, InputError):
        kind = "invalid input"
    elif isinstance(exc, P2PMarketError):
        kind = "market"
    else:
        kind = type(exc).__name__
    message = " ".join(str(exc).split())
    text = f"{kind}: {message}" if message else kind
    return text if len(text) <= ERROR_CHARACTERS else text[: ERROR_CHARACTERS - 3] + "..."


# --- the journal -----------------------------------------------------------------------


class Journal:
    """The rows of finished variants, one JSON object a line, appended (and flushed to the
    operating system) the moment each arrives: a process killed at any point leaves every
    row it had written, and at most the last line cut short, which is skipped on reading.

    Used as a context manager it holds an exclusive lock on the file (`flock`), so two
    sweeps never write one journal. The file is opened without following a symbolic link
    (docs/security.md); `OptionError` naming `option` when it cannot be used."""

    def __init__(self, path: Path | str, *, option: str = "journal") -> None:
        self.path = Path(path)
        self.option = option
        self._fd: int | None = None

    def __enter__(self) -> Journal:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            reason = (
                "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
            )
            raise OptionError(self.option, f"cannot open {str(self.path)!r}: {reason}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OptionError(
                self.option, f"{str(self.path)!r} is in use by another sweep; wait for it"
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def rows(self) -> dict[str, dict[str, Any]]:
        """The rows in the journal by variant key (a later row of a key wins)."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for line in data.split(b"\n"):
            try:
                row = json.loads(line)
            except ValueError:
                continue  # empty, or cut short by a kill
            if isinstance(row, dict) and isinstance(row.get("variant"), str):
                found[row["variant"]] = row
        return found

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row, as one `write` of a whole line."""
        if self._fd is None:
            raise RuntimeError("Journal.append outside its `with` block")
        line = (json.dumps(dict(row), ensure_ascii=False) + "\n").encode("utf-8")
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # after a line cut short by a kill
        os.write(self._fd, line)

    def remove(self) -> None:
        """Delete the journal file (its sweep's table is written)."""
        self.path.unlink(missing_ok=True)


# --- running ---------------------------------------------------------------------------


def sweep(
    base: Base,
    grid: Mapping[str, Sequence[object]],
    *,
    runner: Runner | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    journal: Path | str | None = None,
    options: SolverOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Clear every combination of `grid` on `base`; the table, one row per variant, in the
    order of the grid's product (module docstring; `TABLE_COLUMNS`).

    Where the variants run (give at most one): `runner` (any `p2pmarket.runners` runner),
    `client` (a `distributed.Client`: its cluster), `scheduler` (the address of a running
    Dask scheduler, `tcp://HOST:PORT`), `workers` (a local Dask cluster of that many
    processes; 1 runs in this process); none: in this process, one after the other.
    `journal`: a file of rows to resume from and to append each new row to (`Journal`).
    `options`: solver options of every variant (one thread unless `threads` is set).
    `on_progress(done, total)` is called at the start and after every variant.

        >>> from p2pmarket import cases
        >>> table = sweep(cases.load("five-peer-case-2"), {"design": ["p2p", "community"]})
        >>> list(table["status"])
        ['ok', 'ok']
    """
    plan = plan_sweep(base, grid, options=options)
    return run_sweep(
        plan,
        runner=runner,
        client=client,
        scheduler=scheduler,
        workers=workers,
        journal=journal,
        on_progress=on_progress,
    )


def run_sweep(
    plan: SweepPlan,
    *,
    runner: Runner | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    journal: Path | str | Journal | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run a planned sweep (`sweep` for the arguments). A `Journal` given as such must be
    open (inside its `with` block); a path is opened here."""
    where = {"runner": runner, "client": client, "scheduler": scheduler, "workers": workers}
    given = [name for name, value in where.items() if value is not None]
    if len(given) > 1:
        raise OptionError(
            given[1], f"give one of runner, client, scheduler or workers, not {' and '.join(given)}"
        )
    with contextlib.ExitStack() as stack:
        book: Journal | None
        if journal is None or isinstance(journal, Journal):
            book = journal
        else:
            book = stack.enter_context(Journal(journal))
        known = book.rows() if book is not None else {}
        rows = {v.key: known[v.key] for v in plan.variants if v.key in known}
        todo = [v for v in plan.variants if v.key not in rows]
        total = len(plan)
        if on_progress is not None:
            on_progress(len(rows), total)
        if todo:
            lost: set[int] = set()

            def lost_task(index: int, exc: BaseException) -> dict[str, Any]:
                lost.add(index)
                outcome = {"status": "failed", "error": "task lost: " + _one_line(exc)}
                return _row(todo[index], outcome, math.nan)

            chosen = stack.enter_context(_runner(runner, client, scheduler, workers))
            for index, row in _outcomes(chosen, todo, lost_task):
                if book is not None and index not in lost:
                    book.append(row)
                rows[todo[index].key] = row
                if on_progress is not None:
                    on_progress(len(rows), total)
        return _table(plan, rows)


@contextmanager
def _runner(
    runner: Runner | None, client: Client | None, scheduler: str | None, workers: int | None
) -> Iterator[Runner]:
    if runner is not None:
        yield runner
        return
    from p2pmarket.runners.dask import DaskRunner, dask_runner

    if client is not None:
        yield DaskRunner(client)
    elif scheduler is not None or (workers is not None and workers != 1):
        with dask_runner(workers=workers, scheduler=scheduler) as dask:
            yield dask
    else:
        yield InProcess()


def _outcomes(
    runner: Runner, todo: Sequence[Variant], on_error: Callable[[int, BaseException], Any]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """`(index, row)` of each variant as it finishes: from the runner's `completed` where it
    has one (`DaskRunner`); one at a time in this process for `InProcess`; else all from
    one `map` (the rows arrive together when it returns)."""
    completed = getattr(runner, "completed", None)
    if callable(completed):
        yield from completed(run_variant, todo, on_error=on_error)
    elif isinstance(runner, InProcess):
        for index, variant in enumerate(todo):
            yield index, run_variant(variant)
    else:
        yield from enumerate(runner.map(run_variant, todo))
