"""The browser pages in Debian's chromium (Playwright): a search launched from the form shows its trials and
its Pareto figure as they finish and stops from its page; a malformed space is refused on the form itself and creates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.serve.conftest import space_text
from tests.serve.service_process import ServiceProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[ServiceProcess]:
    server = ServiceProcess(tmp_path_factory.mktemp("pages") / "root", ["--data-root", str(data_root)])
    yield server.start()
    server.stop()


def test_a_malformed_space_is_refused_on_the_form(server: ServiceProcess, page: Page) -> None:
    page.goto(f"{server.url}/new")
    page.fill("#name", "broken")
    page.fill("#space", "model: [unclosed")
    page.click("#launch")
    expect(page.locator("#form-error")).to_contain_text("broken.yaml: line 1: invalid YAML")
    expect(page.locator("#space")).to_have_value("model: [unclosed")
    assert httpx.get(f"{server.url}/api/searches").json() == []


def test_a_search_launched_from_the_form_shows_its_trials_and_front_and_stops(
    server: ServiceProcess, page: Page, data_root: Path, tmp_path: Path
) -> None:
    page.goto(f"{server.url}/new")
    page.fill("#name", "web")
    page.fill("#trials", "40")
    page.fill("#space", space_text(tmp_path, data_root, 40))
    page.click("#launch")
    page.wait_for_url(f"{server.url}/studies/web")
    expect(page.locator("#trials tbody tr").first).to_be_visible(timeout=240_000)
    expect(page.locator("#pareto .main-svg").first).to_be_visible(timeout=120_000)
    page.click("#stop-button")
    page.wait_for_url(f"{server.url}/studies/web")
    expect(page.locator("#state")).to_have_text("stopped", timeout=120_000)
    page.screenshot(path=str(tmp_path / "study.png"))
    assert httpx.get(f"{server.url}/api/searches/web").json()["state"] == "stopped"
