"""The market service fuzzed from its own OpenAPI document with schemathesis, over real HTTP
(issue 13: "a 4xx that names the field, never a 500").

The service runs as `service_support.running_service` runs it (uvicorn on a free port, a
SQLite store and ledger) and holds two real markets: one open for orders, and one cleared
with every member's readings but P5's. The schema is the one the running service serves at
`/openapi.json`. For each operation schemathesis generates requests, valid ones and (for an
operation with a body or a query) invalid ones, with path parameters now random, now a real
market and member; each request is signed over the bytes `requests` sends (method, target,
body), as the manager and as member P2.

Checked on every answer: never a 5xx; an answer the document declares conforms to its schema;
every 4xx is JSON with "error" and "detail", and every 422 names a "field". Unsigned requests,
and requests signed with a key other than the registered one, are 401 whatever they carry.

What the fuzzing found is kept fixed by the tests at the end, one request each (a 422
documented as FastAPI's own error shape; a query FastAPI could not parse answered without
`error` and `field`; event ids past SQLite's integers; a `Last-Event-ID` of non-ASCII digits).
A new finding is pinned there as `xfail(strict=True)` and tolerated by the fuzzing (`_known`)
until it is fixed.

Examples: at most `MAX_EXAMPLES` per operation, role and mode, fewer when the hypothesis
profile (`HYPOTHESIS_PROFILE`, tests/conftest.py) asks for fewer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("schemathesis")

import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from p2pmarket.service.app import create_app
from p2pmarket.service.sessions import RateLimiter
from p2pmarket.service.signatures import sign_request
from p2pmarket.service.store import ServiceStore
from service_support import (
    MANAGER,
    MEMBERS,
    Service,
    create_market,
    order_and_close,
    running_service,
)

MAX_EXAMPLES = int(os.environ.get("P2PMARKET_SCHEMA_EXAMPLES", "10"))
"""Examples per operation, role and generation mode, fewer when the hypothesis profile asks
for fewer (`P2PMARKET_SCHEMA_EXAMPLES=200` to look harder than CI does)."""
EVENT_SECONDS = 0.2
"""How long an event stream (`GET /v1/events`) is read before schemathesis cuts it short."""
EVENT_EXAMPLES = 4
"""Examples of `GET /v1/events` per role and mode: each stream is read for `EVENT_SECONDS`."""


def _document() -> dict[str, Any]:
    """The service's OpenAPI document from an app of its own, to parametrize the tests by
    (`test_the_served_document_lists_every_operation` checks the served one is the same)."""
    with tempfile.TemporaryDirectory() as folder:
        key = Ed25519PrivateKey.generate().public_key()
        app = create_app(ServiceStore(Path(folder) / "m.db"), manager_key_id="m", keys={"m": key})
        document: dict[str, Any] = app.openapi()
        return document


DOCUMENT = _document()
OPERATIONS = [(method.upper(), path) for path, ops in DOCUMENT["paths"].items() for method in ops]
"""(method, path) of every operation the service documents."""
NEGATABLE = [
    (method.upper(), path)
    for path, ops in DOCUMENT["paths"].items()
    for method, op in ops.items()
    if "requestBody" in op
    or any(
        p["in"] != "path" or p["schema"].get("type") != "string" for p in op.get("parameters", [])
    )
]
"""The operations schemathesis can send something invalid to (a body, a query, a path
parameter that is not a string: any string is a valid string parameter)."""
ROLES = {"manager": MANAGER, "member": "P2"}
SIGNED = [
    pytest.param(method, path, role, mode, id=f"{method} {path} {role} {mode.value}")
    for role in ROLES
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for method, path in (OPERATIONS if mode is GenerationMode.POSITIVE else NEGATABLE)
]


@dataclass
class Fuzzed:
    """The running service, its schema as served, and the real ids to aim at."""

    service: Service
    schema: Any
    open_market: str
    cleared_market: str


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    # Unlimited: the fuzzing sends faster than the default 20 requests per second and key.
    unlimited = RateLimiter(per_second=1e9, burst=10**9)
    with running_service(tmp_path_factory.mktemp("schema"), rate_limit=unlimited) as service:
        cleared = create_market(service)
        order_and_close(service, cleared)
        with service.client(MANAGER) as manager:
            assert manager.post(f"/v1/markets/{cleared}/clear").status_code == 200
        for member in MEMBERS[:-1]:  # not P5's: the imbalance stays 409 readings-missing
            with service.client(member) as client:
                readings = {"readings": [{"period": 0, "net_kwh": 1.0}]}
                response = client.put(f"/v1/markets/{cleared}/readings/{member}", json=readings)
                assert response.status_code == 200, response.text
        opened = create_market(service)  # order_and_close moved the clock: this one is open
        schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
        yield Fuzzed(service, schema, opened, cleared)


# --- signing every request as sent ---------------------------------------------------------


class _Signed(requests.auth.AuthBase):
    """Signs a prepared request, its method, target and body as they go on the wire, with
    `key` under `key_id` (`requests` applies it once the body is serialised)."""

    def __init__(self, key: Ed25519PrivateKey, key_id: str) -> None:
        self.key = key
        self.key_id = key_id

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        assert isinstance(body, bytes), type(body)
        assert request.method is not None
        request.headers.update(
            sign_request(
                request.method, request.path_url, {}, body, key=self.key, key_id=self.key_id
            )
        )
        return request


def _session(auth: requests.auth.AuthBase | None) -> requests.Session:
    session = requests.Session()
    session.auth = auth
    return session


# --- what every answer must be -------------------------------------------------------------


def _known(case: Any, response: Any) -> str | None:
    """The finding an answer is, of those the xfail tests below pin; None when it is none."""
    return None  # both findings are fixed (the tests at the end keep them fixed)


def _error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx is JSON `{"error": ..., "detail": ...}`; a 422 names the `field` too."""
    if not 400 <= response.status_code < 500 or _known(case, response):
        return None
    status = response.status_code
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"the {status} is not JSON: {response.content[:200]!r}") from None
    assert isinstance(body, dict), f"the {status} is not a JSON object: {body}"
    assert isinstance(body.get("error"), str), f"the {status} has no 'error': {body}"
    assert isinstance(body.get("detail"), str), f"the {status} has no 'detail': {body}"
    if status == 422:
        assert isinstance(body.get("field"), str), f"the 422 names no 'field': {body}"
    return True


