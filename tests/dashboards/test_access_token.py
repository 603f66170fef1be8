"""Binding beyond loopback needs a token, and every request without it gets 401."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from autopeft.cli import main
from autopeft.dashboards.access_token import TOKEN_HEADER
from autopeft.dashboards.run_source import RunSource
from autopeft.dashboards.server import DashboardServer
from autopeft.storage.run_directory import RunDirectory

TOKEN = "correct-horse-battery"


@pytest.fixture
def exposed(run_dir: RunDirectory) -> Iterator[str]:
    """The dashboard bound to every address with a token; yields the URL reached through 127.0.0.1."""
    server = DashboardServer(
        RunSource.open(run_dir.root), "0.0.0.0", 0, token=TOKEN, refresh_seconds=60
    ).start()
    yield server.url.replace("0.0.0.0", "127.0.0.1")
    server.stop()


def status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=30
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_request_without_token_gets_401(exposed: str) -> None:
    assert status(exposed + "/") == 401
    assert status(exposed + "/_dash-layout") == 401
    assert status(exposed + "/?token=wrong") == 401


def test_request_with_token_in_header_or_query_is_served(exposed: str) -> None:
    assert status(exposed + "/", {TOKEN_HEADER: TOKEN}) == 200
    assert status(exposed + "/_dash-layout", {"Authorization": f"Bearer {TOKEN}"}) == 200
    assert status(exposed + f"/?token={TOKEN}") == 200


def test_browser_with_token_link_sees_the_dashboard(page: Page, exposed: str) -> None:
    page.goto(exposed + f"/?token={TOKEN}")
    expect(page.locator("#pareto .scatterlayer .point").first).to_be_visible(timeout=90_000)


def test_non_local_binding_without_token_is_refused(
    run_dir: RunDirectory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTOPEFT_DASHBOARD_TOKEN", raising=False)
    assert main(["dashboard", str(run_dir.root), "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "listening beyond this machine needs a token" in capsys.readouterr().err
