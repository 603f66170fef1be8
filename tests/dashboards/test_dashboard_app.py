"""The web app in a real headless chromium against a real study: front, click-through, comparison, audit."""

from __future__ import annotations

from pathlib import Path

import optuna
from playwright.sync_api import Page, expect

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
