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

import asyncio
import functools
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from p2pmarket.app.run import MarketRun, run_market
from p2pmarket.core.scenario import Scenario
from p2pmarket.core.settlement.imbalance import settle_imbalance
from p2pmarket.errors import (
    InfeasibleMarketError,
    InputError,
    LedgerIntegrityError,
    MarketError,
    ScenarioError,
)
from p2pmarket.io.meter_readings import parse_meter_readings
from p2pmarket.service.models import (
    MarketCreate,
    Order,
    Reading,
    Readings,
    apply_orders,
    check_order,
    gate_closure_iso,
    parse_body,
)
from p2pmarket.service.recording import ServiceLedger
from p2pmarket.service.sessions import RateLimiter, SessionTokens, SessionWriteError
from p2pmarket.service.signatures import (
    InMemoryNonceStore,
    NonceStore,
    SignatureError,
    UnknownKeyError,
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


_log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ServiceRefusal(Exception):
    """A request the service refuses for what it asks, not for its form: `status` (403, 404,
    409, 429), `reason` a short code, the message the detail, `headers` to answer with."""

    def __init__(
        self, status: int, reason: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        super().__init__(message)


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: its key id, whether it is the manager, and the body's bytes
    as they were verified."""

    key_id: str
    is_manager: bool
    body: bytes
    content_type: str = "application/json"
    session_expires: float | None = None
    """When the caller came with a session token: when it expires (POSIX seconds)."""


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
    # In a worker thread: the nonce is written to the store, which must not hold up the
    # event loop (every other request waits on it there).
    return await run_in_threadpool(verify, request.method, path, headers, body)


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
        "dispatch": _records(run.result.dispatch),
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
    ledger: ServiceLedger | None = None,
    sessions: SessionTokens | None = None,
    rate_limit: RateLimiter | None = None,
    scheduler_interval: float | None = None,
    event_poll_seconds: float = 0.25,
) -> FastAPI:
    """The market service over `store`. `keys` maps each registered key id (the manager's,
    each member's, a member's key id being its peer id) to its public key; `clock` is the
    market's time (gate closure), `signature_clock` the time signatures and sessions are
    checked against (POSIX seconds); `nonces` remembers the nonces of accepted requests
    (default: in this process's memory; several workers need a shared one).

    `ledger`: where each clearing is recorded (one block per market; None records nothing).
    `sessions`: the session tokens of the dashboard (default: a random secret, 15 minutes).
    `rate_limit`: requests per key id (default 20 per second, bursts of 60).
    `scheduler_interval`: when given, a thread started with the application (its lifespan)
    clears every market whose gate has closed, checking every that many seconds."""
    if manager_key_id not in keys:
        raise InputError("manager_key_id", "the manager's key id is not among the keys")
    nonce_store: NonceStore = nonces if nonces is not None else InMemoryNonceStore()
    tokens = sessions if sessions is not None else SessionTokens(clock=signature_clock)
    limiter = rate_limit if rate_limit is not None else RateLimiter()
    clear_lock = threading.Lock()
    runs: dict[str, MarketRun] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if scheduler_interval is not None:
            thread = threading.Thread(
                target=_schedule, args=(tick, scheduler_interval, stop), daemon=True
            )
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=60)

    app = FastAPI(
        title="p2pmarket market service",
        version="1",
        summary="Orders, clearing at gate closure, bills and imbalance of a local market.",
        lifespan=lifespan,
    )

    @app.exception_handler(SignatureError)
    async def _signature(request: Request, exc: SignatureError) -> JSONResponse:
        body: dict[str, Any] = {"error": exc.reason, "detail": str(exc)}
        if exc.field is not None:
            body["field"] = exc.field
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header")]
        return JSONResponse(
            {
                "error": "invalid",
                "field": ".".join(where) or "request",
                "detail": str(first.get("msg", "is not valid"))[:200],
            },
            status_code=422,
        )

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(
            {"error": "invalid", "field": exc.field, "detail": exc.detail}, status_code=422
        )

    @app.exception_handler(InfeasibleMarketError)
    async def _infeasible(request: Request, exc: InfeasibleMarketError) -> JSONResponse:
        return JSONResponse(_infeasible_body(exc), status_code=409)

    @app.exception_handler(MarketError)
    async def _market(request: Request, exc: MarketError) -> JSONResponse:
        return JSONResponse({"error": "not-cleared", "detail": str(exc)}, status_code=503)

    @app.exception_handler(LedgerIntegrityError)
    async def _ledger(request: Request, exc: LedgerIntegrityError) -> JSONResponse:
        return JSONResponse({"error": "ledger", "detail": str(exc)}, status_code=503)

    @app.exception_handler(ServiceRefusal)
    async def _refused(request: Request, exc: ServiceRefusal) -> JSONResponse:
        return JSONResponse(
            {"error": exc.reason, "detail": str(exc)},
            status_code=exc.status,
            headers=exc.headers,
        )

    def verify(method: str, path: str, headers: Mapping[str, str], body: bytes) -> Caller:
        bearer = headers.get("authorization", "")
        if bearer[:7].lower() == "bearer ":
            if method != "GET":
                raise SessionWriteError("a session token only reads; sign a write")
            key_id, expires = tokens.session(bearer[7:].strip())
            if key_id not in keys:
                raise UnknownKeyError("the session's key is no longer registered")
        else:
            expires = None
            key_id = verify_request(
                method, path, headers, body, keys=keys, now=signature_clock(), nonces=nonce_store
            )
        wait = limiter.take(key_id)
        if wait > 0:
            raise ServiceRefusal(
                429,
                "rate-limited",
                f"more than {limiter.per_second:g} requests per second; retry in {wait:.1f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        return Caller(key_id, key_id == manager_key_id, body, kind, expires)

    app.state.verify = verify

    def manager_only(who: Caller) -> None:
        if not who.is_manager:
            raise ServiceRefusal(403, "forbidden", "only the market's manager may do this")

    @functools.lru_cache(maxsize=256)
    def market_of(market_id: str) -> MarketRow:
        """A market's row, read once (a market is never changed once created): its
        template of 1,000 members is not read and parsed again on every request."""
        market = store.market(market_id)
        if market is None:
            raise ServiceRefusal(404, "not-found", f"no market {market_id[:80]!r}")
        return market

    def visible(who: Caller, market: MarketRow) -> bool:
        return who.is_manager or who.key_id in market.member_set

    def member_of(market: MarketRow, member: str) -> None:
        if member not in market.member_set:
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

    def event(market_id: str, kind: str, audience: str = "all", **data: Any) -> None:
        body = _dumps({"audience": audience, **data})
        store.add_event(market_id, kind, body, clock().isoformat())

    def cleared_run(market_id: str) -> tuple[dict[str, Any], MarketRun]:
        """The stored clearing and its `MarketRun` (cleared again from the stored scenario
        after a restart: clearing is deterministic)."""
        stored = store.result(market_id)
        if stored is None:
            raise ServiceRefusal(409, "not-cleared", "the market is not cleared yet")
        result = json.loads(stored.body)
        if market_id not in runs:
            runs[market_id] = _run(Scenario.from_dict(result["scenario"]), _clearing_of(result))
        return result, runs[market_id]

    def clear(market: MarketRow) -> dict[str, Any]:
        """Clear `market` with each member's latest order, record it in the ledger and store
        it, in that order (recording.py says why a crash anywhere leaves it whole); once."""
        with clear_lock:
            stored = store.result(market.id)
            if stored is not None:
                loaded: dict[str, Any] = json.loads(stored.body)
                return loaded
            if not store.has_event(market.id, "gate-closed"):
                event(market.id, "gate-closed", gate_closure=market.gate_closure)
            orders = {
                member: Order.model_validate_json(row.body)
                for member, row in store.latest_orders(market.id).items()
            }
            template = market.template_data
            options = template.get("clearing", {})
            scenario = apply_orders(_scenario_of(template), orders)
            try:
                run = _run(scenario, options)
            except InfeasibleMarketError as exc:
                event(market.id, "clear-failed", audience="manager", **_infeasible_body(exc))
                raise
            _failpoint("before-ledger")
            body = _result_body(market.id, run)
            height = None
            if ledger is not None:
                height = ledger.record(market.id, market.gate_closure, run)
                body["ledger"] = {"height": height, "public_key": ledger.public_key}
            _failpoint("after-ledger")
            store.save_result(market.id, _dumps(body), clock().isoformat(), height)
            runs[market.id] = run
            event(market.id, "cleared", ledger_height=height)
            saved: dict[str, Any] = json.loads(_dumps(body))
            return saved

    def tick() -> list[str]:
        """Clear every market whose gate has closed and that is neither cleared nor failed;
        the ids cleared. A market that cannot be cleared gets a `clear-failed` event and is
        left to the manager."""
        done = []
        for market in store.markets():
            if not closed(market) or store.result(market.id) is not None:
                continue
            if store.has_event(market.id, "clear-failed"):
                continue
            try:
                clear(market)
            except (InfeasibleMarketError, InputError):
                continue
            except MarketError as exc:
                event(market.id, "clear-failed", audience="manager", detail=str(exc))
                continue
            done.append(market.id)
        return done

    app.state.tick = tick

    def status_of(market: MarketRow) -> dict[str, Any]:
        result = store.result(market.id)
        if result is not None:
            status = "cleared"
        elif store.has_event(market.id, "clear-failed"):
            status = "failed"
        else:
            status = "closed" if closed(market) else "open"
        ordered = store.ordered_members(market.id)
        return {
            "market_id": market.id,
            "gate_closure": market.gate_closure,
            "created_at": market.created_at,
            "members": list(market.member_ids),
            "status": status,
            "orders_received": len(ordered),
            "readings_received": len(store.readings_members(market.id)),
            "bill_ready": store.has_event(market.id, "bill-ready"),
            "ledger_height": result.block_height if result is not None else None,
        }

    @app.post("/v1/sessions", status_code=201)
    def open_session(who: Authenticated) -> dict[str, Any]:
        """A session token for reading (the dashboard), from a signed request: sent back as
        `Authorization: Bearer TOKEN` on GET requests until it expires."""
        if who.body.strip():
            raise InputError("body", "a session request has no body")
        token, expires = tokens.issue(who.key_id)
        return {
            "token": token,
            "key_id": who.key_id,
            "role": "manager" if who.is_manager else "member",
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
        }

    @app.get("/v1/sessions/current")
    def current_session(who: Authenticated) -> dict[str, Any]:
        """Who the caller is: its key id and role (a page signed in with a token asks)."""
        return {"key_id": who.key_id, "role": "manager" if who.is_manager else "member"}

    @app.post("/v1/markets", status_code=201, openapi_extra=_body("MarketCreate"))
    def create_market(who: Authenticated) -> JSONResponse:
        """Create a market from a scenario template, a gate closure and, optionally, how it
        is cleared (design, objective, rule) (the manager)."""
        manager_only(who)
        request = parse_body(MarketCreate, who.body)
        try:
            scenario = Scenario.from_dict(request.scenario)
        except ScenarioError as exc:
            raise InputError(f"scenario.{exc.field}", exc.detail) from None
        members = [p.id for p in scenario.peers if p.role != "grid"]
        template: dict[str, Any] = {"scenario": scenario.to_dict()}
        if request.clearing is not None:
            template["clearing"] = request.clearing.options()
        gate = gate_closure_iso(request.gate_closure)
        market_id = _market_id(template, gate)
        created = store.create_market(
            MarketRow(market_id, _dumps(template), _dumps(members), gate, clock().isoformat())
        )
        if created:
            event(market_id, "market-created", gate_closure=gate)
        body = {"market_id": market_id, "members": members, "gate_closure": gate}
        return JSONResponse(body, status_code=201 if created else 200)

    @app.get("/v1/markets")
    def list_markets(who: Authenticated) -> dict[str, Any]:
        """The markets the caller may see (the manager: all; a member: those it is in)."""
        return {"markets": [status_of(m) for m in store.markets() if visible(who, m)]}

    @app.get("/v1/markets/{market_id}")
    def market_status(market_id: str, who: Authenticated) -> dict[str, Any]:
        """A market's status: open, closed, cleared or failed; orders received; its block."""
        market = market_of(market_id)
        if not visible(who, market):
            raise ServiceRefusal(403, "forbidden", "not a member of this market")
        status = status_of(market)
        if who.is_manager:
            status["ordered"] = store.ordered_members(market_id)
        return status

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
        check_order(_scenario_of(market.template_data), member, order)  # not at clearing
        at = clock().isoformat()
        version = store.add_order(
            market_id, member, _dumps(order.model_dump(exclude_none=True)), at
        )
        event(market_id, "order-received", audience="manager", member=member, version=version)
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
        Idempotent: a market is cleared once (one ledger block); later calls return the
        stored result. An infeasible market is 409 naming the peer and period."""
        manager_only(who)
        market = market_of(market_id)
        if not closed(market):
            raise ServiceRefusal(
                409, "gate-open", f"the gate closes at {market.gate_closure}; clear after it"
            )
        return clear(market)

    @app.get("/v1/markets/{market_id}/result")
    def result(market_id: str, who: Authenticated) -> dict[str, Any]:
        """The cleared market: for the manager all of it; for a member the prices, its own
        trades, dispatch and bill."""
        market = market_of(market_id)
        if not visible(who, market):
            raise ServiceRefusal(403, "forbidden", "not a member of this market")
        body, _ = cleared_run(market_id)
        if who.is_manager:
            return body
        member = who.key_id
        return {
            **{k: v for k, v in body.items() if k not in ("trades", "bills", "dispatch")},
            "member": member,
            "trades": [t for t in body["trades"] if member in (t["seller"], t["buyer"])],
            "dispatch": [d for d in body["dispatch"] if d["peer"] == member],
            "bills": [b for b in body["bills"] if b["peer"] == member],
        }

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

    @app.get("/v1/markets/{market_id}/members/{member}/proofs")
    def proofs(market_id: str, member: str, who: Authenticated) -> dict[str, Any]:
        """Merkle proofs of the member's trades in the market's ledger block, each checkable
        with the ledger's public key alone (`p2pmarket.ledger.verify_proof`)."""
        market = market_of(market_id)
        member_or_manager(who, market, member, manager=True)
        cleared_run(market_id)
        stored = store.result(market_id)
        if ledger is None or stored is None or stored.block_height is None:
            raise ServiceRefusal(404, "no-ledger", "this market is not recorded in a ledger")
        found = ledger.proofs(stored.block_height, member)
        return {
            "market_id": market_id,
            "member": member,
            "public_key": ledger.public_key,
            "height": stored.block_height,
            "proofs": [p.to_dict() for p in found],
        }

    @app.get("/v1/ledger")
    def ledger_status(who: Authenticated) -> dict[str, Any]:
        """The ledger verified whole against its key: verified or not, and how many blocks."""
        if ledger is None:
            return {"configured": False}
        return {"configured": True, **ledger.status().to_dict()}

    @app.get("/v1/ledger/blocks/{height}")
    def ledger_block(height: int, who: Authenticated) -> dict[str, Any]:
        """A block of the ledger: its signed header (Merkle root, previous hash, scenario
        hash), signature, hash and record ids (the records themselves: proofs)."""
        if ledger is None:
            raise ServiceRefusal(404, "no-ledger", "this service keeps no ledger")
        if not 0 <= height < 2**62:
            raise InputError("height", "is not a block height")
        block = ledger.block(height)
        if block is None:
            raise ServiceRefusal(404, "not-found", f"no block {height}")
        return block

    @app.put("/v1/markets/{market_id}/readings/{member}", openapi_extra=_body("Readings", csv=True))
    def put_readings(market_id: str, member: str, who: Authenticated) -> dict[str, Any]:
        """The member's meter readings, one per period (the member, after clearing). Final:
        the same readings again are accepted, other readings are 409."""
        market = market_of(market_id)
        member_or_manager(who, market, member, manager=False)
        result, _ = cleared_run(market_id)
        readings = _readings_body(member, who)
        periods = int(result["scenario"]["periods"])
        table = _readings_table(member, readings)
        given = sorted(int(p) for p in table["period"])
        if given != list(range(periods)):
            raise InputError(
                "readings.period", f"expected one reading for each period 0 to {periods - 1}"
            )
        body = _dumps([r.model_dump() for r in readings.readings])
        saved = store.save_readings(market_id, member, body, clock().isoformat())
        stored = store.readings(market_id)
        if not saved and stored.get(member) != body:
            raise ServiceRefusal(409, "readings-final", "the member's readings are already stored")
        if saved:
            event(market_id, "readings-received", audience="manager", member=member)
            members = list(market.member_ids)
            if all(m in stored for m in members) and not store.has_event(market_id, "bill-ready"):
                event(market_id, "bill-ready")
        return {"market_id": market_id, "member": member, "readings": len(readings.readings)}

    @app.get("/v1/markets/{market_id}/members/{member}/imbalance")
    def imbalance(market_id: str, member: str, who: Authenticated) -> dict[str, Any]:
        """The member's bill with its imbalance settled, once every member has readings (the
        member or the manager)."""
        market = market_of(market_id)
        member_or_manager(who, market, member, manager=True)
        _, run = cleared_run(market_id)
        stored = store.readings(market_id)
        missing = [m for m in market.member_ids if m not in stored]
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

    @app.get("/v1/events", response_class=StreamingResponse)
    async def events(
        request: Request, who: Authenticated, after: int | None = None
    ) -> StreamingResponse:
        """Server-sent events (`text/event-stream`) of the markets the caller may see:
        market-created, gate-closed, cleared, bill-ready for everyone; order-received,
        readings-received and clear-failed for the manager only. Resumes after the event id
        of `Last-Event-ID` (or `after`); a comment every 15 s keeps the connection open."""
        start = after
        if start is None:
            last = request.headers.get("last-event-id", "0")
            if not (last.isascii() and last.isdigit() and len(last) < 19):
                raise InputError("Last-Event-ID", "is not an event id")
            start = int(last)
        if not 0 <= start < 2**62:
            raise InputError("after", "is not an event id")

        async def stream() -> AsyncIterator[str]:
            seen = start
            quiet = 0.0
            cache: dict[str, bool] = {}
            while not await request.is_disconnected():
                if who.session_expires is not None and tokens.expired(who.session_expires):
                    # A session's stream ends with the session: sign in again, resume.
                    yield "event: session-expired\ndata: {}\n\n"
                    return
                rows = await run_in_threadpool(store.events, seen)
                for row in rows:
                    seen = row.id
                    data = json.loads(row.body)
                    if data.pop("audience") == "manager" and not who.is_manager:
                        continue
                    if row.market_id not in cache:
                        market = await run_in_threadpool(store.market, row.market_id)
                        cache[row.market_id] = market is not None and visible(who, market)
                    if not cache[row.market_id]:
                        continue
                    data.update(market_id=row.market_id, at=row.at)
                    yield f"id: {row.id}\nevent: {row.kind}\ndata: {_dumps(data)}\n\n"
                    quiet = 0.0
                if not rows:
                    await asyncio.sleep(event_poll_seconds)
                    quiet += event_poll_seconds
                    if quiet >= 15.0:
                        yield ": keep-alive\n\n"
                        quiet = 0.0

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    _mount_dashboard(app)

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
            components["Error"] = _ERROR_SCHEMA
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    answers = operation.get("responses", {})
                    if "422" in answers or operation.get("requestBody") is not None:
                        answers["422"] = {
                            "description": "Invalid: the field at fault and why",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Error"}
                                }
                            },
                        }
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            schema["components"]["securitySchemes"] = {
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Signature",
                    "description": "RFC 9421 HTTP Message Signature, Ed25519 (service-auth.md)",
                },
                "session": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a session token from POST /v1/sessions (GET only)",
                },
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


