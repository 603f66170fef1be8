"""The static report: self-contained, readable with the network off, and showing the same points as the app."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import optuna
import pytest
from playwright.sync_api import BrowserContext, Page, Request

from autopeft.cli import main
from autopeft.dashboards.report import write_report
from autopeft.storage.run_directory import RunDirectory

MARKERS = "#pareto .scatterlayer .point"
FRONT_POINTS_ON_SCREEN = """() => {
  const plot = document.getElementById('pareto');
  const box = plot.getBoundingClientRect();
  const area = plot.querySelector('.draglayer .nsewdrag').getBoundingClientRect();
  const front = plot.data.findIndex(t => t.mode === 'markers' && t.name.startsWith('Pareto front'));
  const points = plot.querySelectorAll('.scatterlayer .trace')[front].querySelectorAll('.point');
  return {
    count: plot.data[front].x.length,
    area_in_figure: area.left >= box.left && area.right <= box.right + 1,
    points: Array.from(points).map(point => {
      const r = point.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
      return {
        in_area: x >= area.left && x <= area.right && y >= area.top && y <= area.bottom,
        visible: plot.contains(document.elementFromPoint(x, y)),
      };
    }),
  };
}"""


def section(page_html: str, number: int) -> str:
    """The text of trial `number`'s section in a report, entities decoded."""
    start = page_html.index(f"<section class='trial' id='trial-{number}'>")
    return html.unescape(page_html[start : page_html.index("</section>", start)])


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


@pytest.mark.parametrize("width", [1400, 1900])
def test_every_front_point_is_drawn_inside_the_visible_plot_area(
    page: Page, run_dir: RunDirectory, tmp_path: Path, screenshots: Path, width: int
) -> None:
    out = write_report(run_dir, tmp_path / "report.html")
    page.set_viewport_size({"width": width, "height": 1000})
    page.goto(out.as_uri())
    page.wait_for_selector(MARKERS, timeout=60_000)
    page.screenshot(path=screenshots / f"report_front_{width}.png")
    seen = page.evaluate(FRONT_POINTS_ON_SCREEN)
    assert seen["area_in_figure"], "the plot area reaches past the figure's own box"
    assert seen["count"] >= 1 and len(seen["points"]) == seen["count"]
    assert all(point["in_area"] and point["visible"] for point in seen["points"]), seen["points"]


def test_report_of_an_audited_light_peft_trial_draws_its_spectra_from_another_directory(
    light_peft_run: RunDirectory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(light_peft_run.root), "--out", "report.html"]) == 0
    trial = section((tmp_path / "report.html").read_text(encoding="utf-8"), 0)
    assert "id='spectra-0'" in trial and "class='problem'" not in trial


def test_report_shows_a_trials_unreadable_files_in_its_section_and_writes_the_rest(
    light_peft_run: RunDirectory, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(light_peft_run.root, tmp_path / "run"))
    audit_file = copy / "trials" / "0" / "audit.json"
    written = json.loads(audit_file.read_text())
    written["meta"]["base"] = "<BertForSequenceClassification>"  # what a model in memory was recorded as
    audit_file.write_text(json.dumps(written))
    (copy / "trials" / "1" / "metrics.json").write_text("{not json")
    page_html = write_report(RunDirectory.existing(copy), tmp_path / "report.html").read_text()
    audited, broken = section(page_html, 0), section(page_html, 1)
    assert (
        "meta.base: expected the audited base model's folder, got '<BertForSequenceClassification>'"
        in audited
    )
    assert "id='intruders-0'" in audited and "id='plan-0'" in audited
    assert "metrics.json: not valid JSON" in broken
    assert "id='pareto'" in page_html and page_html.count("<section class='trial'") == 2
