"""The shape of the house: the layers' imports, derived from the source tree, and the pinned
public surface.

The core's modules are not listed by hand: every `.py` under `src/p2pmarket/core/` is parsed
with `ast` and its imports resolved (absolute, relative, `from package import module`), so a
new module is checked the day it lands. Imports under `if TYPE_CHECKING:` count as well: the
core may not even name an outer layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import p2pmarket

PACKAGE_DIR = Path(p2pmarket.__file__).resolve().parent
CORE_DIR = PACKAGE_DIR / "core"
SOLVE_PREFIX = "p2pmarket.core.solve"
API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"

CORE_MAY_IMPORT = ("p2pmarket.core", "p2pmarket.types", "p2pmarket.errors")
"""All of p2pmarket the core may import: itself and the two leaves."""
SOLVER_LIBRARIES = ("linopy", "highspy")
"""Imported only under `p2pmarket.core.solve`."""
PROCESS_MODULES = ("multiprocessing", "concurrent", "subprocess", "threading", "_thread", "socket")
"""The core starts no process, thread or connection: runners do (`p2pmarket.runners`)."""
EDGES = (
    "p2pmarket.io",
    "p2pmarket.cli",
    "p2pmarket.cases",
    "p2pmarket.ledger",
    "p2pmarket.reports",
    "p2pmarket.compare",
    "p2pmarket.paper",
    "p2pmarket.service",
    "p2pmarket.client",
)
EDGE_LIBRARIES = (
    "typer",
    "httpx",
    "rich",
    "matplotlib",
    "fastapi",
    "yaml",
    "cryptography",
    "psycopg",
    "networkx",
)
"""Libraries only the edges use; importing the core loads none of them (linopy brings others)."""


def _is_process_call(name: str) -> bool:
    """`os` functions that start or signal processes."""
    return name in {
        "fork",
        "forkpty",
        "system",
        "popen",
        "posix_spawn",
        "posix_spawnp",
        "startfile",
        "kill",
        "killpg",
    } or name.startswith(("spawn", "exec"))


# --- the checker ---------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One module an import statement names, resolved to its absolute name."""

    module: str
    line: int
    statement: str

    def under(self, *prefixes: str) -> bool:
        return any(self.module == p or self.module.startswith(p + ".") for p in prefixes)


def module_name(path: Path) -> str:
    """`src/p2pmarket/core/solve/lp.py` -> `p2pmarket.core.solve.lp` (a package's
    `__init__.py` -> the package)."""
    parts = path.resolve().relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[Import]:
    """Every module the source's import statements name, wherever they stand (functions,
    `if TYPE_CHECKING:`). `from a import b` names `a.b` (b may be a submodule or an
    attribute: either way it comes from `a`, and `a.b` is under `a`), `from a import *`
    names `a`; relative imports are resolved against `module`."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        text = ast.unparse(node) if isinstance(node, ast.Import | ast.ImportFrom) else ""
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno, text) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                keep = len(package) - (node.level - 1)
                if keep <= 0:
                    raise ValueError(f"{module}: {text!r} goes above the top package")
                base = ".".join([*package[:keep], *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found += [
                Import(base if alias.name == "*" else f"{base}.{alias.name}", node.lineno, text)
                for alias in node.names
            ]
    return found


def _os_process_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """`os.fork()`, `os.system(...)`, `os.spawnv(...)`, ... (also through `import os as o`)."""
    aliases = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "os"
    }
    return [
        (node.lineno, ast.unparse(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and _is_process_call(node.attr)
    ]


def _dynamic_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """`importlib.import_module(...)`, `__import__(...)`: imports this checker cannot see."""
    return [
        (node.lineno, ast.unparse(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in {"__import__", "import_module"})
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        )
    ]


def core_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What `module` (a module of `p2pmarket.core`) breaks of the core's rules, one message
    per offending import or call, naming the module, the line and the statement."""
    problems = []
    for imp in imports_of(source, module, is_package):
        where = f"{module}:{imp.line}: {imp.statement!r}"
        if imp.under("p2pmarket") and not imp.under(*CORE_MAY_IMPORT):
            problems.append(
                f"{where} imports {imp.module}; the core imports only {', '.join(CORE_MAY_IMPORT)}"
            )
        if imp.under(*SOLVER_LIBRARIES) and not module.startswith(SOLVE_PREFIX):
            problems.append(f"{where} imports {imp.module}; only {SOLVE_PREFIX} may use the solver")
        if imp.under(*PROCESS_MODULES):
            problems.append(
                f"{where} imports {imp.module}; the core starts no processes or threads "
                "(runners do)"
            )
        if imp.module.startswith("os.") and _is_process_call(imp.module.split(".")[1]):
            problems.append(f"{where} imports {imp.module}; the core starts no processes")
    tree = ast.parse(source)
    for line, call in _os_process_uses(tree):
        problems.append(f"{module}:{line}: uses {call}; the core starts no processes")
    for line, call in _dynamic_imports(tree):
        problems.append(f"{module}:{line}: dynamic import {call} cannot be checked")
    return problems


