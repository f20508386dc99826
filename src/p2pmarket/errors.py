"""The one exception hierarchy of p2pmarket.

Every failure that a user can cause or meet is one of these; the command line turns each
into a single line and an exit code (2 for invalid input, 1 for a market that cannot be
cleared).
"""

from __future__ import annotations

__all__ = [
    "InfeasibleMarketError",
    "P2PMarketError",
    "ScenarioError",
    "SolverError",
]


class P2PMarketError(Exception):
    """Base class of every error p2pmarket raises on purpose."""


class ScenarioError(P2PMarketError, ValueError):
    """The scenario is invalid. The message names the field and the value."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.detail = message
        super().__init__(f"{field}: {message}" if field else message)


class InfeasibleMarketError(P2PMarketError):
    """No dispatch balances every peer; the message says which peer, period and why."""


class SolverError(P2PMarketError):
    """The solver failed or stopped before proving optimality (time limit, numerical trouble)."""