def _documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """The answer against the schema the document declares for its status (the 422 too: the
    service's own `Error`)."""
    return response_schema_conformance(ctx, response, case)


CHECKS: list[Callable[..., bool | None]] = [
    not_a_server_error,
    content_type_conformance,
    _documented,
    _error_body,
]


def _settings(path: str) -> settings:
    most = EVENT_EXAMPLES if path == "/v1/events" else MAX_EXAMPLES
    return settings(
        max_examples=min(settings().max_examples, most),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


def _cases(fuzzed: Fuzzed, method: str, path: str, mode: GenerationMode, member: str) -> Any:
    """Cases of the operation, its path parameters generated or a real market (the open one
    or the cleared one), member (the caller's own, or another's) and ledger block (genesis,
    the cleared market's)."""
    operation = fuzzed.schema[path][method]
    names = {p.name for p in operation.path_parameters}
    real: list[dict[str, Any]] = []
    if names:
        for market, height in ((fuzzed.open_market, 0), (fuzzed.cleared_market, 1)):
            for who in dict.fromkeys((member, "P3")):
                values = {"market_id": market, "member": who, "height": height}
                real.append({k: v for k, v in values.items() if k in names})
    strategies = [operation.as_strategy(mode)]
    strategies += [operation.as_strategy(mode, path_parameters=p) for p in real]
    return st.one_of(strategies)


def _call(
    fuzzed: Fuzzed, case: Any, session: requests.Session, event_seconds: float = EVENT_SECONDS
) -> Any:
    timeout = event_seconds if case.path == "/v1/events" else 60.0
    return case.call(base_url=fuzzed.service.url, session=session, timeout=timeout)


# --- the fuzzing ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "role", "mode"), SIGNED)
def test_signed_requests(
    fuzzed: Fuzzed, method: str, path: str, role: str, mode: GenerationMode
) -> None:
    key_id = ROLES[role]
    session = _session(_Signed(fuzzed.service.keys[key_id], key_id))

    @_settings(path)
    @given(case=_cases(fuzzed, method, path, mode, "P2"))
    def check(case: Any) -> None:
        case.validate_response(_call(fuzzed, case, session), checks=CHECKS)

    with session:
        check()


@pytest.mark.parametrize("signer", ["unsigned", "wrong-key"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_unauthenticated_requests_are_401(
    fuzzed: Fuzzed, method: str, path: str, signer: str
) -> None:
    """Nothing but 401 for a request not signed, or signed as P2 with another key, whatever
    its path, query and body (negative mode too: nothing is validated before the signature)."""
    auth = None if signer == "unsigned" else _Signed(Ed25519PrivateKey.generate(), "P2")
    expected = "missing-signature" if signer == "unsigned" else "bad-signature"
    modes = [GenerationMode.POSITIVE]
    if (method, path) in NEGATABLE:
        modes.append(GenerationMode.NEGATIVE)
    session = _session(auth)

    @_settings(path)
    @given(case=st.one_of([_cases(fuzzed, method, path, mode, "P2") for mode in modes]))
    def check(case: Any) -> None:
        # No stream to cut short: a refusal is one response, which a busy machine may take
        # longer than EVENT_SECONDS to send (a stream would time out here and fail too).
        response = _call(fuzzed, case, session, event_seconds=10.0)
        case.validate_response(response, checks=[not_a_server_error, _error_body])
        assert response.status_code == 401, response.text
        assert response.json()["error"] == expected, response.text

    with session:
        check()


# --- the document itself -------------------------------------------------------------------


def test_the_served_document_lists_every_operation(fuzzed: Fuzzed) -> None:
    served = {(op.ok().method.upper(), op.ok().path) for op in fuzzed.schema.get_all_operations()}
    assert served == set(OPERATIONS)


@pytest.mark.parametrize(
    ("method", "path", "model", "required"),
    [
        ("POST", "/v1/markets", "MarketCreate", {"scenario", "gate_closure"}),
        ("PUT", "/v1/markets/{market_id}/orders/{member}", "Order", set()),
        ("PUT", "/v1/markets/{market_id}/readings/{member}", "Readings", {"readings"}),
    ],
)
def test_bodies_are_generated_from_the_documented_models(
    fuzzed: Fuzzed, method: str, path: str, model: str, required: set[str]
) -> None:
    """The handlers read their bodies themselves, so `_body()` puts each model in the document
    by hand: schemathesis finds it there and generates JSON bodies of its shape (and text for
    a `text/csv` alternative)."""
    operation = fuzzed.schema[path][method]
    assert "application/json" in operation.get_request_payload_content_types()
    fields = set(DOCUMENT["components"]["schemas"][model]["properties"])
    bodies: list[tuple[str, Any]] = []

    @settings(max_examples=20, deadline=None, database=None)
    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def collect(case: Any) -> None:
        bodies.append((case.media_type, case.body))

    collect()
    assert any(media == "application/json" for media, _ in bodies), bodies
    for media, body in bodies:
        if media == "application/json":
            assert isinstance(body, dict) and required <= set(body) <= fields, body
        else:
            assert media == "text/csv" and isinstance(body, str), (media, body)


# --- what the fuzzing found: one request each, for the lead to fix and flip ----------------


def _signed_call(
    fuzzed: Fuzzed, method: str, path: str, key_id: str, **values: Any
) -> tuple[Any, Any]:
    case = fuzzed.schema[path][method].Case(**values)
    with _session(_Signed(fuzzed.service.keys[key_id], key_id)) as session:
        return case, _call(fuzzed, case, session)


def test_a_422_conforms_to_the_documented_schema(fuzzed: Fuzzed) -> None:
    """PUT /v1/markets/{open}/orders/P2 `{"bid": {"load_kw": [1.0, 2.0, 3.0]}}` as P2 is
    `{"error": "invalid", "field": "peers[P2].load_kw", "detail": "3 values given, ..."}`."""
    case, response = _signed_call(
        fuzzed,
        "PUT",
        "/v1/markets/{market_id}/orders/{member}",
        "P2",
        path_parameters={"market_id": fuzzed.open_market, "member": "P2"},
        body={"bid": {"load_kw": [1.0, 2.0, 3.0]}},
        media_type="application/json",
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "peers[P2].load_kw"
    case.validate_response(response, checks=[response_schema_conformance])


def test_a_query_that_is_not_an_integer_is_a_422_naming_the_field(fuzzed: Fuzzed) -> None:
    _, response = _signed_call(fuzzed, "GET", "/v1/events", "P2", query={"after": "true"})
    assert response.status_code == 422, response.text
    assert response.json().get("field") == "after", response.text
    assert isinstance(response.json().get("error"), str), response.text


# Found by the fuzzing (after=2**63: a 200 stream broken by an OverflowError from SQLite) and
# by reading (Last-Event-ID "²" passed str.isdigit(), then int() raised: 500); fixed in the
# service since (event ids bounded, ASCII digits only). Kept as plain regression tests.


def test_an_event_id_beyond_sqlite_integers_is_a_422(fuzzed: Fuzzed) -> None:
    case = fuzzed.schema["/v1/events"]["GET"].Case(query={"after": 2**63})
    with _session(_Signed(fuzzed.service.keys["P2"], "P2")) as session:
        response = _call(fuzzed, case, session)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "after"


@pytest.mark.parametrize("last", ["\xb2", "9" * 25])
def test_a_last_event_id_that_is_not_an_event_id_is_a_422(fuzzed: Fuzzed, last: str) -> None:
    """`Last-Event-ID` is not in the document, so schemathesis does not send it."""
    case = fuzzed.schema["/v1/events"]["GET"].Case(headers={"Last-Event-ID": last})
    with _session(_Signed(fuzzed.service.keys["P2"], "P2")) as session:
        response = _call(fuzzed, case, session)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "Last-Event-ID"
