"""The market service clearing a 1,000-member market (issue 13's target: at most 10 s).

python benchmarks/service_clearing.py [--members 1000] [--periods 24] [--design p2p]

Starts `p2pmarket serve` as a process of its own on a free port of 127.0.0.1 (scheduler off),
with a registered key for the manager and for every member; creates a market from
`random_market.py`'s scenario; every member sends its order (its template's load and offer,
scaled by a random factor), signed; once the gate has closed, times `POST /v1/markets/{id}/clear`
from the request to its whole answer. Then, in this process, times `run_market` alone on the
same scenario with the same orders applied, so the service's overhead shows (applying the
orders, recording the ledger block, storing and sending the result). Prints numbers only.

The server first clears a three-peer market, so that its imports and HiGHS are loaded before
the timed clearing, as this process does before timing `run_market`.

Also the module `service_load.py` takes its server, keys and scenario from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx
import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from random_market import random_market

from p2pmarket.client import MemberAuth
from p2pmarket.ledger import generate_keypair

MANAGER = "manager"


# --- keys, the server, the market: shared with service_load.py ---------------------------


def bench_key(key_id: str) -> Ed25519PrivateKey:
    """A key derived from the key id, so that every client process has it without files (a
    benchmark's keys only: anyone can derive them)."""
    seed = hashlib.sha256(f"p2pmarket benchmark key {key_id}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def write_keys(directory: Path, key_ids: list[str]) -> None:
    """`KEYID.pub` (64 hexadecimal digits) for each key id, as `p2pmarket serve --keys` reads."""
    directory.mkdir(parents=True, exist_ok=True)
    for key_id in key_ids:
        raw = (
            bench_key(key_id)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        (directory / f"{key_id}.pub").write_text(raw.hex() + "\n")


def members_of(scenario: dict[str, Any]) -> list[str]:
    return [p["id"] for p in scenario["peers"] if p["role"] != "grid"]


def bench_scenario(members: int, periods: int, design: str, seed: int = 0) -> dict[str, Any]:
    """`random_market` with `members` peers besides the grid."""
    return random_market(members + 1, periods=periods, design=design, seed=seed)


def order_of(peer: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A member's order: its template's load (a bid) and generation (an offer), each scaled by
    a random factor from 0.9 to 1.1."""
    order: dict[str, Any] = {}
    if "load_kw" in peer:
        scale = float(rng.uniform(0.9, 1.1))
        order["bid"] = {"load_kw": [round(v * scale, 3) for v in peer["load_kw"]]}
    generation = peer.get("generation")
    if generation:
        scale = float(rng.uniform(0.9, 1.1))
        max_kw = generation["max_kw"]
        max_kw = max_kw if isinstance(max_kw, list) else [max_kw]
        order["offer"] = {
            "max_kw": [round(v * scale, 3) for v in max_kw],
            "offer_per_kwh": generation["offer_per_kwh"],
        }
    return order


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process `pid` so far (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    directory: Path

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)


def serve_command(work: Path, ledger_key: Path, port: int) -> list[str]:
    """`p2pmarket serve` on `port` over the store, keys and ledger key in `work`."""
    return [
        *_p2pmarket(),
        "serve",
        "--db",
        str(work / "service.db"),
        "--keys",
        str(work / "keys"),
        "--key",
        str(ledger_key),
        "--manager",
        MANAGER,
        "--schedule",
        "0",
        "--port",
        str(port),
    ]


def _p2pmarket() -> list[str]:
    script = Path(sys.executable).with_name("p2pmarket")
    if script.exists():
        return [str(script)]
    found = shutil.which("p2pmarket")
    if found:
        return [found]
    return [sys.executable, "-c", "from p2pmarket.cli.main import main; main()"]


def _serve_with_memory_nonces(db: str, keys: str, ledger_key: str, port: str) -> None:
    """The server `p2pmarket serve` runs, but for the nonces: in the process's memory (the
    default of `create_app`) instead of the store. For comparison only."""
    import uvicorn

    from p2pmarket.cli.serve_cmd import load_registered_keys
    from p2pmarket.service.app import create_app
    from p2pmarket.service.recording import ServiceLedger
    from p2pmarket.service.store import ServiceStore

    store = ServiceStore(db)
    ledger = ServiceLedger(f"sqlite:///{Path(db).with_name('service-ledger.db')}", Path(ledger_key))
    app = create_app(
        store, manager_key_id=MANAGER, keys=load_registered_keys(Path(keys)), ledger=ledger
    )
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


@contextmanager
def running_server(
    members: list[str], directory: Path | None = None, *, nonces: str = "store"
) -> Iterator[Server]:
    """`p2pmarket serve` in a process of its own: a new SQLite store and ledger in
    `directory` (default: a temporary one, removed after), the manager's and the members'
    keys registered, the scheduler off. Stopped (SIGTERM, then SIGKILL) at the end.
    `nonces="memory"`: the same app with the nonces in the server's memory instead."""
    owned = directory is None
    work = Path(tempfile.mkdtemp(prefix="p2pmarket-bench-")) if directory is None else directory
    work.mkdir(parents=True, exist_ok=True)
    write_keys(work / "keys", [MANAGER, *members])
    ledger_key = work / "ledger.key"
    if not ledger_key.exists():
        generate_keypair(ledger_key)
    port = free_port()
    if nonces == "memory":
        files = [str(work / "service.db"), str(work / "keys"), str(ledger_key), str(port)]
        command = [sys.executable, __file__, "--serve-with-memory-nonces", *files]
    else:
        command = serve_command(work, ledger_key, port)
    log = (work / "serve.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server stopped: {(work / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{url}/openapi.json", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not answer within 120 s")
            time.sleep(0.2)
        yield Server(url, process, work)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        if owned:
            shutil.rmtree(work, ignore_errors=True)


def manager_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, auth=MemberAuth(bench_key(MANAGER), MANAGER), timeout=600)


def create_market(url: str, scenario: dict[str, Any], gate: datetime) -> str:
    with manager_client(url) as manager:
        response = manager.post(
            "/v1/markets", json={"scenario": scenario, "gate_closure": gate.isoformat()}
        )
    if response.status_code != 201:
        raise SystemExit(f"creating the market: {response.status_code} {response.text[:300]}")
    market: str = response.json()["market_id"]
    return market


def submit_orders(
    url: str, market: str, orders: dict[str, dict[str, Any]], threads: int = 4
) -> tuple[float, Counter[int]]:
    """Every member's order, signed with its key, from `threads` threads: seconds, statuses."""
    local = threading.local()

    def send(item: tuple[str, dict[str, Any]]) -> int:
        member, order = item
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120)
        auth = MemberAuth(bench_key(member), member)
        path = f"/v1/markets/{market}/orders/{member}"
        status: int = local.client.put(path, json=order, auth=auth).status_code
        return status

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        statuses = Counter(pool.map(send, orders.items()))
    return time.perf_counter() - start, statuses


def wait_until(moment: datetime) -> None:
    while (left := (moment - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(left, 1.0))


# --- the clearing benchmark --------------------------------------------------------------


def _warm_up(url: str) -> None:
    """A three-peer market cleared, so that the server has loaded what clearing needs."""
    small = bench_scenario(2, 1, "p2p", seed=1)
    gate = datetime.now(UTC) + timedelta(seconds=2)
    market = create_market(url, small, gate)
    wait_until(gate + timedelta(seconds=0.2))
    with manager_client(url) as manager:
        response = manager.post(f"/v1/markets/{market}/clear")
    if response.status_code != 200:
        raise SystemExit(f"warm-up clearing: {response.status_code} {response.text[:300]}")


def main() -> None:
    if sys.argv[1:2] == ["--serve-with-memory-nonces"]:
        _serve_with_memory_nonces(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--periods", type=int, default=24)
    parser.add_argument("--design", default="p2p", choices=["p2p", "community", "hybrid"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=4, help="threads sending the orders")
    parser.add_argument(
        "--gate-seconds",
        type=float,
        default=None,
        help="gate closure this long after the market is created [30 + 0.15 s per member]",
    )
    args = parser.parse_args()

    import p2pmarket
    from p2pmarket.service.models import Order, apply_orders

    scenario = bench_scenario(args.members, args.periods, args.design, args.seed)
    members = members_of(scenario)
    rng = np.random.default_rng(args.seed + 1)
    orders = {p["id"]: order_of(p, rng) for p in scenario["peers"] if p["role"] != "grid"}
    gate_seconds = args.gate_seconds if args.gate_seconds is not None else 30 + 0.15 * len(orders)
    print(
        f"market: {len(members)} members x {args.periods} periods, design {args.design}, "
        f"template {len(json.dumps(scenario)) / 1e3:.0f} kB"
    )

    with running_server(members) as server:
        _warm_up(server.url)
        gate = datetime.now(UTC) + timedelta(seconds=gate_seconds)
        created = time.perf_counter()
        market = create_market(server.url, scenario, gate)
        print(f"POST /v1/markets                 {time.perf_counter() - created:8.2f} s")
        cpu = server.cpu()
        seconds, statuses = submit_orders(server.url, market, orders, args.threads)
        print(
            f"{len(orders)} orders (PUT, {args.threads} threads) {seconds:8.2f} s  "
            f"{len(orders) / seconds:.1f} orders/s, server CPU {server.cpu() - cpu:.1f} s, "
            f"statuses {dict(statuses)}"
        )
        if statuses != Counter({200: len(orders)}):
            raise SystemExit("not every order was accepted (a larger --gate-seconds?)")
        wait_until(gate + timedelta(seconds=0.5))
        cpu = server.cpu()
        with manager_client(server.url) as manager:
            start = time.perf_counter()
            response = manager.post(f"/v1/markets/{market}/clear")
            clear_seconds = time.perf_counter() - start
        if response.status_code != 200:
            raise SystemExit(f"clearing: {response.status_code} {response.text[:300]}")
        body = response.json()
        print(
            f"POST /v1/markets/{{id}}/clear     {clear_seconds:8.2f} s  (server CPU "
            f"{server.cpu() - cpu:.1f} s; answer {len(response.content) / 1e6:.1f} MB, "
            f"{len(body['trades'])} trades, ledger block {body['ledger']['height']})"
        )
        with manager_client(server.url) as manager:
            start = time.perf_counter()
            again = manager.post(f"/v1/markets/{market}/clear")
            print(
                f"POST .../clear again (stored)    {time.perf_counter() - start:8.2f} s  "
                f"({again.status_code})"
            )

    p2pmarket.run_market(p2pmarket.cases.load("five-peer-case-2"))  # warm-up
    parsed = {member: Order.model_validate(order) for member, order in orders.items()}
    start = time.perf_counter()
    applied = apply_orders(scenario, parsed)
    apply_seconds = time.perf_counter() - start
    start = time.perf_counter()
    run = p2pmarket.run_market(applied, rule="marginal")
    run_seconds = time.perf_counter() - start
    timings = run.result.timings
    print(f"apply_orders alone ({len(parsed)} orders)  {apply_seconds:7.2f} s")
    print(
        f"run_market alone                 {run_seconds:8.2f} s  (build "
        f"{timings.build_seconds:.2f} s, solve {timings.solve_seconds:.2f} s; "
        f"{len(run.settlement.priced_trades())} trades)"
    )
    print(
        f"service overhead                 {clear_seconds - run_seconds:8.2f} s  "
        f"({(clear_seconds - run_seconds) / clear_seconds:.0%} of the clearing's answer); "
        f"target: clearing answered within 10 s: {clear_seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
