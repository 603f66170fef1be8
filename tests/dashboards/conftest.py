"""Fixtures for the dashboard tests: a real short search, a real Dash server and a real headless chromium.

Chromium is Debian's (`/usr/bin/chromium`); when it is missing, the session installs it with
`apt-get install -y chromium` (root, Debian bookworm), the same package `.ci/run` installs. Playwright drives it
through `executable_path`, so `playwright install` (a download) is never needed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from autopeft.cli import main
from autopeft.dashboards.run_source import RunSource
from autopeft.dashboards.server import DashboardServer
from autopeft.storage.run_directory import RunDirectory
from tests.space_files import write_space

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
OBJECTIVES = (
    "objectives: [{name: task_metric, direction: maximize}, {name: trainable_parameters, "
    "direction: minimize}, {name: wall_seconds, direction: minimize}]\n"
    "constraints: {max_trainable_parameters: 420}"
)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> RunDirectory:
    """A real study: 5 trials of tiny BERT, three objectives and a parameter budget some plans break."""
    folder = tmp_path_factory.mktemp("dashboard_study")
    space = write_space(folder, tiny_bert_dir, trials=5, objectives=OBJECTIVES)
    assert main(["search", str(space), "--out", str(folder / "run"), "--quiet"]) == 0
    return RunDirectory.existing(folder / "run")


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


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save what the browser showed, for a person to look at."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def dashboard(run_dir: RunDirectory) -> Iterator[DashboardServer]:
    """The dashboard of `run_dir` on 127.0.0.1 and a free port, stopped after the test."""
    server = DashboardServer(RunSource.open(run_dir.root), "127.0.0.1", 0, refresh_seconds=60).start()
    yield server
    server.stop()
