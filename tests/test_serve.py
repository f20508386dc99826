"""`p2pmarket serve` as a user starts it: a real process on loopback, the registered keys
read from a directory, a signed request answered; mistakes are one line (issue 13)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from typer.testing import CliRunner  # noqa: E402

from p2pmarket.cli.main import app  # noqa: E402
from p2pmarket.client import MemberAuth, load_member_key  # noqa: E402


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
    (keys / "manager.pub").write_bytes((private / "manager.pub").read_bytes())
    port = _free_port()
    command = ["serve", "--db", str(tmp_path / "market.db"), "--keys", str(keys)]
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
    ],
)
def test_serve_mistakes_are_one_line(tmp_path: Path, args: list[str], option: str) -> None:
    (tmp_path / "keys").mkdir()
    _keygen(tmp_path / "keys" / "manager")
    args = [a.format(tmp=tmp_path) for a in args]
    if "--db" not in args:
        args += ["--db", str(tmp_path / "market.db")]
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and option in lines[0], result.stderr
