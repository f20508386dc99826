"""The report of a 1,000-peer market as a browser draws it (issue 11, items 9 and 19).

Headless Chromium (Debian's /usr/bin/chromium, driven by Python Playwright; no browser is
downloaded) opens the report in a 1,400 px wide window: the page must not scroll sideways.
A screenshot of the page is kept in $P2PMARKET_TEST_ARTIFACTS (default tests/artifacts/).
Without Chromium or Playwright the test is skipped, unless P2PMARKET_REQUIRE_BROWSER=1 (as
on CI), where it fails saying what is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browser_support import ARGS, artifacts, chromium_or_skip
from p2pmarket.app.run import settle_result
from p2pmarket.core.kpis import kpis
from p2pmarket.core.results import ClearingResult
from p2pmarket.reports import write_report
from test_report_scale import thousand_peer_market

WIDTH = 1400


@pytest.fixture(scope="module")
def thousand() -> ClearingResult:
    return thousand_peer_market()


def test_a_thousand_peer_report_fits_a_1400_px_window(
    thousand: ClearingResult, tmp_path: Path
) -> None:
    executable = chromium_or_skip("the browser test")
    from playwright.sync_api import sync_playwright

    settlement = settle_result(thousand)
    path = write_report(
        thousand, tmp_path, bills=settlement.bills, kpis=kpis(thousand, settlement).to_dict()
    )
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(path.as_uri())
            scroll, client = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            height = page.evaluate("document.documentElement.scrollHeight")
            # Every figure is drawn inside the page's width, and no open table overflows it.
            widest_image = page.evaluate(
                "Math.max(...[...document.images].map(i => i.getBoundingClientRect().right))"
            )
            page.screenshot(path=str(artifacts() / "report-1000-peers.png"), full_page=True)
            # Opening every collapsed table keeps the page as wide as before.
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            opened = page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()
    assert client <= WIDTH
    assert scroll <= client, f"the page scrolls sideways: {scroll} > {client} px"
    assert opened <= client, f"an opened table makes the page scroll: {opened} > {client} px"
    assert widest_image <= client
    # Bounded: the page of 1,000 peers is a few screens of figures and short tables.
    assert height < 40_000, f"the page is {height} px tall"
