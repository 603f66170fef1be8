"""Fixtures for the dashboard tests: a real short search and a real Dash server (the headless chromium is the
session's one, `tests/browser.py`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from autopeft.cli import main
from autopeft.dashboards.run_source import RunSource
from autopeft.dashboards.server import DashboardServer
from autopeft.storage.run_directory import RunDirectory
from tests.space_files import write_space

OBJECTIVES = (
    "objectives: [{name: task_metric, direction: maximize}, {name: trainable_parameters, "
    "direction: minimize}, {name: wall_seconds, direction: minimize}]\n"
    "constraints: {max_trainable_parameters: 420}"
)
LIGHT_PEFT = "methods: {light_peft: {enabled: true, head_ratio: 0.5, estimation_steps: 2}}"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> RunDirectory:
    """A real study: 5 trials of tiny BERT, three objectives and a parameter budget some plans break."""
    folder = tmp_path_factory.mktemp("dashboard_study")
    space = write_space(folder, tiny_bert_dir, trials=5, objectives=OBJECTIVES)
    assert main(["search", str(space), "--out", str(folder / "run"), "--quiet"]) == 0
    return RunDirectory.existing(folder / "run")


@pytest.fixture(scope="session")
def light_peft_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> RunDirectory:
    """A real Light-PEFT study (2 trials, half the heads pruned) whose trial 0 was audited as a user would:
    `autopeft audit run --trial 0`, with the run directory given relative to the working directory."""
    folder = tmp_path_factory.mktemp("light_peft_study")
    space = write_space(folder, tiny_bert_dir, trials=2, methods=LIGHT_PEFT)
    assert main(["search", str(space), "--out", str(folder / "run"), "--quiet"]) == 0
    with contextlib.chdir(folder):
        assert main(["audit", "run", "--trial", "0", "--quiet", "--no-cache", "--spectrum", "top"]) == 0
    return RunDirectory.existing(folder / "run")


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
