"""The market service over HTTP: members send orders and meter readings, the manager creates
markets and clears them at gate closure (docs/service.md).

`create_app(store, manager_key_id=..., keys=...)` gives a FastAPI application, versioned
under `/v1`, its OpenAPI document at `/openapi.json` and its documentation at `/docs`. It is a
thin edge: clearing and settlement are `p2pmarket.run_market`'s, imbalance is
`settle_imbalance`'s; this module authenticates, authorises, validates and stores.

- Every `/v1` request is signed (`p2pmarket.service.signatures`, docs/service-auth.md); the
  dependency `caller` verifies the signature over the raw request target and body before
  anything else runs, so nothing is parsed for a client that is not authenticated.
- Roles are data: the caller is the manager when its key id is `manager_key_id`, a member of a
  market when its key id is one of the market's members (its peers but the grid).
- Bodies above `max_body_bytes` are refused (413) before the application reads them.
- Errors are JSON `{"error": REASON, "detail": MESSAGE, ...}` with structured fields: an
  `InputError` is 422 with `field`; an infeasible market is 409 with `peer` and `period`.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from p2pmarket.app.run import MarketRun, run_market
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.settlement.imbalance import settle_imbalance
from p2pmarket.errors import InfeasibleMarketError, InputError, MarketError, ScenarioError
from p2pmarket.io.meter_readings import parse_meter_readings
from p2pmarket.service.models import (
    MarketCreate,
    Order,
    Readings,
    apply_orders,
    gate_closure_iso,
    parse_body,
)
from p2pmarket.service.signatures import (
    InMemoryNonceStore,
    NonceStore,
    SignatureError,
    verify_request,
)
from p2pmarket.service.store import MarketRow, ServiceStore

__all__ = ["MAX_BODY_BYTES", "Caller", "ServiceRefusal", "create_app"]

MAX_BODY_BYTES = 1_000_000
"""The largest request body accepted (bytes); a larger one is answered 413."""

Clock = Callable[[], datetime]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ServiceRefusal(Exception):
    """A request the service refuses for what it asks, not for its form: `status` (403, 404,
    409), `reason` a short code, the message the detail."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: its key id, whether it is the manager, and the body's bytes
    as they were verified."""

    key_id: str
    is_manager: bool
    body: bytes


# --- the body size limit ----------------------------------------------------------------


class _BodyLimit:
    """ASGI middleware: reads the whole body of an HTTP request, up to `limit` bytes, before
    the application sees it; a longer one (by Content-Length or as it arrives) is 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        content = json.dumps(
            {"error": "too-large", "detail": f"the body is larger than {self.limit:,} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


# --- JSON of tables -------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A table cell as JSON: numpy numbers as Python's, NaN as null, enums as their value."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return str(value)
    return value


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in table.to_dict("records")]


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


# --- the application --------------------------------------------------------------------


async def caller(request: Request) -> Caller:
    """The FastAPI dependency of every `/v1` route: verifies the request's signature over its
    raw target (percent-encoded as received), its headers (repeated lines joined by ", ") and
    its body's bytes, with the verifier `create_app` put on `app.state`."""
    body = await request.body()
    scope = request.scope
    target = bytes(scope.get("raw_path") or scope["path"].encode("utf-8"))
    query = bytes(scope.get("query_string") or b"")
    path = target.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    headers = {name: ", ".join(request.headers.getlist(name)) for name in set(request.headers)}
    verify: Callable[[str, str, Mapping[str, str], bytes], Caller] = request.app.state.verify
    return verify(request.method, path, headers, body)


Authenticated = Annotated[Caller, Depends(caller)]


def _market_id(template: dict[str, Any], gate_closure: str) -> str:
    """The market's id, from its content: the same template and gate closure, the same id."""
    digest = hashlib.sha256(_dumps({"template": template, "gate_closure": gate_closure}).encode())
    return "m-" + digest.hexdigest()[:20]


def _result_body(market_id: str, run: MarketRun) -> dict[str, Any]:
    billed = run.billed
    return {
        "market_id": market_id,
        "status": str(run.result.status),
        "design": str(run.result.design),
        "objective": str(run.result.objective_kind),
        "rule": str(run.settlement.rule),
        "currency": run.settlement.currency,
        "scenario": run.result.scenario.to_dict(),
        "prices": _records(billed.prices),
        "trades": _records(run.settlement.priced_trades()),
        "bills": _records(run.settlement.bills),
    }


def create_app(
    store: ServiceStore,
    *,
    manager_key_id: str,
    keys: Mapping[str, Ed25519PublicKey],
    clock: Clock = _utc_now,
    signature_clock: Callable[[], float] = time.time,
    nonces: NonceStore | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The market service over `store`. `keys` maps each registered key id (the manager's,
    each member's, a member's key id being its peer id) to its public key; `clock` is the
    market's time (gate closure), `signature_clock` the time signatures are checked against
    (POSIX seconds); `nonces` remembers the nonces of accepted requests (default: in this
    process's memory; several workers need a shared one)."""
    if manager_key_id not in keys:
        raise InputError("manager_key_id", "the manager's key id is not among the keys")
    nonce_store: NonceStore = nonces if nonces is not None else InMemoryNonceStore()
    clear_lock = threading.Lock()
    runs: dict[str, MarketRun] = {}

    app = FastAPI(
        title="p2pmarket market service",
        version="1",
        summary="Orders, clearing at gate closure, bills and imbalance of a local market.",
    )

    @app.exception_handler(SignatureError)
    async def _signature(request: Request, exc: SignatureError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.reason, "detail": str(exc)}
        if exc.field is not None:
            body["field"] = exc.field
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(
            {"error": "invalid", "field": exc.field, "detail": exc.detail}, status_code=422
        )

    @app.exception_handler(InfeasibleMarketError)
    async def _infeasible(request: Request, exc: InfeasibleMarketError) -> JSONResponse:
        return JSONResponse(
            {
                "error": "infeasible",
                "detail": str(exc),
                "peer": exc.peer,
                "period": exc.period,
                "reason": exc.reason,
            },
            status_code=409,
        )

    @app.exception_handler(MarketError)
    async def _market(request: Request, exc: MarketError) -> JSONResponse:
        return JSONResponse({"error": "not-cleared", "detail": str(exc)}, status_code=503)

    @app.exception_handler(ServiceRefusal)
    async def _refused(request: Request, exc: ServiceRefusal) -> JSONResponse:
        return JSONResponse({"error": exc.reason, "detail": str(exc)}, status_code=exc.status)

    def verify(method: str, path: str, headers: Mapping[str, str], body: bytes) -> Caller:
        key_id = verify_request(
            method, path, headers, body, keys=keys, now=signature_clock(), nonces=nonce_store
        )
        return Caller(key_id, key_id == manager_key_id, body)

    app.state.verify = verify

    def manager_only(who: Caller) -> None:
        if not who.is_manager:
            raise ServiceRefusal(403, "forbidden", "only the market's manager may do this")

    def market_of(market_id: str) -> MarketRow:
        market = store.market(market_id)
        if market is None:
            raise ServiceRefusal(404, "not-found", f"no market {market_id[:80]!r}")
        return market

    def member_of(market: MarketRow, member: str) -> None:
        if member not in json.loads(market.members):
            raise ServiceRefusal(404, "not-found", f"{member[:80]!r} is not a member")

    def member_or_manager(who: Caller, market: MarketRow, member: str, *, manager: bool) -> None:
        """The member itself (or, when `manager`, the manager) may; anyone else: 403."""
        if who.key_id == member and not who.is_manager:
            member_of(market, member)
            return
        if manager and who.is_manager:
            member_of(market, member)
            return
        raise ServiceRefusal(403, "forbidden", "a member may act only for itself")

    def closed(market: MarketRow) -> bool:
        return clock() >= datetime.fromisoformat(market.gate_closure)

    def cleared_run(market_id: str) -> tuple[dict[str, Any], MarketRun]:
        """The stored clearing and its `MarketRun` (cleared again from the stored scenario
        after a restart: clearing is deterministic)."""
        stored = store.result(market_id)
        if stored is None:
            raise ServiceRefusal(409, "not-cleared", "the market is not cleared yet")
        result = json.loads(stored.body)
        if market_id not in runs:
            runs[market_id] = run_market(Scenario.from_dict(result["scenario"]))
        return result, runs[market_id]

    @app.post("/v1/markets", status_code=201, openapi_extra=_body("MarketCreate"))
    def create_market(who: Authenticated) -> JSONResponse:
        """Create a market from a scenario template and a gate closure (the manager)."""
        manager_only(who)
        request = parse_body(MarketCreate, who.body)
        try:
            scenario = Scenario.from_dict(request.scenario)
        except ScenarioError as exc:
            raise InputError(f"scenario.{exc.field}", exc.detail) from None
        members = [p.id for p in scenario.peers if p.role != "grid"]
        template = scenario.to_dict()
        gate = gate_closure_iso(request.gate_closure)
        market_id = _market_id(template, gate)
        created = store.create_market(
            MarketRow(market_id, _dumps(template), _dumps(members), gate, clock().isoformat())
        )
        body = {"market_id": market_id, "members": members, "gate_closure": gate}
        return JSONResponse(body, status_code=201 if created else 200)

    @app.put("/v1/markets/{market_id}/orders/{member}", openapi_extra=_body("Order"))
    def put_order(market_id: str, member: str, who: Authenticated) -> dict[str, Any]:
        """Submit the member's order for the day, replacing its previous one (until gate
        closure; after it: 409)."""
        market = market_of(market_id)
        member_or_manager(who, market, member, manager=False)
        if closed(market):
            raise ServiceRefusal(
                409, "gate-closed", f"the gate closed at {market.gate_closure}; no more orders"
            )
        order = parse_body(Order, who.body)
        apply_orders(json.loads(market.template), {member: order})  # refused here, not later
        at = clock().isoformat()
        version = store.add_order(market_id, member, _dumps(order.model_dump()), at)
        return {"market_id": market_id, "member": member, "version": version, "submitted_at": at}

    @app.get("/v1/markets/{market_id}/orders/{member}/history")
    def order_history(market_id: str, member: str, who: Authenticated) -> dict[str, Any]:
        """Every order the member submitted, oldest first (the member or the manager)."""
        market = market_of(market_id)
        member_or_manager(who, market, member, manager=True)
        return {
            "market_id": market_id,
            "member": member,
            "orders": [
                {"version": o.version, "submitted_at": o.submitted_at, "order": json.loads(o.body)}
                for o in store.order_history(market_id, member)
            ],
        }

    @app.post("/v1/markets/{market_id}/clear")
    def clear_market(market_id: str, who: Authenticated) -> dict[str, Any]:
        """Clear the market with each member's latest order (the manager, after gate closure).
        Idempotent: a market is cleared once; later calls return the stored result."""
        manager_only(who)
        market = market_of(market_id)
        if not closed(market):
            raise ServiceRefusal(
                409, "gate-open", f"the gate closes at {market.gate_closure}; clear after it"
            )
        with clear_lock:
            stored = store.result(market_id)
            if stored is not None:
                loaded: dict[str, Any] = json.loads(stored.body)
                return loaded
            orders = {
                member: Order.model_validate_json(row.body)
                for member, row in store.latest_orders(market_id).items()
            }
            scenario = apply_orders(json.loads(market.template), orders)
            run = run_market(scenario)
            body = _result_body(market_id, run)
            store.save_result(market_id, _dumps(body), clock().isoformat())
            runs[market_id] = run
            saved: dict[str, Any] = json.loads(_dumps(body))
            return saved

    @app.get("/v1/markets/{market_id}/members/{member}/bill")
    def bill(market_id: str, member: str, who: Authenticated) -> dict[str, Any]:
        """The member's bill and its trades (the member or the manager)."""
        market = market_of(market_id)
        member_or_manager(who, market, member, manager=True)
        result, _ = cleared_run(market_id)
        (row,) = [b for b in result["bills"] if b["peer"] == member]
        trades = [t for t in result["trades"] if member in (t["seller"], t["buyer"])]
        return {
            "market_id": market_id,
            "member": member,
            "currency": result["currency"],
            "bill": row,
            "trades": trades,
        }

    @app.put("/v1/markets/{market_id}/readings/{member}", openapi_extra=_body("Readings"))
    def put_readings(market_id: str, member: str, who: Authenticated) -> dict[str, Any]:
        """The member's meter readings, one per period (the member, after clearing). Final:
        the same readings again are accepted, other readings are 409."""
        market = market_of(market_id)
        member_or_manager(who, market, member, manager=False)
        result, _ = cleared_run(market_id)
        readings = parse_body(Readings, who.body)
        periods = int(result["scenario"]["periods"])
        table = _readings_table(member, readings)
        given = sorted(int(p) for p in table["period"])
        if given != list(range(periods)):
            raise InputError(
                "readings.period", f"expected one reading for each period 0 to {periods - 1}"
            )
        body = _dumps([r.model_dump() for r in readings.readings])
        saved = store.save_readings(market_id, member, body, clock().isoformat())
        if not saved and store.readings(market_id).get(member) != body:
            raise ServiceRefusal(409, "readings-final", "the member's readings are already stored")
        return {"market_id": market_id, "member": member, "readings": len(readings.readings)}

    @app.get("/v1/markets/{market_id}/members/{member}/imbalance")
    def imbalance(market_id: str, member: str, who: Authenticated) -> dict[str, Any]:
        """The member's bill with its imbalance settled, once every member has readings (the
        member or the manager)."""
        market = market_of(market_id)
        member_or_manager(who, market, member, manager=True)
        _, run = cleared_run(market_id)
        stored = store.readings(market_id)
        missing = [m for m in json.loads(market.members) if m not in stored]
        if missing:
            raise ServiceRefusal(
                409, "readings-missing", f"{len(missing)} member(s) have sent no readings yet"
            )
        table = pd.concat(
            [
                _readings_table(m, Readings.model_validate({"readings": json.loads(body)}))
                for m, body in stored.items()
            ],
            ignore_index=True,
        )
        settled = settle_imbalance(run.billed, run.settlement, table)
        (row,) = _records(settled.bills[settled.bills["peer"] == member])
        lines = _records(settled.lines[settled.lines["peer"] == member])
        return {
            "market_id": market_id,
            "member": member,
            "currency": settled.currency,
            "bill": row,
            "lines": lines,
        }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (MarketCreate, Order, Readings):
                found = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(found.pop("$defs", {}))
                components[model.__name__] = found
            schema["components"]["securitySchemes"] = {
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Signature",
                    "description": "RFC 9421 HTTP Message Signature, Ed25519 (service-auth.md)",
                }
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


def _body(model: str) -> dict[str, Any]:
    """The OpenAPI request body of a route whose body the handler validates itself (after
    the signature is verified, so FastAPI must not parse it first)."""
    schema = {"$ref": f"#/components/schemas/{model}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _readings_table(member: str, readings: Readings) -> pd.DataFrame:
    """The member's readings as `settle_imbalance` takes them, checked row by row as a
    readings file is (`parse_meter_readings`)."""
    rows = [{"peer": member, "period": r.period, "net_kwh": r.net_kwh} for r in readings.readings]
    return parse_meter_readings(json.dumps(rows), format="json", name=f"{member}'s readings")
