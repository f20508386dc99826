"""Load on the market service: 1,000 members' devices sending signed requests (issue 13's
target: p99 at most 100 ms at 200 requests per second or more).

python benchmarks/service_load.py [--members 1000] [--rate 200] [--seconds 30] [--processes 2]
                                  [--mix put=0.1,status=0.6,history=0.3] [--find-max]

Starts `p2pmarket serve` as a process of its own (one uvicorn process, as `serve` runs it;
SQLite store, nonces in the store, scheduler off; `service_clearing.running_server`) with a
registered key for the manager and each member, and one open market of `random_market.py`'s
scenario (gate closure a day away). Every member's first order is written into the store
beforehand (`--seed-orders store`, fast; `http` sends them, about 0.1 s each; `none`), so the
market looks as it does late in the day.

Then `--processes` client processes drive it open loop: together they send `--rate` requests
per second at fixed intervals for `--seconds`, whether or not earlier answers have come (each
process an asyncio loop with httpx, at most `--connections` connections), every request
signed by a random member (`MemberAuth`), of the kinds of `--mix`:

    put      PUT /v1/markets/{id}/orders/{member}      the member replaces its order
    status   GET /v1/markets/{id}                      the market's status
    history  GET /v1/markets/{id}/orders/{member}/history

Latency runs from when a request was due (not when it was sent), so time spent queued in the
client counts. A request that has no answer within `--timeout` counts as an error. Members are
drawn uniformly, so one key sends rate/members requests per second on average: far below the
service's per-key limit (20 per second, bursts of 60; `RateLimiter`), which the load does not
hit. Signing costs the clients CPU, and this machine has two cores for the server and the
clients together: the table shows both CPUs (100 % = one core).

`--find-max` then looks for the highest rate whose p99 is at most 100 ms with every answer
2xx (`--search-seconds` per step, at most `--search-steps` steps). Prints numbers only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx
import numpy as np
from service_clearing import (
    bench_key,
    bench_scenario,
    create_market,
    members_of,
    order_of,
    running_server,
    submit_orders,
)

from p2pmarket.client import MemberAuth

TARGET_P99_MS = 100.0
KINDS = ("put", "status", "history")


@dataclass
class Step:
    """One measured rate: every request's kind, latency (s) and outcome, and the CPU used."""

    offered: float
    seconds: float
    kinds: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    def ok(self) -> int:
        return sum(o.startswith("2") for o in self.outcomes)

    def percentiles(self, kind: str | None = None) -> list[float]:
        chosen = [
            lat for k, lat in zip(self.kinds, self.latencies, strict=True) if kind in (None, k)
        ]
        if not chosen:
            return [float("nan")] * 4
        found = np.percentile(np.array(chosen) * 1000, [50, 95, 99, 100])
        return [float(v) for v in found]

    def passes(self) -> bool:
        return self.percentiles()[2] <= TARGET_P99_MS and self.ok() == len(self.outcomes)


# --- a client process --------------------------------------------------------------------


def drive(
    url: str,
    market: str,
    orders: dict[str, bytes],
    rate: float,
    seconds: float,
    mix: dict[str, float],
    start_at: float,
    phase: float,
    seed: int,
    connections: int,
    timeout: float,
) -> dict[str, Any]:
    """One client process: `rate` requests per second for `seconds` from the wall-clock time
    `start_at`, shifted by `phase` of an interval; each request's kind, latency, outcome."""
    return asyncio.run(
        _drive(url, market, orders, rate, seconds, mix, start_at, phase, seed, connections, timeout)
    )


