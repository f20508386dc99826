"""`p2pmarket serve --demo`: the 17-peer community of the paper as a running market, with
simulated members.

`prepare_demo(directory)` lays out what an operator would have: a key pair per member and
for the manager (`keys/KEYID` private, `keys/KEYID.pub` registered), the ledger's key
(`ledger.key`), the store (`service.db`) and the ledger (`ledger.db`).

`simulate_members(url, demo, gate_in)` then plays the members' devices against the running
service through real signed HTTP, as any client would: the manager creates today's market
(`seventeen-peer-case-3`, 24 hours, gate closure `gate_in` seconds from now); each member
sends its order (the case's load and generation offer, varied by up to ±10 %, seeded) and
replaces it once; after the service's scheduler clears the market at gate closure, each
member sends meter readings (its schedule, off by up to ±5 % a period) and the imbalance
bills become ready. Everything the dashboard shows comes from those requests.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from p2pmarket.cases import load as load_case
from p2pmarket.ledger.keys import generate_keypair

__all__ = ["DEMO_CASE", "Demo", "prepare_demo", "simulate_members"]

DEMO_CASE = "seventeen-peer-case-3"
MANAGER = "manager"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Demo:
    """Where the demo's files are."""

    directory: Path
    members: tuple[str, ...]

    @property
    def keys(self) -> Path:
        return self.directory / "keys"

    @property
    def db(self) -> Path:
        return self.directory / "service.db"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.directory / 'ledger.db'}"

    @property
    def ledger_key(self) -> Path:
        return self.directory / "ledger.key"


def prepare_demo(directory: Path) -> Demo:
    """Key pairs for the manager, each member and the ledger in `directory` (made if new;
    files there already are kept, so a demo can be started again on its own data)."""
    scenario = load_case(DEMO_CASE)
    members = tuple(p.id for p in scenario.peers if p.role != "grid")
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for key_id in (MANAGER, *members):
        if not (keys / key_id).exists():
            generate_keypair(keys / key_id)
    if not (directory / "ledger.key").exists():
        generate_keypair(directory / "ledger.key")
    return Demo(directory, members)


def _order(peer: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
    """A member's order from its row of the case, varied by up to ±10 %."""
    order: dict[str, Any] = {}
    load = peer.get("load_kw")
    if isinstance(load, list) and any(v > 0 for v in load):
        order["bid"] = {"load_kw": [round(v * rng.uniform(0.9, 1.1), 3) for v in load]}
    generation = peer.get("generation") or {}
    offer = generation.get("max_kw")
    if isinstance(offer, list) and any(v > 0 for v in offer):
        low = generation.get("min_kw")
        floor = low if isinstance(low, list) else [float(low or 0.0)] * len(offer)
        order["offer"] = {
            "max_kw": [
                round(max(f, v * rng.uniform(0.9, 1.1)), 3)
                for v, f in zip(offer, floor, strict=True)
            ],
            "offer_per_kwh": generation.get("offer_per_kwh", 0.0),
        }
    return order or None


def simulate_members(url: str, demo: Demo, gate_in: float, *, seed: int = 7) -> str:
    """Play a day of the demo market against the service at `url` (module docstring), in
    the calling thread, until the readings are sent; the market's id. Needs the extra
    `client` (httpx)."""
    import httpx

    from p2pmarket.client import MemberAuth, load_member_key

    rng = random.Random(seed)

    def client(key_id: str) -> httpx.Client:
        auth = MemberAuth(load_member_key(demo.keys / key_id), key_id)
        return httpx.Client(base_url=url, auth=auth, timeout=120)

    template = load_case(DEMO_CASE).to_dict()
    gate = datetime.now(UTC) + timedelta(seconds=gate_in)
    with client(MANAGER) as manager:
        created = manager.post(
            "/v1/markets",
            json={"scenario": template, "gate_closure": gate.isoformat()},
        )
        created.raise_for_status()
    market: str = created.json()["market_id"]
    peers = {p["id"]: p for p in template["peers"]}
    for round_ in range(2):  # each member orders, then replaces its order once
        for member in demo.members:
            order = _order(peers[member], rng)
            if order is None:
                continue
            if datetime.now(UTC) >= gate:
                break
            with client(member) as device:
                device.put(f"/v1/markets/{market}/orders/{member}", json=order)
            time.sleep(min(1.0, gate_in / (4 * len(demo.members))) if round_ == 0 else 0.0)
    _log.info("demo: orders sent; waiting for the clearing at %s", gate.isoformat())
    with client(MANAGER) as manager:
        while manager.get(f"/v1/markets/{market}").json()["status"] not in ("cleared", "failed"):
            time.sleep(1.0)
        result = manager.get(f"/v1/markets/{market}/result")
    if result.status_code != 200:
        return market
    schedule: dict[str, list[tuple[int, float]]] = {}
    hours = float(result.json()["scenario"].get("period_hours", 1.0))
    for row in result.json()["dispatch"]:
        schedule.setdefault(row["peer"], []).append(
            (int(row["period"]), float(row["net_import_kw"]) * hours)
        )
    for member in demo.members:
        readings = [
            {"period": period, "net_kwh": round(kwh * rng.uniform(0.95, 1.05), 4)}
            for period, kwh in sorted(schedule.get(member, []))
        ]
        with client(member) as device:
            device.put(f"/v1/markets/{market}/readings/{member}", json={"readings": readings})
    return market
