"""p2pmarket: peer-to-peer and community-based local electricity markets as one linear program.

>>> import p2pmarket
>>> result = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))
>>> round(result.objective, 3)
28.456
"""

from p2pmarket import cases
from p2pmarket.core.clearing import SolverOptions, clear
from p2pmarket.core.results import ClearingResult, Status, Timings
from p2pmarket.core.scenario import Scenario
from p2pmarket.errors import (
    InfeasibleMarketError,
    P2PMarketError,
    ScenarioError,
    SolverError,
)
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
]
