"""The scenario: validated, immutable description of one market (SPEC C1, section 5).

The schema is data: one pydantic model per element of the scenario file, with the field names
of SPEC section 5. `Scenario.from_dict` validates once; every refusal is a `ScenarioError`
whose message names the field (with peer and community ids instead of list positions) and
the value. Files, CSV references and YAML live at the edge (`p2pmarket.io`), not here.

Time-varying quantities ("series") are a scalar or a tuple of one value per period;
`series(value, periods)` turns either into a float array of length `periods`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from p2pmarket.errors import ScenarioError

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
    "series",
]

DESIGNS = ("p2p", "community", "hybrid")
OBJECTIVES = ("system-cost", "paper")

Design = Literal["p2p", "community", "hybrid"]
ObjectiveKind = Literal["system-cost", "paper"]
Role = Literal["grid", "producer", "prosumer", "consumer"]

Number = float
Series = Number | tuple[Number, ...]
"""A scalar (the same in every period) or one value per period."""

FloatArray = npt.NDArray[np.float64]


class _Schema(BaseModel):
    """Base of every schema element: frozen, strict numbers, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


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

    id: str
    role: Role
    load_kw: Series = 0.0
    generation: Generation | None = None
    export_fee: Series = 0.0
    buy_price_per_kwh: Series | None = None
    storage: Storage | None = None
    flexible_load: tuple[FlexibleBlock, ...] = ()


class Community(_Schema):
    """A community: its members, the fee on trades inside it and its export fee."""

    id: str
    members: tuple[str, ...]
    intra_fee: Series = 0.0
    export_fee: Series | None = None


class CommunityFee(_Schema):
    """A contract: the fee on every sale from community `from` to community `to`."""

    from_: str = Field(alias="from")
    to: str
    fee: Series


class Scenario(_Schema):
    """A validated market scenario. Build it with `Scenario.from_dict` or `load_scenario`."""

    name: str = "scenario"
    description: str = ""
    currency: str = "USD"
    periods: Annotated[int, Field(ge=1)] = 1
    period_hours: float = 1.0
    design: Design = "p2p"
    objective: ObjectiveKind = "system-cost"
    uniform_fee: Series | None = None
    communities: tuple[Community, ...] = ()
    community_fees: tuple[CommunityFee, ...] = ()
    links: tuple[tuple[str, str], ...] | None = None
    fee_collector: str | None = None
    peers: tuple[Peer, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Validate a scenario given as a dict in the file format of SPEC section 5.

        Raises `ScenarioError` naming the first invalid field and its value.
        """
        if not isinstance(data, Mapping):
            raise ScenarioError("scenario", f"expected a mapping of fields, got {_show(data)}")
        try:
            scenario = cls.model_validate(_tuples(data))
        except ValidationError as exc:
            raise _scenario_error(exc, data) from None
        _check(scenario)
        return scenario

    def to_dict(self) -> dict[str, Any]:
        """The scenario as a plain dict in the file format (round-trips through `from_dict`)."""
        data: dict[str, Any] = _lists(self.model_dump(by_alias=True))
        return data

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some top-level fields changed, validated again (a change given as None
        leaves that field as it is)."""
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not None})
        return Scenario.from_dict(data)

    @property
    def peer_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.peers)

    def community_of(self) -> dict[str, str | None]:
        """Peer id -> id of the community that lists it (None for a peer listed nowhere)."""
        owner: dict[str, str | None] = dict.fromkeys(self.peer_ids)
        for community in self.communities:
            for member in community.members:
                owner[member] = community.id
        return owner


def series(value: Series | None, periods: int, default: float = 0.0) -> FloatArray:
    """A scalar or per-period series as a float array of length `periods`."""
    if value is None:
        return np.full(periods, default)
    if isinstance(value, tuple):
        return np.asarray(value, dtype=float)
    return np.full(periods, float(value))


# --- validation beyond types -----------------------------------------------------------


