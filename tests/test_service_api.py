"""The market service through real HTTP: uvicorn on a free local port, httpx clients signing
every request with `MemberAuth` (members P2..P5 of five-peer-case-2, and the manager).

Bills are checked against `p2pmarket.run_market` on the same scenario built here from the
template and the orders (not through the service's code), and the imbalance against
`settle_imbalance` of that independent run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import p2pmarket
from p2pmarket.client import signed_headers
from p2pmarket.core.settlement.imbalance import (
    schedule_readings,
    settle_imbalance,
)
from p2pmarket.ledger import RecordProof, verify_proof
from p2pmarket.service.sessions import RateLimiter, SessionTokens
from p2pmarket.service.store import MIGRATIONS, ServiceStore
from service_support import (
    MANAGER,
    MEMBERS,
    ORDERS,
    Service,
    create_market,
    order_and_close,
    read_events,
    running_service,
    template,
    with_orders,
)


@pytest.fixture
def service(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Service]:
    """The service on a free port, recording in a SQLite ledger; a test marked
    `service_options(...)` passes those keywords on to `create_app`."""
    marker = request.node.get_closest_marker("service_options")
    with running_service(tmp_path, **(marker.kwargs if marker is not None else {})) as running:
        yield running


def test_a_full_day(service: Service) -> None:
    market = create_market(service)
    for member, order in ORDERS.items():
        with service.client(member) as client:
            if member == "P4":  # a first order, replaced by the second
                first = client.put(
                    f"/v1/markets/{market}/orders/P4", json={"bid": {"load_kw": [1]}}
                )
                assert first.status_code == 200, first.text
            response = client.put(f"/v1/markets/{market}/orders/{member}", json=order)
            assert response.status_code == 200, response.text
    with service.client("P4") as p4:
        history = p4.get(f"/v1/markets/{market}/orders/P4/history").json()["orders"]
    assert [o["version"] for o in history] == [1, 2]
    assert history[-1]["order"]["bid"] == ORDERS["P4"]["bid"]

    with service.client(MANAGER) as manager:
        early = manager.post(f"/v1/markets/{market}/clear")
        assert early.status_code == 409 and early.json()["error"] == "gate-open"
        service.clock.now += timedelta(hours=2)
        with service.client("P2") as p2:
            late = p2.put(f"/v1/markets/{market}/orders/P2", json=ORDERS["P2"])
        assert late.status_code == 409 and late.json()["error"] == "gate-closed"

        cleared = manager.post(f"/v1/markets/{market}/clear")
        assert cleared.status_code == 200, cleared.text
        again = manager.post(f"/v1/markets/{market}/clear")
        assert again.json() == cleared.json()
    assert len(service.store.snapshot()["results"]) == 1

    expected = p2pmarket.run_market(with_orders(template(), ORDERS))
    bills = expected.settlement.bills.set_index("peer")
    for member in MEMBERS:
        with service.client(member) as client:
            response = client.get(f"/v1/markets/{market}/members/{member}/bill")
        assert response.status_code == 200, response.text
        bill = response.json()["bill"]
        for column in ("cost_market", "paid_energy", "paid_fees", "received_energy", "bought_kwh"):
            assert bill[column] == pytest.approx(bills.loc[member, column], abs=1e-9), column
        for trade in response.json()["trades"]:
            assert member in (trade["seller"], trade["buyer"])
    with service.client("P3") as p3:
        other = p3.get(f"/v1/markets/{market}/members/P2/bill")
    assert other.status_code == 403

    # One block however often the market is cleared; each member's trades proven in it.
    (block,) = service.blocks()
    assert cleared.json()["ledger"]["height"] == block.height
    public_key = cleared.json()["ledger"]["public_key"]
    trades = expected.settlement.priced_trades()
    for member in MEMBERS:
        with service.client(member) as client:
            response = client.get(f"/v1/markets/{market}/members/{member}/proofs")
        assert response.status_code == 200, response.text
        found = []
        for proof in response.json()["proofs"]:
            header = verify_proof(RecordProof.from_dict(proof), public_key)
            assert header.height == block.height
            record = proof["record"]
            found.append((record["period"], record["seller"], record["buyer"], record["route"]))
            assert float(record["energy_kwh"]) > 0
        mine = trades[(trades["seller"] == member) | (trades["buyer"] == member)]
        assert sorted(found) == sorted(
            zip(mine["period"], mine["seller"], mine["buyer"], mine["route"], strict=True)
        )
    with service.client("P3") as p3:
        assert p3.get(f"/v1/markets/{market}/members/P2/proofs").status_code == 403
        status = p3.get("/v1/ledger").json()
    assert status["verified"] is True and status["blocks"] == 2  # genesis and the market's
    with service.client("P3") as p3:
        shown = p3.get(f"/v1/ledger/blocks/{block.height}").json()
        assert p3.get("/v1/ledger/blocks/7").status_code == 404
    assert (shown["block_hash"], shown["signature"]) == (block.block_hash, block.signature)
    assert shown["record_ids"] == [r.record_id for r in block.records]
    assert shown["header"]["merkle_root"] == json.loads(block.header)["merkle_root"]

    readings = schedule_readings(expected.billed).set_index("peer")
    readings.loc["P2", "net_kwh"] += 2.0  # short by 2 kWh
    readings.loc["P3", "net_kwh"] -= 1.0  # long by 1 kWh
    with service.client("P2") as p2:
        too_soon = p2.get(f"/v1/markets/{market}/members/P2/imbalance")
    assert too_soon.status_code == 409 and too_soon.json()["error"] == "readings-missing"
    for member in MEMBERS:
        rows = [{"period": 0, "net_kwh": float(readings.loc[member, "net_kwh"])}]
        with service.client(member) as client:
            response = client.put(
                f"/v1/markets/{market}/readings/{member}", json={"readings": rows}
            )
        assert response.status_code == 200, response.text
    settled = settle_imbalance(expected.billed, expected.settlement, readings.reset_index())
    by_peer = settled.bills.set_index("peer")
    with service.client("P2") as p2:
        response = p2.get(f"/v1/markets/{market}/members/P2/imbalance")
        market_bill = p2.get(f"/v1/markets/{market}/members/P2/bill").json()["bill"]
    assert response.status_code == 200, response.text
    bill = response.json()["bill"]
    assert bill["imbalance_kwh"] == pytest.approx(2.0)
    assert bill["imbalance_cost"] == pytest.approx(by_peer.loc["P2", "imbalance_cost"])
    billed = (
        market_bill["paid_energy"]
        - market_bill["received_energy"]
        + market_bill["paid_fees"]
        - market_bill["received_fees"]
    )
    assert bill["market_bill"] == pytest.approx(billed)
    assert bill["total"] == pytest.approx(billed + bill["imbalance_cost"])


def test_an_infeasible_market_is_409_and_stores_nothing(service: Service) -> None:
    market = create_market(service)
    with service.client("P2") as p2:
        huge = p2.put(f"/v1/markets/{market}/orders/P2", json={"bid": {"load_kw": [9000]}})
    assert huge.status_code == 200, huge.text
    service.clock.now += timedelta(hours=2)
    before = service.store.snapshot()
    with service.client(MANAGER) as manager:
        response = manager.post(f"/v1/markets/{market}/clear")
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "infeasible"
    assert (body["peer"], body["period"]) == ("P2", 0), body
    after = service.store.snapshot()
    assert after["results"] == before["results"] == []
    assert service.blocks() == []
    reported = [e for e in service.store.events() if e.kind == "clear-failed"]
    assert len(reported) == 1
    report = json.loads(reported[0].body)
    assert (report["audience"], report["peer"], report["period"]) == ("manager", "P2", 0)


# --- security ---------------------------------------------------------------------------


def test_refused_requests_write_nothing(service: Service) -> None:
    market = create_market(service)
    path = f"/v1/markets/{market}/orders/P2"
    order = b'{"bid": {"load_kw": [150.0]}}'
    before = service.store.snapshot()
    with service.client(None) as anonymous:
        unsigned = anonymous.put(path, content=order)
        assert unsigned.status_code == 401
        assert unsigned.json()["error"] == "missing-signature"

        headers = signed_headers("PUT", path, order, service.keys["P2"], "P2")
        altered = anonymous.put(path, content=order.replace(b"150", b"999"), headers=headers)
        assert altered.status_code == 401
        assert altered.json()["error"] == "digest-mismatch"
    with service.client("P2") as p2:
        assert p2.post(f"/v1/markets/{market}/clear").status_code == 403
        assert p2.post("/v1/markets", json={"scenario": template()}).status_code == 403
        assert p2.put(f"/v1/markets/{market}/orders/P3", content=order).status_code == 403
    assert service.store.snapshot() == before

    with service.client(None) as anonymous:
        headers = signed_headers("PUT", path, order, service.keys["P2"], "P2")
        assert anonymous.put(path, content=order, headers=headers).status_code == 200
        once = service.store.snapshot()
        replay = anonymous.put(path, content=order, headers=headers)
        assert replay.status_code == 409 and replay.json()["error"] == "replay"
    assert service.store.snapshot() == once


def test_a_replay_is_refused_after_a_restart(tmp_path: Path) -> None:
    with running_service(tmp_path, store_nonces=True) as first:
        keys = first.keys
        headers = signed_headers("GET", "/v1/markets", b"", keys["P2"], "P2")
        with first.client(None) as anonymous:
            assert anonymous.get("/v1/markets", headers=headers).status_code == 200
            replay = anonymous.get("/v1/markets", headers=headers)
            assert (replay.status_code, replay.json()["error"]) == (409, "replay")
    with running_service(tmp_path, keys=keys, store_nonces=True) as restarted:
        with restarted.client(None) as anonymous:
            replay = anonymous.get("/v1/markets", headers=headers)
        with restarted.client("P2") as p2:
            fresh = p2.get("/v1/markets")
    assert (replay.status_code, replay.json()["error"]) == (409, "replay")
    assert fresh.status_code == 200


def test_docs_and_openapi_are_public(service: Service) -> None:
    with service.client(None) as anonymous:
        schema = anonymous.get("/openapi.json").json()
        assert anonymous.get("/docs").status_code == 200
    assert "/v1/markets/{market_id}/clear" in schema["paths"]
    assert "Order" in schema["components"]["schemas"]


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "field"),
    [
        ({"offer": {"max_kw": ["a"], "offer_per_kwh": 0.05}}, "offer.max_kw.0"),
        ({"bid": {"load_kw": [1.0], "colour": "red"}}, "bid.colour"),
        ({}, "body"),
        ({"bid": {"load_kw": [1.0, 2.0]}}, "peers[P2].load_kw"),
        ({"bid": {"load_kw": [-5.0]}}, "peers[P2].load_kw"),
    ],
)
def test_a_bad_order_is_422_naming_the_field(
    service: Service, order: dict[str, Any], field: str
) -> None:
    market = create_market(service)
    before = service.store.snapshot()
    with service.client("P2") as p2:
        response = p2.put(f"/v1/markets/{market}/orders/P2", json=order)
    assert response.status_code == 422, response.text
    assert response.json()["field"].startswith(field), response.json()
    assert service.store.snapshot() == before


def test_a_bad_scenario_is_422(service: Service) -> None:
    data = template()
    data["peers"][1]["load_kw"] = "lots"
    with service.client(MANAGER) as manager:
        response = manager.post(
            "/v1/markets", json={"scenario": data, "gate_closure": "2030-01-01T00:00:00Z"}
        )
        naive = manager.post(
            "/v1/markets", json={"scenario": template(), "gate_closure": "2030-01-01T00:00:00"}
        )
    assert response.status_code == 422 and response.json()["field"].startswith("scenario.peers")
    assert naive.status_code == 422 and naive.json()["field"] == "gate_closure"


def test_an_oversize_body_is_413(service: Service) -> None:
    market = create_market(service)
    big = b'{"bid": {"load_kw": [' + b"1.0," * 300_000 + b"1.0]}}"
    with service.client("P2") as p2:
        response = p2.put(f"/v1/markets/{market}/orders/P2", content=big)
    assert response.status_code == 413


def test_the_store_is_migrated_once(tmp_path: Path) -> None:
    store = ServiceStore(tmp_path / "s.db")
    assert store.schema_version == len(MIGRATIONS)
    assert ServiceStore(tmp_path / "s.db").schema_version == len(MIGRATIONS)


def test_the_readme_device_and_manager_examples_run(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The README's two `py` blocks, against a running service: the device's order is
    stored as it sent it, and the manager's clearing prints the bills `run_market` gives."""
    import ast
    import re

    from cryptography.hazmat.primitives import serialization

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    device, office = re.findall(r"```py\n(.*?)```", readme, re.S)
    private = tmp_path / "private"
    private.mkdir()
    for name in ("P2", MANAGER):
        pem = service.keys[name].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (private / name).write_bytes(pem)
        (private / name).chmod(0o600)
    monkeypatch.chdir(tmp_path)
    market = create_market(service)
    names: dict[str, Any] = {}
    exec(device.replace('"http://127.0.0.1:8000"', repr(service.url)), names)
    with service.client(MANAGER) as manager:
        history = manager.get(f"/v1/markets/{market}/orders/P2/history").json()["orders"]
    assert [o["order"] for o in history] == [{"bid": {"load_kw": [150.0]}}]
    service.clock.now += timedelta(hours=2)
    capsys.readouterr()
    exec(office, names)
    printed = ast.literal_eval(capsys.readouterr().out.strip())
    expected = p2pmarket.run_market(with_orders(template(), {"P2": {"bid": {"load_kw": [150.0]}}}))
    bills = expected.settlement.bills.set_index("peer")["cost_market"]
    assert printed == {peer: round(float(cost), 3) for peer, cost in bills.items()}


