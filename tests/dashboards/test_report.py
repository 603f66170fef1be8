"""The static report: self-contained, readable with the network off, and showing the same points as the app."""

from __future__ import annotations

from pathlib import Path

import optuna
from playwright.sync_api import BrowserContext, Page, Request

from autopeft.cli import main
from autopeft.dashboards.report import write_report
from autopeft.storage.run_directory import RunDirectory

MARKERS = "#pareto .scatterlayer .point"


def test_report_opens_offline_with_one_point_per_complete_trial(
    page: Page, browser: BrowserContext, run_dir: RunDirectory, tmp_path: Path, screenshots: Path
) -> None:
    out = write_report(run_dir, tmp_path / "report.html")
    complete = [t for t in run_dir.load_study().get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    outside: list[str] = []

    def record(request: Request) -> None:
        if not request.url.startswith(("file:", "data:", "blob:")):
            outside.append(request.url)

    page.on("request", record)
    browser.set_offline(True)
    try:
        page.goto(out.as_uri())
        page.wait_for_selector(MARKERS, timeout=60_000)
        page.screenshot(path=screenshots / "report.png", full_page=True)
        assert page.locator(MARKERS).count() == len(complete)
        assert page.locator("section.trial .heatmaplayer").count() >= len(complete)
    finally:
        browser.set_offline(False)
    assert outside == []


def test_clicking_a_report_point_jumps_to_its_trial_section(
    page: Page, run_dir: RunDirectory, tmp_path: Path
) -> None:
    out = write_report(run_dir, tmp_path / "report.html")
    page.goto(out.as_uri())
    page.wait_for_selector(MARKERS, timeout=60_000)
    number = page.evaluate(
        "document.getElementById('pareto').data.find(t => (t.customdata || []).length).customdata[0]"
    )
    traces = page.locator("#pareto .scatterlayer .trace")
    first = next(traces.nth(i) for i in range(traces.count()) if traces.nth(i).locator(".point").count())
    box = first.locator(".point").first.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(f"location.hash === '#trial-{number}'")


def test_report_command_writes_the_file(run_dir: RunDirectory, tmp_path: Path) -> None:
    out = tmp_path / "cli_report.html"
    assert main(["report", str(run_dir.root), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<script src=" not in text and "Plotly.newPlot" in text


def test_report_of_a_missing_run_directory_is_one_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "absent"), "--out", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"autopeft: error: {tmp_path / 'absent'}: run directory not found; "
        "expected the --out folder of `autopeft search`"
    )
    assert not (tmp_path / "r.html").exists()