DASHBOARD = Path(__file__).with_name("dashboard")
"""The dashboard's files (index.html and its static files), served at `/dashboard`."""


def _mount_dashboard(app: FastAPI) -> None:
    """`/dashboard`: the page; `/dashboard/static/...`: its scripts, styles and the vendored
    charting library. Unauthenticated (the page signs in itself, with a session token)."""
    if not (DASHBOARD / "index.html").is_file():
        return

    @app.get("/dashboard", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/dashboard/static", StaticFiles(directory=DASHBOARD / "static"), name="static")


def _schedule(tick: Callable[[], list[str]], interval: float, stop: threading.Event) -> None:
    """The scheduler's thread: `tick` every `interval` seconds until `stop` (an error of a
    tick is logged and the next tick comes as usual)."""
    while not stop.wait(interval):
        try:
            tick()
        except Exception:  # the scheduler must outlive one bad tick
            _log.exception("the scheduler's clearing failed")


def _failpoint(name: str) -> None:
    """For the crash tests: `P2PMARKET_FAILPOINT=NAME` kills this process (SIGKILL, as a
    power cut would) when it reaches the point `name`."""
    if os.environ.get("P2PMARKET_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _infeasible_body(exc: InfeasibleMarketError) -> dict[str, Any]:
    return {
        "error": "infeasible",
        "detail": str(exc),
        "peer": exc.peer,
        "period": exc.period,
        "reason": exc.reason,
    }


def _scenario_of(template: Mapping[str, Any]) -> Mapping[str, Any]:
    """The scenario part of a stored template (`{"scenario": ..., "clearing": ...}`)."""
    scenario: Mapping[str, Any] = template["scenario"]
    return scenario


def _run(scenario: Scenario, options: Mapping[str, str]) -> MarketRun:
    """`run_market` with a market's clearing options (design, objective, rule)."""
    return run_market(
        scenario,
        design=options.get("design"),
        objective=options.get("objective"),
        rule=options.get("rule", "marginal"),
    )


def _clearing_of(result: Mapping[str, Any]) -> dict[str, str]:
    """How a stored result was cleared, as `run_market`'s keywords."""
    return {"design": result["design"], "objective": result["objective"], "rule": result["rule"]}


_ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "a short reason code"},
        "detail": {"type": "string", "description": "what is wrong, in words"},
        "field": {"type": "string", "description": "the field at fault (422)"},
    },
}
"""Every error body of the service (`{"error", "detail", "field"?}`)."""


