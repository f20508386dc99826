"""The one exception hierarchy of p2pmarket.

Every failure that a user can cause or meet is one of these; the command line turns each
into a single line and an exit code (2 for invalid input, 1 for a market that cannot be
cleared or a ledger that does not verify).
"""

from __future__ import annotations

__all__ = [
    "InfeasibleMarketError",
    "LedgerError",
    "LedgerIntegrityError",
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


class LedgerError(P2PMarketError):
    """The ledger cannot be used as asked: a bad URL or key file, an unreachable or unreadable
    store, an append with a key other than the ledger's."""


class LedgerIntegrityError(LedgerError):
    """The ledger does not verify. `height` is the first block that fails (None when no block
    can be named) and `reason` says why, as one of `p2pmarket.ledger.Reason`'s values."""

    def __init__(self, height: int | None, reason: str, message: str) -> None:
        self.height = height
        self.reason = reason
        self.detail = message
        where = f"block {height}" if height is not None else "ledger"
        super().__init__(f"{where}: {reason}: {message}")
