"""The scenario's schema: one frozen pydantic model per element of the scenario file, with the
field names of SPEC section 5.

A `Scenario` is valid however it is built: `Scenario.from_dict(data)`, `Scenario(...)` with
its fields, or `scenario.replace(...)` all run the same checks (types here, cross-field
rules in `p2pmarket.core.scenario.rules`) and refuse with one `ScenarioError` naming the
field (with peer and community ids instead of list positions) and the value. Files, CSV
references and YAML live at the edge (`p2pmarket.io`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from p2pmarket.core.scenario.feeder import FeederSection, check_feeder_peers
from p2pmarket.core.scenario.limits import (
    DEFAULT_LIMITS,
    MAX_DESCRIPTION_CHARS,
    MAX_TEXT_CHARS,
    Limits,
)
from p2pmarket.core.scenario.messages import scenario_error, show
from p2pmarket.core.scenario.rules import check, check_size
from p2pmarket.core.scenario.series import Series
from p2pmarket.core.scenario.shape import check_shape
from p2pmarket.errors import ScenarioError
from p2pmarket.types import Design, Objective

__all__ = [
    "DESIGNS",
    "OBJECTIVES",
    "Community",
    "CommunityFee",
    "FlexibleBlock",
    "Generation",
    "Peer",
    "Scenario",
    "Storage",
]

DESIGNS: tuple[str, ...] = tuple(Design)
OBJECTIVES: tuple[str, ...] = tuple(Objective)

# The file format holds plain strings; `p2pmarket.types` has the same values as enums.
DesignName = Literal["p2p", "community", "hybrid"]
ObjectiveName = Literal["system-cost", "paper"]
Role = Literal["grid", "producer", "prosumer", "consumer"]
# Ids, names and other short text; the description (docs/scenario-limits.md, "Structure").
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
LongText = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS)]


class _Schema(BaseModel):
    """Base of every schema element: frozen, strict numbers, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        """Build and validate from fields; refuses with a `ScenarioError` naming the field."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise scenario_error(exc, data, type(self)) from None

    # Validation (`model_validate`, and every part inside a scenario) goes straight to
    # pydantic, not through this `__init__`: it keeps its context (the size limits of
    # `Scenario.from_dict`) and reports every error from the scenario's root.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class Generation(_Schema):
    """Generation bounds (kW) and offer price ($/kWh) of a peer (paper Eq. 2)."""

    min_kw: Series = 0.0
    max_kw: Series
    offer_per_kwh: Series = 0.0


class Storage(_Schema):
    """A battery: state of charge as a fraction of capacity; efficiencies in (0, 1]."""

    capacity_kwh: float
    power_kw: float
    charge_efficiency: float = 1.0
    discharge_efficiency: float = 1.0
    initial_soc: float = 0.0
    final_soc: float = 0.0


class FlexibleBlock(_Schema):
    """A block of flexible demand, served only when energy costs at most its price."""

    max_kw: Series
    price_per_kwh: Series


class Peer(_Schema):
    """One market participant; the grid is a peer with role `grid`."""

    id: Text
    role: Role
    load_kw: Series = 0.0
    generation: Generation | None = None
    export_fee: Series = 0.0
    buy_price_per_kwh: Series | None = None
    storage: Storage | None = None
    flexible_load: tuple[FlexibleBlock, ...] = ()


class Community(_Schema):
    """A community: its members, the fee on trades inside it and its export fee."""

    id: Text
    members: tuple[Text, ...]
    intra_fee: Series = 0.0
    export_fee: Series | None = None


class CommunityFee(_Schema):
    """A contract: the fee on every sale from community `from` to community `to`."""

    from_: Text = Field(alias="from")
    to: Text
    fee: Series


class Scenario(_Schema):
    """A validated market scenario. Build it with `Scenario.from_dict` or `load_scenario`."""

    name: Text = "scenario"
    description: LongText = ""
    currency: Text = "USD"
    periods: Annotated[int, Field(ge=1)] = 1
    period_hours: float = 1.0
    design: DesignName = "p2p"
    objective: ObjectiveName = "system-cost"
    uniform_fee: Series | None = None
    communities: tuple[Community, ...] = ()
    community_fees: tuple[CommunityFee, ...] = ()
    links: tuple[tuple[Text, Text], ...] | None = None
    fee_collector: Text | None = None
    peers: tuple[Peer, ...]
    feeder: FeederSection | None = None
    """The physical grid under the market (SPEC C12, docs/feeder.md); None: no grid limits."""

    @model_validator(mode="before")
    @classmethod
    def _size_limits(cls, data: Any, info: ValidationInfo) -> Any:
        """Refuse an oversized scenario before any field is validated (docs/scenario-limits.md):
        limits from the validation context (`from_dict(limits=...)`), else the defaults."""
        if isinstance(data, Mapping):
            context = info.context if isinstance(info.context, Mapping) else {}
            limits = context.get("limits") or DEFAULT_LIMITS
            check_size(data.get("periods", 1), data.get("peers"), limits, data.get("communities"))
        return data

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        check(self)
        check_feeder_peers(self)
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, limits: Limits | None = None) -> Self:
        """Validate a scenario given as a dict in the file format of SPEC section 5.

        `limits` are the size limits (default `Limits()`: 100,000 periods, 10,000,000
        peer-periods, 100,000 peers; docs/scenario-limits.md). Raises `ScenarioError` naming
        the first invalid field and its value. A `{csv: FILE, column: NAME}` reference is
        refused here: the core reads no file (`p2pmarket.io.scenario_files` does).
        """
        if not isinstance(data, Mapping):
            raise ScenarioError("scenario", f"expected a mapping of fields, got {show(data)}")
        # The size and the structure come first: nothing below may cost more than the
        # scenario's own size, nor recurse deeper than it may nest.
        check_size(
            data.get("periods", 1), data.get("peers"), limits or DEFAULT_LIMITS,
            data.get("communities"),
        )  # fmt: skip
        check_shape(data)
        try:
            return cls.model_validate(_tuples(data), context={"limits": limits})
        except ValidationError as exc:
            raise scenario_error(exc, data, cls) from None

    def to_dict(self) -> dict[str, Any]:
        """The scenario as a plain dict in the file format (round-trips through `from_dict`)."""
        data: dict[str, Any] = _lists(self.model_dump(by_alias=True))
        if data.get("feeder") is None:  # a scenario without a feeder keeps its file and hash
            data.pop("feeder", None)
        return data

    def replace(self, *, limits: Limits | None = None, **changes: Any) -> Scenario:
        """A copy with some top-level fields changed, validated again (a change given as None
        leaves that field as it is). The size limits are `limits` (default `Limits()`),
        widened to this scenario's own size: what was accepted once stays accepted."""
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not None})
        allowed = (limits or DEFAULT_LIMITS).widened_to(self.periods, len(self.peers))
        return Scenario.from_dict(data, limits=allowed)

    @property
    def peer_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.peers)

    @property
    def grid_ids(self) -> tuple[str, ...]:
        """Ids of the peers of role `grid`, in scenario order."""
        return tuple(p.id for p in self.peers if p.role == "grid")

    def community_of(self) -> dict[str, str | None]:
        """Peer id -> id of the community that lists it (None for a peer listed nowhere)."""
        owner: dict[str, str | None] = dict.fromkeys(self.peer_ids)
        for community in self.communities:
            for member in community.members:
                owner[member] = community.id
        return owner


def _tuples(value: Any) -> Any:
    """Lists -> tuples, recursively, so that the frozen models hold immutable sequences."""
    if isinstance(value, Mapping):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value