async def _drive(
    url: str,
    market: str,
    orders: dict[str, bytes],
    rate: float,
    seconds: float,
    mix: dict[str, float],
    start_at: float,
    phase: float,
    seed: int,
    connections: int,
    timeout: float,
) -> dict[str, Any]:
    rng = random.Random(seed)
    members = sorted(orders)
    auths = {m: MemberAuth(bench_key(m), m) for m in members}
    kinds, weights = zip(*mix.items(), strict=True)
    count = int(rate * seconds)
    plan = [(rng.choices(kinds, weights)[0], rng.choice(members)) for _ in range(count)]
    results: list[tuple[str, float, str]] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"content-type": "application/json"}

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:

        async def one(kind: str, member: str, due: float) -> None:
            auth = auths[member]
            try:
                if kind == "put":
                    request = client.put(
                        f"/v1/markets/{market}/orders/{member}",
                        content=orders[member],
                        headers=headers,
                        auth=auth,
                    )
                elif kind == "status":
                    request = client.get(f"/v1/markets/{market}", auth=auth)
                else:
                    request = client.get(f"/v1/markets/{market}/orders/{member}/history", auth=auth)
                response = await asyncio.wait_for(request, timeout)
                outcome = str(response.status_code)
            except TimeoutError:
                outcome = "timeout"
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            results.append((kind, time.perf_counter() - due, outcome))

        # warm the connections (not measured), then wait for the common start
        await asyncio.gather(
            *(client.get("/openapi.json") for _ in range(min(connections, 8))),
            return_exceptions=True,
        )
        t0 = time.perf_counter() + (start_at - time.time())
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        cpu = time.process_time()
        tasks = []
        for i, (kind, member) in enumerate(plan):
            due = t0 + (i + phase) / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(kind, member, due)))
        await asyncio.gather(*tasks)
        return {
            "results": results,
            "cpu": time.process_time() - cpu,
            "wall": time.perf_counter() - t0,
        }


# --- the benchmark -----------------------------------------------------------------------


def run_step(
    pool: ProcessPoolExecutor,
    server_cpu: Any,
    args: argparse.Namespace,
    market: str,
    orders: dict[str, bytes],
    mix: dict[str, float],
    rate: float,
    seconds: float,
    step: int,
) -> Step:
    share = rate / args.processes
    start_at = time.time() + 2.0
    before = server_cpu()
    futures = [
        pool.submit(
            drive,
            args.url,
            market,
            orders,
            share,
            seconds,
            mix,
            start_at,
            k / args.processes,
            1000 * step + k,
            args.connections,
            args.timeout,
        )
        for k in range(args.processes)
    ]
    found = [f.result() for f in futures]
    _settle(args.url)
    measured = Step(rate, seconds)
    measured.server_cpu = server_cpu() - before
    measured.wall = max(r["wall"] for r in found)
    measured.client_cpu = sum(r["cpu"] for r in found)
    for r in found:
        for kind, latency, outcome in r["results"]:
            measured.kinds.append(kind)
            measured.latencies.append(latency)
            measured.outcomes.append(outcome)
    return measured


def _settle(url: str, most: float = 60.0) -> None:
    """Wait until the server has worked off the requests the clients gave up on (an unsigned
    request answers within 20 ms three times running), so that a step does not inherit them."""
    deadline = time.monotonic() + most
    fast = 0
    with httpx.Client(base_url=url, timeout=most) as client:
        while fast < 3 and time.monotonic() < deadline:
            start = time.perf_counter()
            client.get("/v1/ledger")
            fast = fast + 1 if time.perf_counter() - start < 0.02 else 0
            time.sleep(0.2)


HEADER = (
    f"{'offered/s':>9} {'achieved/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
    f"{'max ms':>8} {'server CPU':>10} {'clients CPU':>11}  statuses"
)