def _check(s: Scenario) -> None:
    """Cross-field rules; raise ScenarioError on the first one broken."""
    if s.period_hours <= 0:
        raise ScenarioError("period_hours", f"must be positive, got {s.period_hours}")
    if not s.peers:
        raise ScenarioError("peers", "a market needs at least one peer")
    _unique([p.id for p in s.peers], "peers", "peer id")
    _unique([c.id for c in s.communities], "communities", "community id")
    for p in s.peers:
        if not p.id.strip():
            raise ScenarioError("peers[].id", "a peer id cannot be empty")
        if p.id.startswith("manager:"):
            raise ScenarioError(
                f"peers[{p.id}].id", "ids starting with 'manager:' name community manager nodes"
            )
    peer_ids = set(s.peer_ids)
    community_ids = {c.id for c in s.communities}

    _check_series(s.uniform_fee, s.periods, "uniform_fee", minimum=0.0)
    member_of: dict[str, str] = {}
    for c in s.communities:
        where = f"communities[{c.id}]"
        if not c.members:
            raise ScenarioError(f"{where}.members", "a community needs at least one member")
        for member in c.members:
            if member not in peer_ids:
                raise ScenarioError(f"{where}.members", f"unknown peer {member!r}")
            if member in member_of:
                raise ScenarioError(
                    f"{where}.members",
                    f"peer {member!r} is already a member of community {member_of[member]!r}",
                )
            member_of[member] = c.id
        _check_series(c.intra_fee, s.periods, f"{where}.intra_fee", minimum=0.0)
        _check_series(c.export_fee, s.periods, f"{where}.export_fee", minimum=0.0)

    seen_pairs: set[tuple[str, str]] = set()
    for i, cf in enumerate(s.community_fees):
        where = f"community_fees[{i}]"
        for key, cid in (("from", cf.from_), ("to", cf.to)):
            if cid not in community_ids:
                raise ScenarioError(f"{where}.{key}", f"unknown community {cid!r}")
        if cf.from_ == cf.to:
            raise ScenarioError(
                where, f"from and to are both {cf.from_!r}; use the community's intra_fee"
            )
        if (cf.from_, cf.to) in seen_pairs:
            raise ScenarioError(where, f"the pair {cf.from_!r} -> {cf.to!r} is given twice")
        seen_pairs.add((cf.from_, cf.to))
        _check_series(cf.fee, s.periods, f"{where}.fee", minimum=0.0)

    if s.fee_collector is not None and s.fee_collector not in peer_ids:
        raise ScenarioError("fee_collector", f"unknown peer {s.fee_collector!r}")
    if s.links is not None:
        for i, (seller, buyer) in enumerate(s.links):
            for name in (seller, buyer):
                if name not in peer_ids:
                    raise ScenarioError(f"links[{i}]", f"unknown peer {name!r}")
            if seller == buyer:
                raise ScenarioError(f"links[{i}]", f"a peer cannot trade with itself ({seller!r})")

    for p in s.peers:
        _check_peer(p, s.periods)


def _check_peer(p: Peer, periods: int) -> None:
    where = f"peers[{p.id}]"
    _check_series(p.load_kw, periods, f"{where}.load_kw", minimum=0.0)
    _check_series(p.export_fee, periods, f"{where}.export_fee", minimum=0.0)
    g = p.generation
    if g is not None:
        if p.role == "consumer":
            raise ScenarioError(
                f"{where}.generation", "a consumer cannot generate; declare the peer a prosumer"
            )
        _check_series(g.min_kw, periods, f"{where}.generation.min_kw", minimum=0.0)
        _check_series(g.max_kw, periods, f"{where}.generation.max_kw", minimum=0.0)
        _check_series(g.offer_per_kwh, periods, f"{where}.generation.offer_per_kwh")
        low, high = series(g.min_kw, periods), series(g.max_kw, periods)
        bad = np.flatnonzero(low > high)
        if bad.size:
            t = int(bad[0])
            raise ScenarioError(
                f"{where}.generation.min_kw",
                f"{low[t]:g} is greater than max_kw {high[t]:g} (period {t})",
            )
    if p.buy_price_per_kwh is not None:
        if p.role != "grid":
            raise ScenarioError(
                f"{where}.buy_price_per_kwh",
                f"only the grid buys energy at a price, not a {p.role}",
            )
        _check_series(p.buy_price_per_kwh, periods, f"{where}.buy_price_per_kwh")
        buy = series(p.buy_price_per_kwh, periods)
        offer = series(g.offer_per_kwh if g else None, periods, default=np.inf)
        bad = np.flatnonzero(buy > offer)
        if bad.size:
            t = int(bad[0])
            raise ScenarioError(
                f"{where}.buy_price_per_kwh",
                f"{buy[t]:g} exceeds the grid's own offer {offer[t]:g} in period {t}"
                " (the grid would buy its own energy)",
            )
    st = p.storage
    if st is not None:
        if p.role == "consumer":
            raise ScenarioError(
                f"{where}.storage", "a consumer cannot sell stored energy; declare it a prosumer"
            )
        for name in ("capacity_kwh", "power_kw"):
            value = getattr(st, name)
            if value <= 0:
                raise ScenarioError(f"{where}.storage.{name}", f"must be positive, got {value:g}")
        for name in ("charge_efficiency", "discharge_efficiency"):
            value = getattr(st, name)
            if not 0 < value <= 1:
                raise ScenarioError(f"{where}.storage.{name}", f"must be in (0, 1], got {value:g}")
        for name in ("initial_soc", "final_soc"):
            value = getattr(st, name)
            if not 0 <= value <= 1:
                raise ScenarioError(
                    f"{where}.storage.{name}",
                    f"must be a fraction of capacity in [0, 1], got {value:g}",
                )
    for b, block in enumerate(p.flexible_load):
        _check_series(block.max_kw, periods, f"{where}.flexible_load[{b}].max_kw", minimum=0.0)
        _check_series(block.price_per_kwh, periods, f"{where}.flexible_load[{b}].price_per_kwh")


