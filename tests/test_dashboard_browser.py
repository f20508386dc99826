"""The market service's dashboard as a browser shows it (issue 13, item 4).

The service runs on a free port of 127.0.0.1 (`service_support.running_service`); headless
Chromium (Debian's, driven by Python Playwright; no browser is downloaded) opens
`/dashboard#token=...` with a session token of the manager or of a member. What the page
shows is checked against what the service's JSON says, read here with the test's own signed
clients (bills to the cent, one edge per trade with energy, one price series per node, the
ledger's status), and against values worked out here (the gate closure in the browser's
zone, the imbalance of readings made here). The page updates from the event stream: the
market is cleared and its readings sent while the page is open, and the page must show it
without a reload.

Every page must fit 1,400 px and 400 px wide windows (no sideways scroll), make no request
but to the service on 127.0.0.1, put no token in a URL and log no console error. Screenshots
are kept in $P2PMARKET_TEST_ARTIFACTS (default tests/artifacts/). Without Chromium or
Playwright the tests are skipped, unless P2PMARKET_REQUIRE_BROWSER=1 (as on CI), where they
fail saying what is missing.
"""

from __future__ import annotations

import json
import math
import re
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import p2pmarket
from browser_support import ARGS, artifacts, chromium_or_skip
from p2pmarket.core.settlement.imbalance import schedule_readings
from p2pmarket.service.app import DASHBOARD
from p2pmarket.service.sessions import SessionTokens
from service_support import MANAGER, MEMBERS, Service, running_service, template, with_orders

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

WIDE, NARROW = 1400, 400
ZONE = "Europe/Berlin"  # the browser's time zone: the page shows local times
WAIT_MS = 20_000

# A day of 24 hours: P3 and P5 offer solar power, P2 and P4 bid for their loads.
PERIODS = 24


def _sun(hour: int) -> float:
    return max(0.0, math.sin(math.pi * (hour - 6) / 12))


DAY_ORDERS: dict[str, dict[str, Any]] = {
    "P2": {
        "bid": {"load_kw": [100.0 + 60 * (17 <= h <= 21) + 20 * (7 <= h <= 9) for h in range(24)]}
    },
    "P3": {
        "offer": {"max_kw": [round(240 * _sun(h), 1) for h in range(24)], "offer_per_kwh": 0.045},
        "bid": {"load_kw": [40.0] * 24},
    },
    "P4": {"bid": {"load_kw": [80.0 + 30 * (18 <= h <= 22) for h in range(24)]}},
    "P5": {
        "offer": {"max_kw": [round(180 * _sun(h), 1) for h in range(24)], "offer_per_kwh": 0.052}
    },
}
OFF_SCHEDULE = {"P2": 1.5, "P3": -0.5}  # kWh metered beyond the schedule in every period