def row(step: Step) -> str:
    p50, p95, p99, top = step.percentiles()
    statuses = " ".join(f"{k}:{v}" for k, v in sorted(Counter(step.outcomes).items()))
    return (
        f"{step.offered:9.0f} {step.ok() / step.seconds:10.1f} {p50:8.1f} {p95:8.1f} {p99:8.1f} "
        f"{top:8.0f} {step.server_cpu / step.wall:10.0%} {step.client_cpu / step.wall:11.0%}  "
        f"{statuses}"
    )


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name not in KINDS:
            raise SystemExit(f"--mix: {name!r} is not one of {', '.join(KINDS)}")
        mix[name] = float(weight)
    if not any(w > 0 for w in mix.values()):
        raise SystemExit("--mix: no kind has a weight")
    return {k: w for k, w in mix.items() if w > 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--periods", type=int, default=24)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, all")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=32, help="per client process")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--mix", default="put=0.1,status=0.6,history=0.3")
    parser.add_argument("--seed-orders", choices=["store", "http", "none"], default="store")
    parser.add_argument(
        "--nonces",
        choices=["store", "memory"],
        default="store",
        help="store: `p2pmarket serve` as it is; memory: the same app, nonces in its memory",
    )
    parser.add_argument("--find-max", action="store_true")
    parser.add_argument("--search-seconds", type=float, default=15.0)
    parser.add_argument("--search-steps", type=int, default=5)
    args = parser.parse_args()
    mix = parse_mix(args.mix)

    scenario = bench_scenario(args.members, args.periods, "p2p")
    members = members_of(scenario)
    rng = np.random.default_rng(1)
    orders = {p["id"]: order_of(p, rng) for p in scenario["peers"] if p["role"] != "grid"}
    bodies = {m: json.dumps(o).encode() for m, o in orders.items()}

    with running_server(members, nonces=args.nonces) as server:
        args.url = server.url
        market = create_market(server.url, scenario, datetime.now(UTC) + timedelta(days=1))
        seeded = time.perf_counter()
        if args.seed_orders == "store":
            _seed_in_store(server.directory / "service.db", market, orders)
        elif args.seed_orders == "http":
            _, statuses = submit_orders(server.url, market, orders)
            if statuses != Counter({200: len(orders)}):
                raise SystemExit(f"seeding the orders: {dict(statuses)}")
        print(
            f"{len(members)} members x {args.periods} periods, one open market; "
            f"orders seeded ({args.seed_orders}) in {time.perf_counter() - seeded:.1f} s; "
            f"mix {args.mix}; {args.processes} client processes; nonces in {args.nonces}"
        )
        print(HEADER)
        with ProcessPoolExecutor(args.processes) as pool:
            first = run_step(
                pool, server.cpu, args, market, bodies, mix, args.rate, args.seconds, 0
            )
            print(row(first), flush=True)
            steps = [first]
            if args.find_max:
                steps += _search(pool, server.cpu, args, market, bodies, mix, first)
        print()
        print(f"by kind at {first.offered:.0f} requests/s offered:")
        print(f"{'kind':>8} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for kind in mix:
            count = first.kinds.count(kind)
            p50, p95, p99, top = first.percentiles(kind)
            print(f"{kind:>8} {count:6d} {p50:8.1f} {p95:8.1f} {p99:8.1f} {top:8.0f}")
        passing = [s.offered for s in steps if s.passes()]
        best = f"{max(passing):.0f} requests/s" if passing else "none of the rates measured"
        print(
            f"highest rate measured with p99 <= {TARGET_P99_MS:.0f} ms and every answer 2xx: {best}"
        )


def _search(
    pool: ProcessPoolExecutor,
    server_cpu: Any,
    args: argparse.Namespace,
    market: str,
    bodies: dict[str, bytes],
    mix: dict[str, float],
    first: Step,
) -> list[Step]:
    """Up by half again while the target holds, then halving the interval found."""
    low, high = (first.offered, None) if first.passes() else (0.0, first.offered)
    steps = []
    for step in range(1, args.search_steps + 1):
        rate = low * 1.5 if high is None else (low + high) / 2
        if high is not None and high - low < max(5.0, 0.05 * high):
            break
        measured = run_step(
            pool, server_cpu, args, market, bodies, mix, rate, args.search_seconds, step
        )
        print(row(measured), flush=True)
        steps.append(measured)
        if measured.passes():
            low = rate
        else:
            high = rate
    return steps


def _seed_in_store(db: Path, market: str, orders: dict[str, dict[str, Any]]) -> None:
    """Every member's order written into the service's store directly, as the service stores
    a validated order (the store is shared by processes: SQLite in WAL mode)."""
    from p2pmarket.service.models import Order
    from p2pmarket.service.store import ServiceStore

    store = ServiceStore(db)
    at = datetime.now(UTC).isoformat()
    for member, order in orders.items():
        body = json.dumps(
            Order.model_validate(order).model_dump(), sort_keys=True, separators=(",", ":")
        )
        store.add_order(market, member, body, at)


if __name__ == "__main__":
    main()
