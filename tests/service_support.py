"""The market service for tests: run in a thread on a free port of 127.0.0.1, clients that
sign as the manager or as members P2..P5 of five-peer-case-2, and the scenario the members'
orders make, built here independently of the service's code."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import p2pmarket
from p2pmarket.client import MemberAuth
from p2pmarket.ledger import generate_keypair, open_store
from p2pmarket.service.app import create_app
from p2pmarket.service.recording import ServiceLedger
from p2pmarket.service.store import ServiceStore

MEMBERS = ("P2", "P3", "P4", "P5")
MANAGER = "manager"


@dataclass
class Clock:
    """The market's clock, moved by the test."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Service:
    url: str
    store: ServiceStore
    clock: Clock
    keys: dict[str, Ed25519PrivateKey]
    app: Any
    ledger_url: str

    def client(self, key_id: str | None) -> httpx.Client:
        auth = MemberAuth(self.keys[key_id], key_id) if key_id is not None else None
        return httpx.Client(base_url=self.url, auth=auth, timeout=60)

    def blocks(self) -> list[Any]:
        """The ledger's blocks but genesis, read from its store directly."""
        with open_store(self.ledger_url, create=True) as ledger:
            return [b for b in ledger.blocks() if b.height > 0]


@contextmanager
def running_service(
    tmp_path: Path,
    *,
    keys: dict[str, Ed25519PrivateKey] | None = None,
    store_nonces: bool = False,
    **options: Any,
) -> Iterator[Service]:
    """The service in a thread of this process, uvicorn on a free port of 127.0.0.1, its
    store and a SQLite ledger in `tmp_path` (kept there: running it again on the same
    `tmp_path` is a restart); `keys` the registered private keys (default: new ones),
    `store_nonces` keeps the nonces in the store; `options` go to `create_app`."""
    keys = keys or {name: Ed25519PrivateKey.generate() for name in (MANAGER, *MEMBERS)}
    store = ServiceStore(tmp_path / "service.db")
    clock = Clock()
    if not (tmp_path / "ledger.key").exists():
        generate_keypair(tmp_path / "ledger.key")
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    if store_nonces:
        options["nonces"] = store
    app = create_app(
        store,
        manager_key_id=MANAGER,
        keys={name: key.public_key() for name, key in keys.items()},
        clock=clock,
        ledger=ServiceLedger(ledger_url, tmp_path / "ledger.key"),
        **options,
    )
    # IPPROTO_TCP: uvicorn then sets TCP_NODELAY on each connection (else ~40 ms per answer)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Service(f"http://127.0.0.1:{port}", store, clock, keys, app, ledger_url)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def template() -> dict[str, Any]:
    return p2pmarket.cases.load("five-peer-case-2").to_dict()


ORDERS: dict[str, dict[str, Any]] = {
    "P2": {"bid": {"load_kw": [150.0]}},
    "P3": {"offer": {"max_kw": [240.0], "offer_per_kwh": 0.045}, "bid": {"load_kw": [40.0]}},
    "P4": {"bid": {"load_kw": [90.0]}},
    "P5": {"offer": {"max_kw": [180.0], "offer_per_kwh": 0.052}},
}


def with_orders(data: dict[str, Any], orders: dict[str, dict[str, Any]]) -> p2pmarket.Scenario:
    """The scenario the orders make of `data`, built here independently of the service."""
    data = copy.deepcopy(data)
    for peer in data["peers"]:
        order = orders.get(peer["id"], {})
        if "bid" in order:
            peer["load_kw"] = order["bid"]["load_kw"]
        if "offer" in order:
            peer["generation"] = {**(peer["generation"] or {}), **order["offer"]}
    return p2pmarket.Scenario.from_dict(data)


def create_market(service: Service, data: dict[str, Any] | None = None) -> str:
    gate = service.clock.now + timedelta(hours=1)
    with service.client(MANAGER) as manager:
        response = manager.post(
            "/v1/markets",
            json={"scenario": data or template(), "gate_closure": gate.isoformat()},
        )
    assert response.status_code == 201, response.text
    assert response.json()["members"] == list(MEMBERS)
    return str(response.json()["market_id"])


def order_and_close(service: Service, market: str) -> None:
    for member, order in ORDERS.items():
        with service.client(member) as client:
            assert client.put(f"/v1/markets/{market}/orders/{member}", json=order).is_success
    service.clock.now += timedelta(hours=2)


def read_events(client: httpx.Client, until: str, after: int = 0) -> list[dict[str, Any]]:
    """The server-sent events up to the first of kind `until`, parsed field by field."""
    found: list[dict[str, Any]] = []
    with client.stream("GET", f"/v1/events?after={after}", timeout=30) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in stream.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            found.append(
                {"id": int(fields["id"]), "kind": fields["event"], **json.loads(fields["data"])}
            )
            fields = {}
            if found[-1]["kind"] == until:
                return found
    raise AssertionError(f"the stream ended before {until}")