def _core_files() -> list[Path]:
    return sorted(CORE_DIR.rglob("*.py"))


CORE_FILES = _core_files()
CORE_MODULES = [module_name(path) for path in CORE_FILES]


# --- the checker catches what it should ------------------------------------------------


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from p2pmarket.io.tables import write_tables\n", "p2pmarket.core.kpis", "p2pmarket.io"),
        ("import p2pmarket.app.run\n", "p2pmarket.core.flows", "p2pmarket.app"),
        ("from p2pmarket import cases\n", "p2pmarket.core.flows", "p2pmarket.cases"),
        ("from p2pmarket import clear\n", "p2pmarket.core.flows", "p2pmarket.clear"),
        ("import p2pmarket\n", "p2pmarket.core.flows", "imports p2pmarket;"),
        ("from p2pmarket import *\n", "p2pmarket.core.flows", "imports p2pmarket;"),
        ("from ...runners import InProcess\n", "p2pmarket.core.solve.lp", "p2pmarket.runners"),
        ("from .. import reports\n", "p2pmarket.core.scenario", "p2pmarket.reports"),
        (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from p2pmarket.ledger import x\n",
            "p2pmarket.core.results",
            "p2pmarket.ledger",
        ),
        ("def f():\n    import linopy\n", "p2pmarket.core.kpis", "only p2pmarket.core.solve"),
        ("from highspy import Highs\n", "p2pmarket.core.horizon", "only p2pmarket.core.solve"),
        ("import multiprocessing.pool\n", "p2pmarket.core.horizon", "multiprocessing"),
        ("from concurrent import futures\n", "p2pmarket.core.horizon", "concurrent.futures"),
        ("import concurrent.futures as cf\n", "p2pmarket.core.horizon", "concurrent.futures"),
        ("import subprocess\n", "p2pmarket.core.horizon", "subprocess"),
        ("from threading import Thread\n", "p2pmarket.core.horizon", "threading"),
        ("import socket\n", "p2pmarket.core.horizon", "socket"),
        ("import os\nos.fork()\n", "p2pmarket.core.horizon", "os.fork"),
        ("import os as o\no.system('ls')\n", "p2pmarket.core.horizon", "o.system"),
        ("import os\nos.spawnv(0, 'x', [])\n", "p2pmarket.core.horizon", "os.spawnv"),
        ("from os import fork\n", "p2pmarket.core.horizon", "os.fork"),
        ("import importlib\nimportlib.import_module('x')\n", "p2pmarket.core.flows", "dynamic"),
    ],
)
def test_checker_flags_forbidden_import(source: str, module: str, expected: str) -> None:
    problems = core_violations(source, module)
    assert problems, f"the checker missed {source!r} in {module}"
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(f"{module}:") for p in problems), problems


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import numpy as np\nfrom p2pmarket.types import Rule\n", "p2pmarket.core.kpis"),
        ("from p2pmarket import errors, types\n", "p2pmarket.core.kpis"),
        ("from .. import results\nfrom .rules import check\n", "p2pmarket.core.scenario.schema"),
        ("import linopy\nfrom linopy.constants import TerminationCondition\n", SOLVE_PREFIX),
        ("import os\nos.path.join('a', 'b')\n", "p2pmarket.core.horizon"),
    ],
)
def test_checker_passes_allowed_import(source: str, module: str) -> None:
    assert core_violations(source, module, is_package=module == SOLVE_PREFIX) == []


def test_relative_imports_resolve() -> None:
    names = {i.module for i in imports_of("from . import a\nfrom ..b import c\n", "x.y.z")}
    assert names == {"x.y.a", "x.b.c"}
    names = {i.module for i in imports_of("from . import a\n", "x.y", is_package=True)}
    assert names == {"x.y.a"}


