"""What the market service reads from a request body, validated once at the edge.

Every body is parsed by `parse_body`: strict JSON (a key given twice, `NaN` and `Infinity`
are refused), then a strict pydantic model (no unknown field, no `"1"` for a number, no
`true` for a period). Every refusal is an `InputError` whose `field` names the place
(`offer.max_kw.2`, `gate_closure`, `body`), so the service answers 422 with
`{"field": ..., "detail": ...}`.

Applying an order to a market's template (`apply_orders`) goes through
`Scenario.from_dict`, so an order the scenario's rules refuse (a list of the wrong length,
a negative power, a generation offer below its minimum) is refused with the scenario's field
(`peers[P3].generation.max_kw`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from p2pmarket.core.scenario import Scenario
from p2pmarket.errors import InputError

__all__ = [
    "Bid",
    "Clearing",
    "FlexibleBid",
    "MarketCreate",
    "Offer",
    "Order",
    "Reading",
    "Readings",
    "apply_orders",
    "check_order",
    "gate_closure_iso",
    "parse_body",
]


class _Body(BaseModel):
    """Base of every request body: frozen, strict, unknown fields refused, finite numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class Clearing(_Body):
    """How a market is cleared: its design (default: the scenario's), objective and
    settlement rule, by their names as `p2pmarket run` takes them."""

    design: Literal["p2p", "community", "hybrid"] | None = None
    objective: Literal["system-cost", "paper"] | None = None
    rule: Literal["marginal", "pay-as-offer", "mid-market"] = "marginal"

    def options(self) -> dict[str, str]:
        """The choices made, as `run_market`'s keywords."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class MarketCreate(_Body):
    """`POST /v1/markets`: a scenario template (the file format, as `Scenario.from_dict` takes
    it; the members are its peers but the grid), the gate closure, ISO-8601 with a zone, and
    how the market is cleared (optional)."""

    scenario: dict[str, Any]
    gate_closure: AwareDatetime = Field(strict=False)
    clearing: Clearing | None = None


class Offer(_Body):
    """A member's generation offer: the most it may generate in each period (kW) and its
    price (currency per kWh; one value, or one per period)."""

    max_kw: list[float] = Field(min_length=1)
    offer_per_kwh: float | list[float]


class FlexibleBid(_Body):
    """A block of flexible demand: served, up to `max_kw` in each period, only when energy
    costs at most `price_per_kwh` (one value, or one per period)."""

    max_kw: list[float] = Field(min_length=1)
    price_per_kwh: float | list[float]


class Bid(_Body):
    """A member's demand: its load forecast in each period (kW) and its flexible blocks
    (each replaces the template's blocks when given; `[]` takes them away)."""

    load_kw: list[float] | None = Field(default=None, min_length=1)
    flexible: list[FlexibleBid] | None = Field(default=None, max_length=24)

    @model_validator(mode="after")
    def _something(self) -> Bid:
        if self.load_kw is None and self.flexible is None:
            raise ValueError("a bid needs a load forecast (load_kw), flexible blocks, or both")
        return self


class Order(_Body):
    """`PUT /v1/markets/{id}/orders/{member}`: an offer, a bid, or both. A part not given
    keeps the template's value; a new order replaces the previous one as a whole."""

    offer: Offer | None = None
    bid: Bid | None = None

    @model_validator(mode="after")
    def _something(self) -> Order:
        if self.offer is None and self.bid is None:
            raise ValueError("an order needs an offer, a bid or both")
        return self


class Reading(_Body):
    """One meter reading of the member: metered net energy over a period (kWh; positive =
    drawn from the network), period 0-based."""

    period: int = Field(ge=0)
    net_kwh: float


class Readings(_Body):
    """`PUT /v1/markets/{id}/readings/{member}`: the member's readings, one per period."""

    readings: list[Reading] = Field(min_length=1)


_M = TypeVar("_M", bound=_Body)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key[:40]!r} is given twice")
        result[key] = value
    return result


def _field(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a dotted field; union branches (`list[float]`) are dropped."""
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p == "float"))]
    return ".".join(parts) or "body"


def parse_body(model: type[_M], body: bytes) -> _M:
    """`body` (UTF-8 JSON) as `model`, or an `InputError` naming the field at fault."""
    try:
        data = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_refuse_constant,
        )
    except UnicodeDecodeError:
        raise InputError("body", "is not UTF-8") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise InputError("body", f"is not valid JSON: {str(exc)[:120]}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise InputError(_field(tuple(first["loc"])), first["msg"]) from None


def apply_orders(template: Mapping[str, Any], orders: Mapping[str, Order]) -> Scenario:
    """The scenario of `template` with each member's order applied: a bid sets the member's
    `load_kw` and, when it has blocks, its `flexible_load`; an offer sets its
    `generation.max_kw` and `generation.offer_per_kwh` (its `min_kw` stays the template's, 0
    when it has none). Validated as any scenario is."""
    data = copy.deepcopy(dict(template))
    for peer in data["peers"]:
        order = orders.get(peer["id"])
        if order is None:
            continue
        if order.bid is not None and order.bid.load_kw is not None:
            peer["load_kw"] = list(order.bid.load_kw)
        if order.bid is not None and order.bid.flexible is not None:
            peer["flexible_load"] = [
                {"max_kw": list(b.max_kw), "price_per_kwh": b.price_per_kwh}
                for b in order.bid.flexible
            ]
        if order.offer is not None:
            generation = dict(peer.get("generation") or {})
            generation["max_kw"] = list(order.offer.max_kw)
            price = order.offer.offer_per_kwh
            generation["offer_per_kwh"] = list(price) if isinstance(price, list) else price
            peer["generation"] = generation
    return Scenario.from_dict(data)


def check_order(template: Mapping[str, Any], member: str, order: Order) -> None:
    """Refuse, as `apply_orders` would, an order the scenario's rules refuse: checked on the
    member's own peer (with the grid, without the communities, links and other members that
    only the clearing needs), so a member's order costs the same in a market of 5 members
    and of 1,000."""
    peers = [p for p in template["peers"] if p["id"] == member or p.get("role") == "grid"]
    mine = {
        k: v
        for k, v in template.items()
        if k not in ("peers", "communities", "community_fees", "links", "fee_collector")
    }
    mine.update(peers=peers, design="p2p")
    apply_orders(mine, {member: order})


def gate_closure_iso(moment: datetime) -> str:
    """`moment` in UTC, ISO-8601 (`2026-05-04T12:00:00+00:00`)."""
    return moment.astimezone(UTC).isoformat()
