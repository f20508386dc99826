"""The one exception hierarchy of p2pmarket, grouped by cause.

    P2PMarketError
    ├── InputError            the caller's input is wrong: exit code 2, HTTP 4xx
    │   ├── ScenarioError     a scenario field (`.field`, `.value` where one is known)
    │   ├── OptionError       an option of a call or a command (`--design`, `threads`, `--out`)
    │   └── MissingExtraError an optional dependency is not installed (`.extra`, `.package`)
    ├── MarketError           the market cannot be cleared as asked: exit code 1
    │   ├── InfeasibleMarketError  no balance (`.peer`, `.period`, `.reason` where known)
    │   └── SolverError       the solver failed (`.status`)
    │       └── TimeLimitError     it stopped at its time limit (`.time_limit_s`)
    └── LedgerError           the ledger cannot be used as asked: exit code 2
        └── LedgerIntegrityError   it does not verify (`.height`, `.reason`): exit code 1

Every error carries its facts as attributes, so each edge renders them its own way: one line
on a terminal (`p2pmarket.cli`), a JSON body over HTTP. The message (`str(error)`) is one
line that names the field and the value, or the peer and the period.
"""

from __future__ import annotations

__all__ = [
    "InfeasibleMarketError",
    "InputError",
    "LedgerError",
    "LedgerIntegrityError",
    "MarketError",
    "MissingExtraError",
    "OptionError",
    "P2PMarketError",
    "ScenarioError",
    "SolverError",
    "TimeLimitError",
]


class P2PMarketError(Exception):
    """Base class of every error p2pmarket raises on purpose."""


class InputError(P2PMarketError, ValueError):
    """The input is invalid. `field` names what is wrong (a scenario field such as
    `peers[P3].load_kw`, an option such as `--threads`), `detail` says why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.detail = message
        super().__init__(f"{field}: {message}" if field else message)


class ScenarioError(InputError):
    """The scenario is invalid. The message names the field and the value."""


class OptionError(InputError):
    """An option of a call or a command is invalid (design, objective, rule, solver options,
    output locations)."""


class MissingExtraError(InputError):
    """An optional part is used whose package is not installed; the message says how to
    install it (`pip install 'p2pmarket[EXTRA]'`, and `then` a command after it, when one is
    needed)."""

    def __init__(self, feature: str, package: str, extra: str, then: str = "") -> None:
        self.feature = feature
        self.package = package
        self.extra = extra
        super().__init__(
            feature,
            f"needs the optional package {package!r}: pip install 'p2pmarket[{extra}]'"
            + (f" && {then}" if then else ""),
        )


class MarketError(P2PMarketError):
    """The market cannot be cleared as asked."""


class InfeasibleMarketError(MarketError):
    """No dispatch balances every peer. `peer` and `period` name the first that cannot be
    balanced (None when the solver gives no location) and `reason` says why."""

    def __init__(
        self,
        message: str,
        *,
        peer: str | None = None,
        period: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.peer = peer
        self.period = period
        self.reason = reason
        super().__init__(message)


class SolverError(MarketError):
    """The solver failed or stopped before proving optimality; `status` is its termination
    condition (None when it raised before reporting one)."""

    def __init__(self, message: str, *, status: str | None = None) -> None:
        self.status = status
        super().__init__(message)


class TimeLimitError(SolverError):
    """The solver reached its time limit before proving the market's optimum."""

    def __init__(self, time_limit_s: float | None) -> None:
        self.time_limit_s = time_limit_s
        super().__init__(
            f"the solver reached its time limit ({time_limit_s} s) before proving the market's "
            "optimum; allow more time or a smaller market",
            status="time_limit",  # Status.TIME_LIMIT
        )


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
