"""`p2pmarket serve` as a user starts it: a real process on loopback, the registered keys
read from a directory, a signed request answered, a session for the dashboard; killed
(SIGKILL) in the middle of a clearing and started again, it clears the market once; the demo
plays a whole day; mistakes are one line (issue 13)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from typer.testing import CliRunner  # noqa: E402

import p2pmarket  # noqa: E402
from p2pmarket.cli.main import app  # noqa: E402
from p2pmarket.client import MemberAuth, load_member_key  # noqa: E402
from p2pmarket.ledger import open_store, verify  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    assert CliRunner().invoke(app, ["ledger", "keygen", "--out", str(path)]).exit_code == 0


def test_serve_answers_a_signed_request_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    private, keys = tmp_path / "private", tmp_path / "keys"
    private.mkdir()
    keys.mkdir()
    _keygen(private / "manager")
    _keygen(private / "ledger")
    (keys / "manager.pub").write_bytes((private / "manager.pub").read_bytes())
    port = _free_port()
    command = ["serve", "--db", str(tmp_path / "market.db"), "--keys", str(keys)]
    command += ["--key", str(private / "ledger")]
    process = subprocess.Popen(
        [sys.executable, "-m", "p2pmarket", *command, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                schema = httpx.get(f"{base}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.2)
        assert "/v1/markets" in schema.json()["paths"]
        unsigned = httpx.post(f"{base}/v1/markets", json={}, timeout=10)
        assert unsigned.status_code == 401
        auth = MemberAuth(load_member_key(private / "manager"), "manager")
        created = httpx.post(
            f"{base}/v1/markets",
            json={"scenario": {"name": "x"}, "gate_closure": "2026-05-04T12:00:00Z"},
            auth=auth,
            timeout=10,
        )
        assert created.status_code == 422  # signed and authorised: the body is what is wrong
        assert created.json()["field"].startswith("scenario")
        signed_in = subprocess.run(
            [
                sys.executable,
                "-m",
                "p2pmarket",
                "session",
                "--url",
                base,
                "--key",
                str(private / "manager"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert signed_in.returncode == 0, signed_in.stderr
        link = signed_in.stdout.strip()
        assert link.startswith(f"{base}/dashboard#token=")
        bearer = {"Authorization": f"Bearer {link.split('#token=', 1)[1]}"}
        ledger = httpx.get(f"{base}/v1/ledger", headers=bearer, timeout=10)
        assert ledger.status_code == 200 and ledger.json()["configured"] is True
        assert "manager (manager)" in signed_in.stderr
    finally:
        process.send_signal(2)  # Ctrl-C
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--keys", "{tmp}/absent"], "--keys"),
        (["--keys", "{tmp}/keys", "--manager", "operator"], "--manager"),
        (["--keys", "{tmp}/keys", "--port", "70000"], "--port"),
        (["--keys", "{tmp}/keys", "--db", "{tmp}/keys/manager.pub/market.db"], "--db"),
        (["--keys", "{tmp}/keys", "--key", "{tmp}/absent.key"], "--key"),
        (["--keys", "{tmp}/keys", "--schedule", "-1"], "--schedule"),
        (["--keys", "{tmp}/keys", "--demo"], "--keys"),
        (["--keys", "{tmp}/keys", "--demo-dir", "{tmp}/d"], "--demo-dir"),
        (["--db", "{tmp}/market.db"], "--keys"),
        (["--keys", "{tmp}/keys", "--db", "postgresql://nobody@127.0.0.1:1/none"], "--db"),
    ],
)
def test_serve_mistakes_are_one_line(tmp_path: Path, args: list[str], option: str) -> None:
    (tmp_path / "keys").mkdir()
    _keygen(tmp_path / "keys" / "manager")
    _keygen(tmp_path / "ledger.key")
    args = [a.format(tmp=tmp_path) for a in args]
    if "--db" not in args and "--demo" not in args:
        args += ["--db", str(tmp_path / "market.db")]
    if "--key" not in args and "--demo" not in args:
        args += ["--key", str(tmp_path / "ledger.key")]
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and option in lines[0], result.stderr


# --- a crash in the middle of a clearing ------------------------------------------------

MEMBERS = ("P2", "P3", "P4", "P5")
ORDERS: dict[str, dict[str, Any]] = {
    "P2": {"bid": {"load_kw": [150.0]}},
    "P3": {"offer": {"max_kw": [240.0], "offer_per_kwh": 0.045}, "bid": {"load_kw": [40.0]}},
    "P4": {"bid": {"load_kw": [90.0]}},
    "P5": {"offer": {"max_kw": [180.0], "offer_per_kwh": 0.052}},
}


@contextmanager
def _served(tmp_path: Path, port: int, env: dict[str, str] | None = None) -> Iterator[Any]:
    """`p2pmarket serve` on `port` over the store, keys and ledger in `tmp_path`."""
    command = [sys.executable, "-m", "p2pmarket", "serve", "--port", str(port)]
    command += ["--db", str(tmp_path / "market.db"), "--keys", str(tmp_path / "keys")]
    command += ["--key", str(tmp_path / "private" / "ledger"), "--schedule", "0"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
            break
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(2)
        process.communicate(timeout=30)


def _keys_for_members(tmp_path: Path) -> None:
    private, keys = tmp_path / "private", tmp_path / "keys"
    private.mkdir()
    keys.mkdir()
    for name in ("manager", "ledger", *MEMBERS):
        _keygen(private / name)
        if name != "ledger":
            (keys / f"{name}.pub").write_bytes((private / f"{name}.pub").read_bytes())


def _client(tmp_path: Path, port: int, key_id: str) -> Any:
    auth = MemberAuth(load_member_key(tmp_path / "private" / key_id), key_id)
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=auth, timeout=60)


def _blocks(tmp_path: Path) -> list[Any]:
    with open_store(f"sqlite:///{tmp_path / 'market-ledger.db'}", create=True) as ledger:
        return [b for b in ledger.blocks() if b.height > 0]


@pytest.mark.parametrize("failpoint", ["before-ledger", "after-ledger"])
def test_a_service_killed_while_clearing_clears_once_on_restart(
    tmp_path: Path, failpoint: str
) -> None:
    _keys_for_members(tmp_path)
    port = _free_port()
    gate = datetime.now(UTC) + timedelta(seconds=12)  # time for the orders on a busy machine
    template = p2pmarket.cases.load("five-peer-case-2").to_dict()
    with _served(tmp_path, port, {"P2PMARKET_FAILPOINT": failpoint}) as process:
        with _client(tmp_path, port, "manager") as manager:
            created = manager.post(
                "/v1/markets", json={"scenario": template, "gate_closure": gate.isoformat()}
            )
            assert created.status_code == 201, created.text
            market = created.json()["market_id"]
            for member, order in ORDERS.items():
                with _client(tmp_path, port, member) as client:
                    answer = client.put(f"/v1/markets/{market}/orders/{member}", json=order)
                    assert answer.status_code == 200, answer.text
            time.sleep(max(0.0, (gate - datetime.now(UTC)).total_seconds()) + 0.2)
            with pytest.raises(httpx.TransportError):
                manager.post(f"/v1/markets/{market}/clear")
        process.wait(timeout=30)
        assert process.returncode == -9  # SIGKILL: no clean-up ran
    with closing_db(tmp_path / "market.db") as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone() == (0,)
    assert len(_blocks(tmp_path)) == (1 if failpoint == "after-ledger" else 0)

    with _served(tmp_path, port):
        with _client(tmp_path, port, "manager") as manager:
            first = manager.post(f"/v1/markets/{market}/clear")
            second = manager.post(f"/v1/markets/{market}/clear")
        with _client(tmp_path, port, "P2") as p2:
            bill = p2.get(f"/v1/markets/{market}/members/P2/bill").json()["bill"]
    assert first.status_code == 200, first.text
    assert second.json() == first.json()
    (block,) = _blocks(tmp_path)
    assert first.json()["ledger"]["height"] == block.height
    assert verify(f"sqlite:///{tmp_path / 'market-ledger.db'}").ok
    data = json.loads(json.dumps(template))
    for peer in data["peers"]:
        order = ORDERS.get(peer["id"], {})
        if "bid" in order:
            peer["load_kw"] = order["bid"]["load_kw"]
        if "offer" in order:
            peer["generation"] = {**(peer["generation"] or {}), **order["offer"]}
    expected = p2pmarket.run_market(p2pmarket.Scenario.from_dict(data))
    cost = expected.settlement.bills.set_index("peer").loc["P2", "cost_market"]
    assert bill["cost_market"] == pytest.approx(cost, abs=1e-9)


@contextmanager
def closing_db(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path)
    try:
        yield db
    finally:
        db.close()


# --- the demo ---------------------------------------------------------------------------


def test_the_demo_plays_a_day_of_the_seventeen_peer_community(tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "p2pmarket", "serve", "--demo", "--port", str(port)]
    command += ["--demo-dir", str(tmp_path / "demo"), "--gate-in", "6", "--schedule", "0.5"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        lines = [process.stderr.readline(), process.stderr.readline()]
        assert lines[1].startswith("dashboard (manager): "), lines
        token = lines[1].split("#token=", 1)[1].strip()
        bearer = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the demo did not reach its bills"
            try:
                markets = httpx.get(f"{base}/v1/markets", headers=bearer, timeout=5).json()
            except httpx.TransportError:
                time.sleep(0.3)
                continue
            if markets["markets"]:
                market = markets["markets"][0]["market_id"]
                answer = httpx.get(
                    f"{base}/v1/markets/{market}/members/P2/imbalance", headers=bearer, timeout=30
                )
                if answer.status_code == 200:
                    break
            time.sleep(0.5)
        (status,) = markets["markets"]
        assert status["status"] == "cleared" and status["orders_received"] >= 10
        scenario = p2pmarket.cases.load("seventeen-peer-case-3")
        assert status["members"] == [p.id for p in scenario.peers if p.role != "grid"]
        ledger = httpx.get(f"{base}/v1/ledger", headers=bearer, timeout=30).json()
        assert ledger["verified"] is True and ledger["blocks"] == 2
        bill = answer.json()["bill"]
        assert bill["total"] == pytest.approx(bill["market_bill"] + bill["imbalance_cost"])
    finally:
        process.send_signal(2)
        process.communicate(timeout=30)
    assert process.returncode == 0
