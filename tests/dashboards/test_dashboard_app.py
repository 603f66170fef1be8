"""The web app in a real headless chromium against a real study: front, click-through, comparison, audit."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import optuna
from playwright.sync_api import Page, Response, expect

from autopeft.dashboards.run_source import RunSource
from autopeft.dashboards.server import DashboardServer
from autopeft.storage.run_directory import RunDirectory

MARKERS = "#pareto .scatterlayer .point"
SLOW = 90_000  # ms: callbacks share two cores with training and audits


def complete_trials(run_dir: RunDirectory) -> list[int]:
    return [
        t.number for t in run_dir.load_study().get_trials() if t.state == optuna.trial.TrialState.COMPLETE
    ]


def open_dashboard(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(MARKERS, timeout=SLOW)


@contextlib.contextmanager
def serving(run: Path) -> Iterator[DashboardServer]:
    """The dashboard of the run directory `run`, stopped on exit."""
    server = DashboardServer(RunSource.open(run), "127.0.0.1", 0, refresh_seconds=60).start()
    try:
        yield server
    finally:
        server.stop()


def server_errors(page: Page) -> list[str]:
    """The URLs the page gets a 5xx answer from, collected from now on."""
    errors: list[str] = []

    def record(response: Response) -> None:
        if response.status >= 500:
            errors.append(f"{response.status} {response.url}")

    page.on("response", record)
    return errors


def choose_trial(page: Page, number: int) -> None:
    """Pick trial `number` as the first trial, as a user does with the dropdown."""
    page.locator("#trial-a").click()
    page.locator("[role=option]", has_text=f"trial {number} (").click()


def click_first_marker(page: Page) -> int:
    """Click the first drawn marker and return the trial number plotly holds for it."""
    data = page.evaluate(
        "document.querySelector('#pareto .js-plotly-plot').data.map(t => t.customdata || [])"
    )
    traces = page.locator("#pareto .scatterlayer .trace")
    for index in range(traces.count()):
        points = traces.nth(index).locator(".point")
        if points.count():
            box = points.first.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            return int(data[index][0])
    raise AssertionError("the Pareto plot drew no markers")


def test_pareto_plot_holds_one_marker_per_complete_trial(
    page: Page, dashboard: DashboardServer, run_dir: RunDirectory, screenshots: Path
) -> None:
    open_dashboard(page, dashboard.url)
    expect(page.locator("#study-summary")).to_contain_text("on the Pareto front", timeout=SLOW)
    page.screenshot(path=screenshots / "dashboard_front.png", full_page=True)
    assert page.locator(MARKERS).count() == len(complete_trials(run_dir))


def test_three_objectives_show_parallel_coordinates_and_hypervolume(
    page: Page, dashboard: DashboardServer
) -> None:
    open_dashboard(page, dashboard.url)
    expect(page.locator("#parallel .parcoords")).to_have_count(1, timeout=SLOW)
    expect(page.locator("#hypervolume .gtitle")).to_contain_text("Hypervolume")


def test_clicking_a_point_shows_that_trials_plan_heatmap(
    page: Page, dashboard: DashboardServer, screenshots: Path
) -> None:
    open_dashboard(page, dashboard.url)
    number = click_first_marker(page)
    expect(page.locator("#details-a .trial-state")).to_have_text(f"trial {number}: complete", timeout=SLOW)
    expect(page.locator("#plan-a .gtitle")).to_contain_text(f"trial {number}: lora", timeout=SLOW)
    expect(page.locator("#plan-a .heatmaplayer")).to_have_count(1)
    expect(page.locator("#curve-a .scatterlayer .trace")).to_have_count(2)
    expect(page.locator("#details-a .export-command")).to_contain_text(f"--trial {number} --out")
    page.screenshot(path=screenshots / "dashboard_trial.png", full_page=True)


def test_second_trial_shows_side_by_side(
    page: Page, dashboard: DashboardServer, run_dir: RunDirectory, screenshots: Path
) -> None:
    open_dashboard(page, dashboard.url)
    first = click_first_marker(page)
    other = next(n for n in complete_trials(run_dir) if n != first)
    page.locator("#trial-b").click()
    page.locator("[role=option]", has_text=f"trial {other} (").click()
    expect(page.locator("#plan-b .gtitle")).to_contain_text(f"trial {other}: lora", timeout=SLOW)
    expect(page.locator("#plan-a .gtitle")).to_contain_text(f"trial {first}: lora")
    page.screenshot(path=screenshots / "dashboard_compare.png", full_page=True)


def test_audit_button_computes_the_audit_and_the_view_renders_spectra(
    page: Page, dashboard: DashboardServer, run_dir: RunDirectory, screenshots: Path
) -> None:
    open_dashboard(page, dashboard.url)
    number = click_first_marker(page)
    audit_file = run_dir.trial_dir(number) / "audit.json"
    audit_file.unlink(missing_ok=True)
    expect(page.locator("#audit-status")).to_contain_text("has no audit yet", timeout=SLOW)
    page.locator("#audit-compute").click()
    expect(page.locator("#spectra .gtitle")).to_contain_text("Singular values of", timeout=SLOW)
    assert audit_file.is_file()
    expect(page.locator("#spectra .scatterlayer .trace")).to_have_count(3)  # base, fine-tuned, update
    expect(page.locator("#intruders .gtitle")).to_contain_text("Intruder dimensions")
    expect(page.locator("#entanglement .gtitle")).to_contain_text("Entanglement profile of")
    page.screenshot(path=screenshots / "dashboard_audit.png", full_page=True)


def test_spectra_of_an_audited_light_peft_trial_render_without_server_errors(
    page: Page, light_peft_run: RunDirectory, screenshots: Path
) -> None:
    errors = server_errors(page)
    with serving(light_peft_run.root) as server:
        open_dashboard(page, server.url)
        choose_trial(page, 0)
        expect(page.locator("#spectra .gtitle")).to_contain_text("Singular values of", timeout=SLOW)
        expect(page.locator("#spectra .scatterlayer .trace")).to_have_count(3)
        page.screenshot(path=screenshots / "dashboard_light_peft_audit.png", full_page=True)
    assert errors == []


def test_an_audit_whose_base_cannot_be_read_back_shows_why_in_the_spectra_view(
    page: Page, light_peft_run: RunDirectory, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(light_peft_run.root, tmp_path / "run"))
    audit_file = copy / "trials" / "0" / "audit.json"
    written = json.loads(audit_file.read_text())
    written["meta"]["base"] = "<BertForSequenceClassification>"
    audit_file.write_text(json.dumps(written))
    errors = server_errors(page)
    with serving(copy) as server:
        open_dashboard(page, server.url)
        choose_trial(page, 0)
        title = page.locator("#spectra .gtitle")
        expect(title).to_contain_text("Spectra of", timeout=SLOW)
        expect(page.locator("#entanglement .gtitle")).to_contain_text("Entanglement profile of")
        shown = "".join((title.text_content() or "").split())  # wrapped lines join without spaces
        assert "meta.base:expectedtheauditedbasemodel'sfolder" in shown
    assert errors == []