def _check_series(
    value: Series | None, periods: int, field: str, minimum: float | None = None
) -> None:
    if value is None:
        return
    if isinstance(value, tuple) and len(value) != periods:
        raise ScenarioError(
            field, f"{len(value)} values given, expected {periods} (one per period)"
        )
    if minimum is not None:
        values = series(value, periods)
        bad = np.flatnonzero(values < minimum)
        if bad.size:
            t = int(bad[0])
            where = f" in period {t}" if isinstance(value, tuple) else ""
            raise ScenarioError(field, f"must be >= {minimum:g}, got {values[t]:g}{where}")


def _unique(ids: Sequence[str], field: str, what: str) -> None:
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise ScenarioError(field, f"duplicate {what} {repeated[0]!r}")


# --- turning pydantic's errors into one line -------------------------------------------


def _scenario_error(exc: ValidationError, data: Mapping[str, Any]) -> ScenarioError:
    """The first validation error as a ScenarioError with a readable field path."""
    errors = exc.errors(include_url=False)
    # A misspelt key shows as an unknown field and a missing one: name the user's word.
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    errors = unknown or errors
    # A union (scalar | list) reports one error per branch; the deepest one is the most precise
    # ("load_kw[3]: expected a number, got 'a'"), the first of equals the scalar branch's.
    locs = [[part for part in e["loc"] if not _is_union_tag(part)] for e in errors]
    depth = max(len(loc) for loc in locs)
    index = next(i for i, loc in enumerate(locs) if len(loc) == depth)
    first, loc = errors[index], locs[index]
    field = _path(loc, data)
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        return ScenarioError(field, "unknown field (refused, not ignored)")
    if kind == "missing":
        return ScenarioError(field, "required field is missing")
    if kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        return ScenarioError(field, f"{_show(value)} is not one of {expected}")
    kinds = {e["type"] for e in errors}
    if kind in {"int_type", "int_from_float"}:
        return ScenarioError(field, f"expected a whole number, got {_show(value)}")
    if kinds & {"float_type", "int_type", "finite_number"}:
        return ScenarioError(field, f"expected a number, got {_show(value)}")
    if kind == "tuple_type":
        return ScenarioError(field, f"expected a list, got {_show(value)}")
    if kind in {"model_type", "model_attributes_type"}:
        return ScenarioError(field, f"expected a mapping of fields, got {_show(value)}")
    msg = str(first["msg"])
    return ScenarioError(field, f"{msg[0].lower()}{msg[1:]}, got {_show(value)}")


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and (
        part in {"float", "tuple[float, ...]", "int", "str"}
        or part.startswith(("function-", "tuple["))
    )


def _path(loc: Sequence[object], data: Any) -> str:
    """`('peers', 2, 'generation', 'max_kw')` -> `peers[P3].generation.max_kw`."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            label: object = part
            if isinstance(node, Sequence) and not isinstance(node, str) and part < len(node):
                item = node[part]
                if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                    label = item["id"]
                node = item
            else:
                node = None
            out += f"[{label}]"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return out or "scenario"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
