"""p2pmarket: peer-to-peer and community-based local electricity markets as one linear program.

>>> import p2pmarket
>>> result = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))
>>> round(result.objective, 3)
28.456
"""

import typing as _typing

from p2pmarket.app import Clearings, MarketRun, clear, run_market, settle_result
from p2pmarket.core.analysis import role_changes, storage_summary
from p2pmarket.core.kpis import Kpis, kpis
from p2pmarket.core.results import ClearingResult, Summary, Timings
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.settlement import Settlement, settle
from p2pmarket.core.solve import CentralisedLP, Clearing, SolverOptions
from p2pmarket.errors import (
    InfeasibleMarketError,
    InputError,
    LedgerError,
    LedgerIntegrityError,
    MarketError,
    MissingExtraError,
    OptionError,
    P2PMarketError,
    ScenarioError,
    SolverError,
    TimeLimitError,
)
from p2pmarket.runners import InProcess, LocalProcesses, Runner
from p2pmarket.types import (
    Algorithm,
    Design,
    ModelKind,
    NodeKind,
    Objective,
    PeriodsSolved,
    Route,
    Rule,
    Status,
)

if _typing.TYPE_CHECKING:
    from p2pmarket import cases
    from p2pmarket.io.scenario_files import dump_scenario, load_scenario

__version__ = "0.1.0"

__all__ = [
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


_EDGES = {
    "cases": ("p2pmarket.cases", None),
    "load_scenario": ("p2pmarket.io.scenario_files", "load_scenario"),
    "dump_scenario": ("p2pmarket.io.scenario_files", "dump_scenario"),
    # the edges as modules, so that `p2pmarket.reports` works after `import p2pmarket` alone
    "io": ("p2pmarket.io", None),
    "ledger": ("p2pmarket.ledger", None),
    "reports": ("p2pmarket.reports", None),
    "compare": ("p2pmarket.compare", None),  # old name of p2pmarket.app.compare
    "paper": ("p2pmarket.paper", None),  # old name of p2pmarket.app.paper
}


def __dir__() -> list[str]:
    """What `dir(p2pmarket)` and tab completion show: the names of the API and the edges."""
    return sorted(set(__all__) | set(_EDGES) | {"app", "core", "errors", "runners", "types"})


def __getattr__(name: str) -> _typing.Any:
    """File-reading parts of the API are imported on first use, so that importing the core
    (`p2pmarket.core.*`) never pulls in an edge."""
    if name not in _EDGES:
        raise AttributeError(f"module 'p2pmarket' has no attribute {name!r}")
    import importlib

    module_name, attribute = _EDGES[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
