"""One headless chromium for the whole test session, shared by the dashboard and the service tests.

Chromium is Debian's (`/usr/bin/chromium`); when it is missing, the session installs it with
`apt-get install -y chromium` (root, Debian bookworm), the same package `make test` installs. Playwright drives it
through `executable_path`, so `playwright install` (a download) is never needed. One Playwright instance per
session: its sync API cannot start a second one while the first is running.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing."""
    if not CHROMIUM.exists():
        apt = shutil.which("apt-get")
        assert apt is not None, "chromium is missing and apt-get is not available to install it"
        subprocess.run([apt, "update"], check=True, capture_output=True)
        subprocess.run([apt, "install", "-y", "chromium"], check=True, capture_output=True)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Headless chromium with a fresh profile directory, shared by the session's tests."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    """A new tab, closed after the test."""
    tab = browser.new_page()
    yield tab
    tab.close()