def test_the_docs_example_runs() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "service.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/service.md", "exec"), {})


# --- reading: market status, results, sessions, events ------------------------------------


def test_markets_and_results_are_shown_to_whom_they_concern(service: Service) -> None:
    market = create_market(service)
    with service.client("P2") as p2:
        assert p2.get("/v1/ledger").json()["blocks"] == 0  # nothing recorded yet, not an error
        p2.put(f"/v1/markets/{market}/orders/P2", json=ORDERS["P2"])
        (listed,) = p2.get("/v1/markets").json()["markets"]
        assert p2.get("/v1/sessions/current").json() == {"key_id": "P2", "role": "member"}
    assert (listed["status"], listed["orders_received"]) == ("open", 1)
    assert (listed["readings_received"], listed["bill_ready"]) == (0, False)
    with service.client(MANAGER) as manager:
        assert manager.get(f"/v1/markets/{market}").json()["ordered"] == ["P2"]
    order_and_close(service, market)
    with service.client("P3") as p3:
        assert p3.get(f"/v1/markets/{market}").json()["status"] == "closed"
        assert p3.get(f"/v1/markets/{market}/result").status_code == 409
    with service.client(MANAGER) as manager:
        manager.post(f"/v1/markets/{market}/clear")
        whole = manager.get(f"/v1/markets/{market}/result").json()
    with service.client("P3") as p3:
        mine = p3.get(f"/v1/markets/{market}/result").json()
        assert p3.get(f"/v1/markets/{market}").json()["status"] == "cleared"
    assert {t["seller"] for t in whole["trades"]} | {t["buyer"] for t in whole["trades"]} > {"P3"}
    assert mine["trades"] == [t for t in whole["trades"] if "P3" in (t["seller"], t["buyer"])]
    assert {d["peer"] for d in mine["dispatch"]} == {"P3"}
    assert [b["peer"] for b in mine["bills"]] == ["P3"]
    assert mine["prices"] == whole["prices"]


