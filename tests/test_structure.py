"""The shape of the house: the core imports no edge, and the public surface is pinned."""

from __future__ import annotations

import subprocess
import sys

import p2pmarket

CORE = [
    "p2pmarket.core.scenario",
    "p2pmarket.core.network",
    "p2pmarket.core.model",
    "p2pmarket.core.clearing",
    "p2pmarket.core.results",
    "p2pmarket.core.analysis",
    "p2pmarket.core.flows",
    "p2pmarket.core.settlement",
    "p2pmarket.core.kpis",
    "p2pmarket.core.hubs",
    "p2pmarket.core.periods",
    "p2pmarket.core.options",
]
EDGES = (
    "p2pmarket.io",
    "p2pmarket.cli",
    "p2pmarket.cases",
    "p2pmarket.paper",
    "p2pmarket.compare",
    "p2pmarket.ledger",
    "p2pmarket.reports",
)


def test_core_imports_no_edge() -> None:
    code = (
        "import sys\n"
        f"for name in {CORE!r}: __import__(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    p2p_modules = [m for m in loaded if m.startswith("p2pmarket")]
    assert not [m for m in p2p_modules if m.startswith(EDGES)], p2p_modules
    # Our own edges' libraries stay out of the core as well (linopy may pull others in).
    assert "typer" not in loaded


def test_public_surface_is_pinned() -> None:
    assert sorted(p2pmarket.__all__) == sorted(
        [
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
    )
    for name in p2pmarket.__all__:
        assert getattr(p2pmarket, name) is not None


def test_clear_keeps_no_model() -> None:
    """The linopy model is built inside clear() and discarded; the result holds tables."""
    import linopy

    result = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))
    assert not any(isinstance(v, linopy.Model) for v in vars(result).values())
