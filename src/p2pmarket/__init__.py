"""p2pmarket: peer-to-peer and community-based local electricity markets as one linear program.

>>> import p2pmarket
>>> result = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))
>>> round(result.objective, 3)
28.456
"""

from typing import TYPE_CHECKING, Any

from p2pmarket.core.analysis import role_changes, storage_summary
from p2pmarket.core.clearing import SolverOptions, clear
from p2pmarket.core.results import ClearingResult, Status, Timings
from p2pmarket.core.scenario import Scenario
from p2pmarket.errors import (
    InfeasibleMarketError,
    P2PMarketError,
    ScenarioError,
    SolverError,
)

if TYPE_CHECKING:
    from p2pmarket import cases
    from p2pmarket.io.scenario_files import dump_scenario, load_scenario

__version__ = "0.1.0"

__all__ = [
    "ClearingResult",
    "InfeasibleMarketError",
    "P2PMarketError",
    "Scenario",
    "ScenarioError",
    "SolverError",
    "SolverOptions",
    "Status",
    "Timings",
    "__version__",
    "cases",
    "clear",
    "dump_scenario",
    "load_scenario",
    "role_changes",
    "storage_summary",
]


_EDGES = {
    "cases": ("p2pmarket.cases", None),
    "load_scenario": ("p2pmarket.io.scenario_files", "load_scenario"),
    "dump_scenario": ("p2pmarket.io.scenario_files", "dump_scenario"),
}


def __getattr__(name: str) -> Any:
    """File-reading parts of the API are imported on first use, so that importing the core
    (`p2pmarket.core.*`) never pulls in an edge."""
    if name not in _EDGES:
        raise AttributeError(f"module 'p2pmarket' has no attribute {name!r}")
    import importlib

    module_name, attribute = _EDGES[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