def day_template() -> dict[str, Any]:
    data = template()
    data["periods"] = PERIODS
    return data


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_or_skip("the dashboard's browser test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=executable, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watched:
    """A page, and what it asked for and logged."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_clean(self, service: Service, *, tokens: tuple[str, ...] = ()) -> None:
        """Every request went to the service on 127.0.0.1, none with a token in its URL;
        nothing went to the console as an error."""
        origin = urlsplit(service.url)
        assert self.requests, "the page made no request"
        for url in self.requests:
            parts = urlsplit(url)
            assert (parts.scheme, parts.hostname, parts.port) == (
                "http",
                "127.0.0.1",
                origin.port,
            ), f"a request left the service: {url}"
            for token in tokens:
                assert token not in url, f"a token in a URL: {url}"
        assert self.errors == [], self.errors


@contextmanager
def dashboard(
    browser: Browser,
    service: Service,
    token: str,
    width: int = WIDE,
    before: Callable[[Page], None] | None = None,
) -> Iterator[Watched]:
    """`/dashboard#token=...` in a fresh browser context (its own sessionStorage), in the
    time zone ZONE and locale en-US, `width` px wide; `before(page)` runs before it loads."""
    context = browser.new_context(
        viewport={"width": width, "height": 900}, locale="en-US", timezone_id=ZONE
    )
    page = context.new_page()
    watched = Watched(page)
    page.on("request", lambda request: watched.requests.append(request.url))
    page.on(
        "console",
        lambda message: watched.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: watched.errors.append(f"page error: {error}"))
    if before is not None:
        before(page)
    try:
        page.goto(f"{service.url}/dashboard#token={token}")
        yield watched
    finally:
        context.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def session_token(service: Service, key_id: str) -> str:
    with service.client(key_id) as client:
        response = client.post("/v1/sessions")
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


# --- the day, through the service's API ---------------------------------------------------


def create_day_market(service: Service) -> tuple[str, str]:
    """A market of the 24-hour template closing in an hour: its id and gate closure."""
    gate = service.clock.now + timedelta(hours=1)
    with service.client(MANAGER) as manager:
        response = manager.post(
            "/v1/markets", json={"scenario": day_template(), "gate_closure": gate.isoformat()}
        )
    assert response.status_code == 201, response.text
    return str(response.json()["market_id"]), str(response.json()["gate_closure"])


def send_orders(service: Service, market: str, members: tuple[str, ...]) -> None:
    for member in members:
        with service.client(member) as client:
            response = client.put(f"/v1/markets/{market}/orders/{member}", json=DAY_ORDERS[member])
        assert response.status_code == 200, response.text


def clear(service: Service, market: str) -> dict[str, Any]:
    service.clock.now += timedelta(hours=2)
    with service.client(MANAGER) as manager:
        response = manager.post(f"/v1/markets/{market}/clear")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def send_readings(service: Service, market: str) -> None:
    """Each member's readings: its schedule from a clearing run here (not the service's),
    P2 and P3 off it by OFF_SCHEDULE kWh in every period."""
    expected = p2pmarket.run_market(with_orders(day_template(), DAY_ORDERS))
    readings = schedule_readings(expected.billed)
    for member in MEMBERS:
        mine = readings[readings["peer"] == member]
        rows = [
            {"period": int(p), "net_kwh": float(kwh) + OFF_SCHEDULE.get(member, 0.0)}
            for p, kwh in zip(mine["period"], mine["net_kwh"], strict=True)
        ]
        with service.client(member) as client:
            response = client.put(
                f"/v1/markets/{market}/readings/{member}", json={"readings": rows}
            )
        assert response.status_code == 200, response.text


def manager_get(service: Service, path: str) -> dict[str, Any]:
    with service.client(MANAGER) as manager:
        response = manager.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- reading what the page shows -----------------------------------------------------------

MONEY = re.compile(r"(-)?\$(\d{1,3}(?:,\d{3})*)\.(\d{2})")
ENERGY = re.compile(r"(-)?(\d{1,3}(?:,\d{3})*(?:\.\d{1,2})?)\u00a0kWh(?: short| long)?")


def shown_money(text: str) -> float:
    """'$1,234.56' or '-$1.27' (to the cent, with the currency's sign) as a number."""
    match = MONEY.fullmatch(text.strip())
    assert match, f"not an amount in dollars to the cent: {text!r}"
    sign, whole, cents = match.groups()
    value = int(whole.replace(",", "")) + int(cents) / 100
    return -value if sign else value


def shown_energy(text: str) -> float:
    match = ENERGY.fullmatch(text.strip())
    assert match, f"not an energy in kWh: {text!r}"
    sign, number = match.groups()
    value = float(number.replace(",", ""))
    return -value if sign else value


def assert_cents(shown: str, value: float) -> None:
    """`shown` is `value` rounded to the cent."""
    assert abs(shown_money(shown) - value) <= 0.005 + 1e-9, (shown, value)


def assert_bill(page: Page, bill: dict[str, Any]) -> None:
    """The bill card shows the service's bill row, money to the cent and energies in kWh."""
    _expect()(page.locator("#bill-peer")).to_have_text(bill["peer"], timeout=WAIT_MS)
    for name in ("cost_market", "cost_baseline", "savings", "paid_energy", "received_energy"):
        assert_cents(page.locator(f'#bill-body [data-field="{name}"]').inner_text(), bill[name])
    for name in ("paid_fees", "received_fees"):
        assert_cents(page.locator(f'#bill-body [data-field="{name}"]').inner_text(), bill[name])
    for name in ("bought_kwh", "sold_kwh"):
        shown = shown_energy(page.locator(f'#bill-body [data-field="{name}"]').inner_text())
        assert shown == pytest.approx(bill[name], abs=0.005), name


def assert_imbalance(page: Page, settled: dict[str, Any], expected_kwh: float) -> None:
    _expect()(page.locator("#imbalance-body")).to_be_visible(timeout=WAIT_MS)
    cell = page.locator('#imbalance-body [data-imbalance="imbalance_kwh"]').inner_text()
    assert shown_energy(cell) == pytest.approx(settled["imbalance_kwh"], abs=0.005)
    assert settled["imbalance_kwh"] == pytest.approx(expected_kwh)
    assert cell.endswith(" short" if expected_kwh > 0 else " long"), cell
    for name in ("imbalance_cost", "market_bill", "total"):
        shown = page.locator(f'#imbalance-body [data-imbalance="{name}"]').inner_text()
        assert_cents(shown, settled[name])


def assert_network(page: Page, trades: list[dict[str, Any]], member: str | None = None) -> None:
    """For every period: one edge per trade with energy, width growing with energy; a
    member's network has only its own trades."""
    for period in range(PERIODS):
        page.select_option("#period-select", str(period))
        expected = [t for t in trades if t["period"] == period and t["energy_kwh"] > 0]
        edges = page.locator("#network-svg-box g.edge")
        assert edges.count() == len(expected), f"period {period}"
        drawn = edges.evaluate_all(
            "edges => edges.map(e => [e.dataset.seller, e.dataset.buyer, Number(e.dataset.energy),"
            " Number(e.querySelector('path').getAttribute('stroke-width'))])"
        )
        assert sorted((s, b) for s, b, _, _ in drawn) == sorted(
            (t["seller"], t["buyer"]) for t in expected
        )
        if member is not None:
            assert all(member in (s, b) for s, b, _, _ in drawn), drawn
        by_energy = sorted(drawn, key=lambda d: d[2])
        widths = [w for _, _, _, w in by_energy]
        assert widths == sorted(widths), f"period {period}: edge widths not by energy {drawn}"
        rows = page.locator("#trade-table tbody tr td.num").count()
        assert rows == 3 * len(expected)


def assert_prices(page: Page, prices: list[dict[str, Any]]) -> None:
    """One series per price node in the chart's legend (after the x axis's entry)."""
    nodes = list(dict.fromkeys(p["node"] for p in prices))
    labels = page.locator("#price-chart .u-legend .u-series .u-label").all_inner_texts()
    assert len(labels) == 1 + len(nodes), labels
    assert [label.split(" ")[0] for label in labels[1:]] == nodes, labels
    width = page.locator("#price-chart canvas").evaluate("c => c.getBoundingClientRect().width")
    assert width > 150


def assert_ledger(page: Page, status: dict[str, Any]) -> None:
    assert status["configured"] and status["verified"]
    _expect()(page.locator("#ledger-state")).to_contain_text("Verified", timeout=WAIT_MS)
    assert page.locator("#ledger-state").get_attribute("data-verified") == "true"
    assert page.locator("#ledger-blocks").inner_text() == str(status["blocks"])
    key = status["public_key"]
    shown = page.locator("#ledger-key").inner_text()
    assert shown.startswith(key[:8]) and shown.endswith(key[-8:]) and len(shown) < len(key)


def assert_fits(watched: Watched, width: int) -> None:
    """No sideways scroll at `width` px."""
    page = watched.page
    page.set_viewport_size({"width": width, "height": 900})
    page.wait_for_timeout(300)  # the chart follows the new width
    scroll, client = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert client <= width
    assert scroll <= client, f"the page scrolls sideways at {width} px: {scroll} > {client}"
    # Opening the collapsed table keeps the page as wide.
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    opened = page.evaluate("document.documentElement.scrollWidth")
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = false)")
    assert opened <= client, f"an opened table makes the page scroll at {width} px"