def _body(model: str, *, csv: bool = False) -> dict[str, Any]:
    """The OpenAPI request body of a route whose body the handler validates itself (after
    the signature is verified, so FastAPI must not parse it first); `csv`: a CSV file is
    taken as well (`text/csv`)."""
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}
    }
    if csv:
        content["text/csv"] = {
            "schema": {"type": "string", "description": "peer,period,net_kwh rows"}
        }
    return {"requestBody": {"required": True, "content": content}}


def _readings_body(member: str, who: Caller) -> Readings:
    """The readings of a request: JSON (`{"readings": [...]}`), or CSV (`text/csv`) in the
    readings file format (`peer,period,net_kwh`, docs/imbalance.md), every row the member's."""
    if who.content_type != "text/csv":
        return parse_body(Readings, who.body)
    try:
        table = parse_meter_readings(who.body, format="csv", name=f"{member}'s readings")
    except ScenarioError as exc:
        raise InputError(exc.field, exc.detail) from None
    others = sorted(set(table["peer"]) - {member})
    if others:
        raise InputError("readings.peer", f"{others[0][:40]!r} is not {member!r}")
    if table.empty:
        raise InputError("readings", "no reading in the file")
    return Readings(
        readings=[
            Reading(period=int(p), net_kwh=float(k))
            for p, k in zip(table["period"], table["net_kwh"], strict=True)
        ]
    )


def _readings_table(member: str, readings: Readings) -> pd.DataFrame:
    """The member's readings as `settle_imbalance` takes them, checked row by row as a
    readings file is (`parse_meter_readings`)."""
    rows = [{"peer": member, "period": r.period, "net_kwh": r.net_kwh} for r in readings.readings]
    return parse_meter_readings(json.dumps(rows), format="json", name=f"{member}'s readings")