# --- the core, derived from the tree ----------------------------------------------------


def test_core_modules_are_found() -> None:
    """The walk sees the tree (a guard against checking nothing)."""
    for expected in (
        "p2pmarket.core",
        "p2pmarket.core.scenario.schema",
        "p2pmarket.core.solve.lp",
        "p2pmarket.core.settlement.settle",
        "p2pmarket.core.horizon",
    ):
        assert expected in CORE_MODULES, CORE_MODULES


@pytest.mark.parametrize("path", CORE_FILES, ids=CORE_MODULES)
def test_core_module_imports(path: Path) -> None:
    """No core module imports an outer layer, uses the solver outside `core.solve`, or starts
    processes or threads."""
    module = module_name(path)
    problems = core_violations(path.read_text(), module, path.name == "__init__.py")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("leaf", "may_import"),
    [("p2pmarket.errors", ()), ("p2pmarket.types", ("p2pmarket.errors",))],
)
def test_leaves_import_no_other_layer(leaf: str, may_import: tuple[str, ...]) -> None:
    path = PACKAGE_DIR / f"{leaf.split('.')[-1]}.py"
    wrong = [
        f"{leaf}:{i.line}: {i.statement!r} imports {i.module}"
        for i in imports_of(path.read_text(), leaf)
        if i.under("p2pmarket") and not i.under(*may_import)
    ]
    assert not wrong, "\n".join(wrong)


def test_importing_the_core_loads_no_edge() -> None:
    """At run time too: importing every core module (the derived list) loads no edge of
    p2pmarket and none of the edges' libraries."""
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    missing = set(CORE_MODULES) - set(loaded)
    assert not missing, f"not imported: {sorted(missing)}"
    edges = [m for m in loaded if any(m == e or m.startswith(e + ".") for e in EDGES)]
    assert not edges, f"importing the core loaded edges: {edges}"
    libraries = [m for m in loaded if m.split(".")[0] in EDGE_LIBRARIES]
    assert not libraries, f"importing the core loaded edge libraries: {libraries}"


def test_clear_keeps_no_model() -> None:
    """The linopy model is built inside clear() and discarded; the result holds tables."""
    import linopy

    result = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))
    assert not any(isinstance(v, linopy.Model) for v in vars(result).values())


# --- the public surface -----------------------------------------------------------------

PUBLIC = [
    "Algorithm",
    "CentralisedLP",
    "Clearing",
    "ClearingResult",
    "Clearings",
    "Design",
    "InProcess",
    "InfeasibleMarketError",
    "InputError",
    "Kpis",
    "LedgerError",
    "LedgerIntegrityError",
    "LocalProcesses",
    "MarketError",
    "MarketRun",
    "MissingExtraError",
    "ModelKind",
    "NodeKind",
    "Objective",
    "OptionError",
    "P2PMarketError",
    "PeriodsSolved",
    "Route",
    "Rule",
    "Runner",
    "Scenario",
    "ScenarioError",
    "Settlement",
    "SolverError",
    "SolverOptions",
    "Status",
    "Summary",
    "TimeLimitError",
    "Timings",
    "__version__",
    "cases",
    "clear",
    "dump_scenario",
    "kpis",
    "load_scenario",
    "role_changes",
    "run_market",
    "settle",
    "settle_result",
    "storage_summary",
]


def test_public_surface_is_pinned() -> None:
    assert sorted(PUBLIC) == PUBLIC
    assert list(p2pmarket.__all__) == PUBLIC


def _is_own_submodule(value: object) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__.startswith("p2pmarket.")


def test_every_public_attribute_is_exported() -> None:
    """Whatever `p2pmarket` offers without a leading underscore is in `__all__` (its own
    subpackages aside, except `cases`, which is part of the API)."""
    public = [
        name
        for name, value in vars(p2pmarket).items()
        if not name.startswith("_") and (name == "cases" or not _is_own_submodule(value))
    ]
    unexported = sorted(set(public) - set(p2pmarket.__all__))
    assert not unexported, f"public in p2pmarket but not in __all__: {unexported}"


def test_every_export_resolves_and_is_documented() -> None:
    doc = API_DOC.read_text()
    for name in p2pmarket.__all__:
        assert getattr(p2pmarket, name) is not None, name
    undocumented = [name for name in p2pmarket.__all__ if f"`{name}`" not in doc]
    assert not undocumented, f"not documented in {API_DOC.name}: {undocumented}"