def test_a_session_token_reads_but_never_writes(service: Service) -> None:
    market = create_market(service)
    with service.client("P2") as p2:
        session = p2.post("/v1/sessions")
    assert session.status_code == 201, session.text
    token = session.json()["token"]
    assert session.json()["role"] == "member"
    with service.client(None) as browser:
        bearer = {"Authorization": f"Bearer {token}"}
        assert browser.get(f"/v1/markets/{market}", headers=bearer).status_code == 200
        other = browser.get(f"/v1/markets/{market}/orders/P3/history", headers=bearer)
        assert other.status_code == 403
        write = browser.put(f"/v1/markets/{market}/orders/P2", json=ORDERS["P2"], headers=bearer)
        assert (write.status_code, write.json()["error"]) == (401, "session-read-only")
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        response = browser.get("/v1/markets", headers={"Authorization": f"Bearer {forged}"})
        assert (response.status_code, response.json()["error"]) == (401, "bad-token")
        assert token not in response.text
    assert service.store.latest_orders(market) == {}


def test_no_secret_is_in_a_log_or_an_answer(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    market = create_market(service)
    answers: list[str] = []
    path = f"/v1/markets/{market}/orders/P2"
    order = b'{"bid": {"load_kw": [150.0]}}'
    with caplog.at_level(logging.DEBUG):
        with service.client("P2") as p2:
            token = p2.post("/v1/sessions").json()["token"]
        headers = signed_headers("PUT", path, order, service.keys["P2"], "P2")
        with service.client(None) as anonymous:
            answers.append(anonymous.put(path, content=order, headers=headers).text)
            answers.append(anonymous.put(path, content=order, headers=headers).text)  # replay
            bad = {**headers, "Signature": headers["Signature"][:-6] + "AAAA:"}
            answers.append(anonymous.put(path, content=order + b" ", headers=bad).text)
            bearer = {"Authorization": f"Bearer {token}"}
            answers.append(anonymous.get("/v1/markets", headers=bearer).text)
            answers.append(anonymous.put(path, content=order, headers=bearer).text)
            answers.append(anonymous.get("/v1/markets", headers={"Authorization": "Bearer x"}).text)
    signature = headers["Signature"].split(":")[1]
    nonce = headers["Signature-Input"].split('nonce="')[1].split('"')[0]
    for secret in (token, token.split(".")[2], signature, nonce):
        assert secret not in caplog.text
        assert all(secret not in answer for answer in answers), secret


def test_an_expired_session_is_401(tmp_path: Path) -> None:
    from p2pmarket.service.sessions import SessionTokens

    now = [1_000_000.0]
    tokens = SessionTokens(ttl=60, clock=lambda: now[0])
    token, expires = tokens.issue("P2")
    assert tokens.check(token) == "P2" and expires == 1_000_060
    now[0] += 61
    with pytest.raises(Exception, match="expired") as raised:
        tokens.check(token)
    assert getattr(raised.value, "status", None) == 401
    with pytest.raises(Exception, match="not one of this service"):
        SessionTokens(ttl=60, clock=lambda: now[0]).check(tokens.issue("P2")[0])


SESSION_NOW = [2_000_000_000.0]


@pytest.mark.service_options(sessions=SessionTokens(ttl=60, clock=lambda: SESSION_NOW[0]))
def test_an_event_stream_ends_when_its_session_does(service: Service) -> None:
    """A dashboard's stream is read with a session token: when the token expires, the
    stream says so (`session-expired`) and ends; the token no longer opens one."""
    create_market(service)  # an event to read at once
    with service.client("P2") as p2:
        token = p2.post("/v1/sessions").json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    lines: list[str] = []
    with service.client(None) as browser:
        with browser.stream("GET", "/v1/events", headers=bearer, timeout=30) as stream:
            assert stream.status_code == 200
            deadline = time.monotonic() + 20  # a stream that never ends fails, not hangs
            for line in stream.iter_lines():
                lines.append(line)
                if time.monotonic() > deadline:
                    break
                if line.startswith("event: market-created"):
                    SESSION_NOW[0] += 61  # the session runs out while the stream is open
        again = browser.get("/v1/events", headers=bearer)
    assert "event: session-expired" in lines
    assert again.status_code == 401


@pytest.mark.service_options(rate_limit=RateLimiter(per_second=0.5, burst=3))
def test_a_member_over_its_rate_is_429_and_others_are_not(service: Service) -> None:
    with service.client("P2") as p2:
        answers = [p2.get("/v1/markets").status_code for _ in range(4)]
        last = p2.get("/v1/markets")
    assert answers == [200, 200, 200, 429]
    assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
    with service.client("P3") as p3:
        assert p3.get("/v1/markets").status_code == 200


def test_the_event_stream_tells_each_caller_what_concerns_it(service: Service) -> None:
    market = create_market(service)
    order_and_close(service, market)
    with service.client(MANAGER) as manager:
        manager.post(f"/v1/markets/{market}/clear")
        seen = read_events(manager, until="cleared")
    with service.client("P2") as p2:
        member = read_events(p2, until="cleared")
        resumed = read_events(p2, until="cleared", after=member[0]["id"])
    kinds = [e["kind"] for e in seen]
    assert kinds == ["market-created", *["order-received"] * 4, "gate-closed", "cleared"]
    assert [e["kind"] for e in member] == ["market-created", "gate-closed", "cleared"]
    assert resumed == member[1:]
    assert all(e["market_id"] == market for e in seen)
    (block,) = service.blocks()
    assert member[-1]["ledger_height"] == block.height


def test_the_scheduler_clears_at_gate_closure_once(service: Service) -> None:
    market = create_market(service)
    assert service.app.state.tick() == []  # the gate is open
    order_and_close(service, market)
    assert service.app.state.tick() == [market]
    assert service.app.state.tick() == []
    assert len(service.blocks()) == 1
    expected = p2pmarket.run_market(with_orders(template(), ORDERS))
    with service.client("P4") as p4:
        bill = p4.get(f"/v1/markets/{market}/members/P4/bill").json()["bill"]
    assert bill["cost_market"] == pytest.approx(
        expected.settlement.bills.set_index("peer").loc["P4", "cost_market"], abs=1e-9
    )


def test_a_market_is_cleared_as_it_says(service: Service) -> None:
    gate = (service.clock.now + timedelta(hours=1)).isoformat()
    with service.client(MANAGER) as manager:
        created = manager.post(
            "/v1/markets",
            json={
                "scenario": template(),
                "gate_closure": gate,
                "clearing": {"design": "community", "rule": "pay-as-offer"},
            },
        )
        wrong = manager.post(
            "/v1/markets",
            json={"scenario": template(), "gate_closure": gate, "clearing": {"rule": "cheap"}},
        )
    assert created.status_code == 201, created.text
    assert wrong.status_code == 422 and wrong.json()["field"] == "clearing.rule"
    market = created.json()["market_id"]
    order_and_close(service, market)
    with service.client(MANAGER) as manager:
        cleared = manager.post(f"/v1/markets/{market}/clear").json()
    assert (cleared["design"], cleared["rule"]) == ("community", "pay-as-offer")
    expected = p2pmarket.run_market(
        with_orders(template(), ORDERS), design="community", rule="pay-as-offer"
    )
    bills = expected.settlement.bills.set_index("peer")
    for row in cleared["bills"]:
        assert row["cost_market"] == pytest.approx(bills.loc[row["peer"], "cost_market"], abs=1e-9)


def test_a_bid_with_flexible_blocks_is_cleared_with_them(service: Service) -> None:
    market = create_market(service)
    flexible = {"bid": {"load_kw": [60.0], "flexible": [{"max_kw": [50.0], "price_per_kwh": 0.2}]}}
    orders = {**ORDERS, "P4": flexible}
    for member, order in orders.items():
        with service.client(member) as client:
            answer = client.put(f"/v1/markets/{market}/orders/{member}", json=order)
            assert answer.status_code == 200, answer.text
    with service.client("P2") as p2:
        empty = p2.put(f"/v1/markets/{market}/orders/P2", json={"bid": {}})
    assert empty.status_code == 422 and empty.json()["field"] == "bid", empty.text
    service.clock.now += timedelta(hours=2)
    with service.client(MANAGER) as manager:
        cleared = manager.post(f"/v1/markets/{market}/clear").json()
    data = template()
    (p4,) = [p for p in data["peers"] if p["id"] == "P4"]
    p4["flexible_load"] = [{"max_kw": [50.0], "price_per_kwh": 0.2}]
    expected = p2pmarket.run_market(
        with_orders(data, {**ORDERS, "P4": {"bid": {"load_kw": [60.0]}}})
    )
    served = expected.result.dispatch.set_index("peer").loc["P4", "flexible_load_kw"]
    (row,) = [d for d in cleared["dispatch"] if d["peer"] == "P4"]
    assert row["flexible_load_kw"] == pytest.approx(float(served), abs=1e-6)
    assert row["flexible_load_kw"] > 0  # served: energy costs less than 0.2 here
    bills = expected.settlement.bills.set_index("peer")
    for bill in cleared["bills"]:
        assert bill["cost_market"] == pytest.approx(
            bills.loc[bill["peer"], "cost_market"], abs=1e-9
        )


def test_readings_may_be_uploaded_as_a_csv_file(service: Service) -> None:
    market = create_market(service)
    order_and_close(service, market)
    with service.client(MANAGER) as manager:
        manager.post(f"/v1/markets/{market}/clear")
    expected = p2pmarket.run_market(with_orders(template(), ORDERS))
    readings = schedule_readings(expected.billed).set_index("peer")
    readings.loc["P3", "net_kwh"] += 3.0
    csv = {"Content-Type": "text/csv"}
    with service.client("P3") as p3:
        other = p3.put(
            f"/v1/markets/{market}/readings/P3",
            content=b"peer,period,net_kwh\nP2,0,1\n",
            headers=csv,
        )
        assert other.status_code == 422 and other.json()["field"] == "readings.peer", other.text
        text = f"peer,period,net_kwh\nP3,0,{readings.loc['P3', 'net_kwh']}\n"
        answer = p3.put(f"/v1/markets/{market}/readings/P3", content=text.encode(), headers=csv)
        assert answer.status_code == 200, answer.text
    for member in ("P2", "P4", "P5"):
        rows = [{"period": 0, "net_kwh": float(readings.loc[member, "net_kwh"])}]
        with service.client(member) as client:
            client.put(f"/v1/markets/{market}/readings/{member}", json={"readings": rows})
    with service.client("P3") as p3:
        bill = p3.get(f"/v1/markets/{market}/members/P3/imbalance").json()["bill"]
    settled = settle_imbalance(expected.billed, expected.settlement, readings.reset_index())
    assert bill["imbalance_kwh"] == pytest.approx(3.0)
    assert bill["imbalance_cost"] == pytest.approx(
        settled.bills.set_index("peer").loc["P3", "imbalance_cost"]
    )
