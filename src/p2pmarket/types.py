"""The market's vocabulary as enums: every choice a user or a caller makes, and every role a
node plays, is one of these values, never a free string nor a prefix of a name.

They are `StrEnum`s, so each member compares equal to its value (`Design.P2P == "p2p"`),
serialises as that value, and the command line lists them in `--help`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from p2pmarket.errors import OptionError

__all__ = [
    "Algorithm",
    "Design",
    "ModelKind",
    "NodeKind",
    "Objective",
    "PeriodsSolved",
    "Route",
    "Rule",
]


class Design(StrEnum):
    """Market design (SPEC C2)."""

    P2P = "p2p"
    """Direct bilateral trades between any allowed pair of peers."""
    COMMUNITY = "community"
    """Members trade with their community's manager; managers with each other and the grid."""
    HYBRID = "hybrid"
    """Both route sets at once."""


class Objective(StrEnum):
    """What the clearing minimises (SPEC section 3)."""

    SYSTEM_COST = "system-cost"
    PAPER = "paper"
    """The paper's Eq. 1 accounting, kept for reproduction."""


class Rule(StrEnum):
    """Settlement rule: the energy price a seller receives (SPEC C4)."""

    MARGINAL = "marginal"
    PAY_AS_OFFER = "pay-as-offer"
    MID_MARKET = "mid-market"


class Route(StrEnum):
    """Kind of a trade link."""

    P2P = "p2p"
    MEMBER_MANAGER = "member-manager"
    MANAGER_MEMBER = "manager-member"
    MANAGER_MANAGER = "manager-manager"
    PEER_HUB = "peer-hub"
    HUB_PEER = "hub-peer"
    HUB_HUB = "hub-hub"
    VIA_MANAGER = "via-manager"
    """A settled bilateral trade whose energy passed through community managers."""


class NodeKind(StrEnum):
    """What a node of the trade network is. Told apart by this field, never by its name: a
    peer id may be any string, `manager:C1` and `hub:x` included."""

    PEER = "peer"
    MANAGER = "manager"
    """A community manager (designs `community` and `hybrid`): inflow = outflow."""
    HUB = "hub"
    """A fee hub of the reduced p2p model; never appears in a result."""


class ModelKind(StrEnum):
    """Which LP was built for the p2p links."""

    EXPLICIT = "explicit"
    """A variable per allowed link."""
    HUBS = "hubs"
    """The exact reduced model through fee hubs (`p2pmarket.core.designs.hubs`)."""


class PeriodsSolved(StrEnum):
    """How the horizon was solved."""

    TOGETHER = "together"
    ONE_BY_ONE = "one by one"
    ROLLING = "rolling windows"
    """Consecutive windows, each with a look-ahead, storage carried from one to the next."""


class Algorithm(StrEnum):
    """HiGHS's `solver` option."""

    CHOOSE = "choose"
    SIMPLEX = "simplex"
    IPM = "ipm"
    PDLP = "pdlp"


class Status(StrEnum):
    """Outcome of a clearing. A `ClearingResult` is always `optimal`: every other outcome is
    raised as an error whose `status` is one of these (`InfeasibleMarketError`,
    `TimeLimitError`, `SolverError`)."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    TIME_LIMIT = "time_limit"
    SOLVER_FAILED = "solver_failed"


E = TypeVar("E", bound=StrEnum)


def parse(kind: type[E], value: object, field: str) -> E:
    """`value` as a member of the enum `kind`, or an `OptionError` naming `field` and listing
    the allowed values."""
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(v) for v in kind)
        raise OptionError(field, f"{value!r} is not one of {allowed}") from None
