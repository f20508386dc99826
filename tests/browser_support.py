"""Headless Chromium for the browser tests (the report, the dashboard), driven by Playwright.

Debian's Chromium (`.ci/browser.sh` installs it and exports P2PMARKET_CHROMIUM); Playwright
never downloads a browser here. Without Chromium or Playwright a browser test is skipped,
unless P2PMARKET_REQUIRE_BROWSER=1 (as on CI), where it fails. Screenshots go to
tests/artifacts (or P2PMARKET_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts() -> Path:
    """Where screenshots are kept (made if new)."""
    default = Path(__file__).parent / "artifacts"
    folder = Path(os.environ.get("P2PMARKET_TEST_ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium() -> str | None:
    """The Chromium executable: P2PMARKET_CHROMIUM, Debian's, or one on PATH."""
    given = os.environ.get("P2PMARKET_CHROMIUM")
    if given and Path(given).is_file():
        return given
    if CHROMIUM.is_file():
        return str(CHROMIUM)
    return shutil.which("chromium")


def chromium_or_skip(what: str) -> str:
    """Chromium's executable, with Playwright importable; else skip (fail where a browser
    is required) saying what `what` needs."""
    missing = []
    executable = chromium()
    if executable is None:
        missing.append("Chromium (apt-get install -y chromium, or source .ci/browser.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright (pip install playwright)")
    if missing or executable is None:
        message = f"{what} needs {' and '.join(missing)}"
        if os.environ.get("P2PMARKET_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (P2PMARKET_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(message)
    return executable