def screenshot(watched: Watched, name: str) -> None:
    watched.page.screenshot(path=str(artifacts() / f"dashboard-{name}.png"), full_page=True)


# --- the tests -----------------------------------------------------------------------------


def test_the_managers_dashboard_follows_the_day(browser: Browser, tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        market, gate = create_day_market(service)
        send_orders(service, market, ("P2", "P3", "P4"))
        token = session_token(service, MANAGER)
        with dashboard(browser, service, token) as watched:
            page = watched.page
            expect = _expect()
            # Today's market, open, three orders of four; the token gone from the address.
            expect(page.locator("#status")).to_have_text("open", timeout=WAIT_MS)
            assert "#token" not in page.url and token not in page.url
            assert page.evaluate("Object.values(sessionStorage)") == [token]
            expect(page.locator("#orders")).to_have_text("3 of 4 members (waiting for P5)")
            # The countdown: the gate closure in the browser's zone, and the time left.
            assert page.locator("#gate-time").get_attribute("datetime") == gate
            local = datetime.fromisoformat(gate).astimezone(ZoneInfo(ZONE))
            assert (
                page.locator("#gate-time").inner_text().startswith(local.strftime("%Y-%m-%d %H:%M"))
            )
            countdown = page.locator("#countdown").inner_text()
            found = re.fullmatch(r"closes in (?:(\d+) h )?(\d+) min (\d\d) s", countdown)
            assert found, countdown
            hours, minutes, seconds = (int(g or 0) for g in found.groups())
            left = (datetime.fromisoformat(gate) - datetime.now(UTC)).total_seconds()
            assert abs(hours * 3600 + minutes * 60 + seconds - left) <= 5, (countdown, left)
            expect(page.locator("#bill-waiting")).to_be_visible()
            # A new ledger has no block until the first clearing: empty, not failed.
            expect(page.locator("#ledger-state")).to_have_attribute("data-verified", "empty")
            screenshot(watched, "manager-open-1400")

            # Live: the fourth order, then the clearing, shown without a reload.
            send_orders(service, market, ("P5",))
            expect(page.locator("#orders")).to_have_text("4 of 4 members", timeout=WAIT_MS)
            page.evaluate("window.__sameDocument = true")
            result = clear(service, market)
            expect(page.locator("#status")).to_have_text("cleared", timeout=WAIT_MS)
            expect(page.locator("#market-block")).to_have_text(
                f"block {result['ledger']['height']}"
            )
            assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"

            assert_network(page, result["trades"])
            assert_prices(page, result["prices"])
            assert_ledger(page, manager_get(service, "/v1/ledger"))
            for member in MEMBERS:
                page.select_option("#bill-member", member)
                bill = manager_get(service, f"/v1/markets/{market}/members/{member}/bill")
                assert_bill(page, bill["bill"])
                assert page.locator("#imbalance-waiting").is_visible()

            # Live: the readings come in, and the imbalance of the member shown appears.
            page.select_option("#bill-member", "P2")
            send_readings(service, market)
            settled = manager_get(service, f"/v1/markets/{market}/members/P2/imbalance")["bill"]
            assert_imbalance(page, settled, OFF_SCHEDULE["P2"] * PERIODS)
            page.select_option("#bill-member", "P3")
            settled = manager_get(service, f"/v1/markets/{market}/members/P3/imbalance")["bill"]
            assert_imbalance(page, settled, OFF_SCHEDULE["P3"] * PERIODS)
            assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
            page.select_option("#bill-member", "P2")
            expect(page.locator("#bill-peer")).to_have_text("P2")
            expect(page.locator("#imbalance-body")).to_be_visible()

            assert_fits(watched, WIDE)
            screenshot(watched, "manager-1400")
            assert_fits(watched, NARROW)
            screenshot(watched, "manager-400")
            watched.assert_clean(service, tokens=(token,))


def test_a_members_dashboard_shows_its_own_bill_only(browser: Browser, tmp_path: Path) -> None:
    with running_service(tmp_path) as service:
        market, _ = create_day_market(service)
        send_orders(service, market, MEMBERS)
        everything = clear(service, market)
        send_readings(service, market)
        token = session_token(service, "P2")
        with service.client("P2") as p2:
            bill = p2.get(f"/v1/markets/{market}/members/P2/bill").json()["bill"]
            settled = p2.get(f"/v1/markets/{market}/members/P2/imbalance").json()["bill"]
        first = service.store.events()[0]
        assert first.kind == "market-created"

        def cut_the_first_stream(page: Page) -> None:
            """The first event stream ends after the first event (as a dropped connection
            would): the page must reconnect, resuming after that event's id."""
            cut: list[bool] = []

            def handle(route: Route) -> None:
                if cut:
                    route.continue_()
                    return
                cut.append(True)
                data = json.dumps({"market_id": first.market_id, "at": first.at})
                route.fulfill(
                    status=200,
                    headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"},
                    body=f"id: {first.id}\nevent: {first.kind}\ndata: {data}\n\n",
                )

            page.route("**/v1/events?*", handle)

        with dashboard(browser, service, token, before=cut_the_first_stream) as watched:
            page = watched.page
            expect = _expect()
            expect(page.locator("#status")).to_have_text("cleared", timeout=WAIT_MS)
            expect(page.locator("#live-text")).to_contain_text("bill-ready", timeout=WAIT_MS)
            streams = [u for u in watched.requests if "/v1/events" in u]
            assert [urlsplit(u).query for u in streams[:2]] == ["after=0", f"after={first.id}"]
            assert_bill(page, bill)
            assert_imbalance(page, settled, OFF_SCHEDULE["P2"] * PERIODS)
            # No one else's bill: no member selector, only P2's bill on the page, and no
            # request for another member's bill or imbalance.
            assert page.locator("#bill-member-label").is_hidden()
            assert page.locator("[data-bill-peer]").evaluate_all(
                "cells => cells.map(c => c.dataset.billPeer)"
            ) == ["P2"]
            others = [m for m in MEMBERS if m != "P2"]
            asked = [u for u in watched.requests if "/members/" in u]
            assert asked and all("/members/P2/" in u for u in asked), asked
            bill_text = page.locator("#bill").inner_text()
            assert not any(other in bill_text for other in others), bill_text
            # P2's own trades in every period, counted from the manager's whole result.
            mine = [t for t in everything["trades"] if "P2" in (t["seller"], t["buyer"])]
            assert len(mine) < len(everything["trades"])
            assert_network(page, mine, member="P2")
            assert_prices(page, everything["prices"])
            assert_ledger(page, manager_get(service, "/v1/ledger"))

            assert_fits(watched, WIDE)
            screenshot(watched, "member-1400")
            assert_fits(watched, NARROW)
            screenshot(watched, "member-400")
            watched.assert_clean(service, tokens=(token,))


TOKEN_KEY = "p2pmarket.dashboard.token"
"""Where the dashboard keeps its session token (sessionStorage)."""


def test_a_forged_or_expired_token_shows_the_sign_in_box(browser: Browser, tmp_path: Path) -> None:
    shift = [0.0]  # seconds the sessions' clock is ahead of real time
    sessions = SessionTokens(ttl=900, clock=lambda: time.time() + shift[0])
    with running_service(tmp_path, sessions=sessions) as service:
        create_day_market(service)
        token = session_token(service, "P3")
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        expect = _expect()
        with dashboard(browser, service, forged, width=NARROW) as watched:
            page = watched.page
            expect(page.locator("#signin")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator("#signin-message")).to_contain_text("sign in again")
            assert page.locator("#dashboard").is_hidden()
            assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
            assert_fits(watched, NARROW)
            screenshot(watched, "sign-in-400")

            # A good token pasted (as the whole address) signs in.
            page.fill("#token-input", f"{service.url}/dashboard#token={token}")
            page.click("#signin-form button[type=submit]")
            expect(page.locator("#status")).to_have_text("open", timeout=WAIT_MS)
            assert page.locator("#signin").is_hidden()
            expect(page.locator("#who-text")).to_contain_text("Signed in as P3")

            # The session expires (the service's clock moves past it): a reload reads the
            # token from sessionStorage, is refused, and asks to sign in again.
            shift[0] = 1000.0
            page.reload()
            expect(page.locator("#signin-message")).to_have_text(
                "Session expired — sign in again.", timeout=WAIT_MS
            )
            assert page.locator("#signin").is_visible()
            assert page.locator("#dashboard").is_hidden()
            assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
            # Reloaded again, whether or not the page saw the expiry before it was reloaded,
            # it still says why the session ended.
            page.reload()
            expect(page.locator("#signin-message")).to_have_text(
                "Session expired — sign in again.", timeout=WAIT_MS
            )
            # The refusals are the only console errors (Chromium logs every 401).
            refused = [e for e in watched.errors if "status of 401" in e]
            assert refused and len(refused) == len(watched.errors), watched.errors
            watched.errors.clear()
            watched.assert_clean(service, tokens=(token, forged))


def test_every_file_of_the_dashboard_is_package_data() -> None:
    """A non-editable install ships the page: each file under dashboard/ is matched by a
    pattern of `[tool.setuptools.package-data]` (matched as setuptools does, by glob)."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"][
        "p2pmarket.service"
    ]
    package = DASHBOARD.parent
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    files = {path for path in DASHBOARD.rglob("*") if path.is_file()}
    assert (DASHBOARD / "index.html") in files
    assert (DASHBOARD / "static" / "vendor" / "uplot" / "LICENSE") in files
    assert files - shipped == set(), "dashboard files missing from package-data"
