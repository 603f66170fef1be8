"""The embedded search end to end: a real study, resume, Ctrl-C, show and export."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from peft import PeftModel

from autopeft.cli import main
from autopeft.models import load_classifier, load_tokenizer, resolve_model_path
from autopeft.search_space import SearchSpace
from autopeft.storage.run_directory import RunDirectory
from autopeft.tasks.task import load_task
from autopeft.tasks.tokenized_split import TokenizedSplit
from autopeft.trial import evaluate
from tests.space_files import write_space

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-trial search with the pretrained MiniLM on the demo task."""
    folder = tmp_path_factory.mktemp("minilm_search")
    space = write_space(folder, "minilm", trials=4, sampler="sampler: {name: nsga2, population_size: 4}")
    assert main(["search", str(space), "--out", str(folder / "run"), "--quiet"]) == 0
    return space, folder / "run"


def test_study_has_the_spaces_directions_and_every_trial_attribute(minilm_run: tuple[Path, Path]) -> None:
    _, run = minilm_run
    study = optuna.load_study(study_name="space", storage=RunDirectory(run).storage("journal"))
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.metric_names == ["task_metric", "trainable_parameters"]
    assert len(study.trials) == 4
    for trial in study.trials:
        assert set(trial.user_attrs) >= {"plan", "plan_summary", "artifact_dir", "trainable_parameters"}
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert trial.values[1] == trial.user_attrs["trainable_parameters"]
            assert (
                run / trial.user_attrs["artifact_dir"] / "adapter" / "adapter_model.safetensors"
            ).is_file()


def test_rerunning_to_six_trials_adds_exactly_two(minilm_run: tuple[Path, Path], tmp_path: Path) -> None:
    space, run = minilm_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["search", str(space), "--out", str(copy), "--trials", "6", "--quiet"]) == 0
    study = RunDirectory(copy).load_study()
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4, 5]
    plans = [json.dumps(t.user_attrs["plan"], sort_keys=True) for t in study.trials]
    assert plans[:4] == [
        json.dumps(t.user_attrs["plan"], sort_keys=True) for t in RunDirectory(run).load_study().trials
    ]


def test_exported_adapter_reproduces_the_trials_dev_predictions(
    minilm_run: tuple[Path, Path], tmp_path: Path
) -> None:
    space_path, run = minilm_run
    study = RunDirectory(run).load_study()
    number = next(t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    out = tmp_path / "exported"
    assert main(["export", str(run), "--trial", str(number), "--out", str(out)]) == 0
    folder = resolve_model_path("minilm")
    tokenizer = load_tokenizer(folder)
    base = load_classifier(folder, 2, tokenizer.pad_token_id)
    model = PeftModel.from_pretrained(base, out)
    space = SearchSpace.load(space_path)
    task = load_task(space.task, space_path.parent)
    dev = TokenizedSplit.build(task.dev[: space.budget.dev_examples], tokenizer, space.budget.max_length)
    predictions = evaluate(model, dev, 16, torch.device("cpu"))
    assert predictions == json.loads((run / "trials" / str(number) / "predictions.json").read_text())


def test_show_prints_the_front_as_json_and_table(
    minilm_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = minilm_run
    assert main(["show", str(run), "--json", "--all"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["on_front"] for r in rows)
    assert all(set(r["values"]) == {"task_metric", "trainable_parameters"} for r in rows)
    assert all(set(r) == set(JSON_KEYS) for r in rows)
    assert main(["show", str(run)]) == 0
    table = capsys.readouterr().out
    front = [r for r in rows if r["on_front"]]
    assert f"Pareto front of space ({len(front)} of 4 trials)" in table
    assert main(["show", str(run), "--all"]) == 0
    assert (
        f"Complete trials of space, Pareto front marked ({len(rows)} of 4 trials)" in capsys.readouterr().out
    )


JSON_KEYS = (
    "number",
    "state",
    "values",
    "planned_trainable_parameters",
    "summary",
    "feasible",
    "on_front",
    "reason",
)


def test_resuming_a_finished_search_leaves_the_journal_unchanged(
    minilm_run: tuple[Path, Path], tmp_path: Path
) -> None:
    space, run = minilm_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    journal = (copy / "study.journal").read_bytes()
    assert main(["search", str(space), "--out", str(copy), "--quiet"]) == 0
    assert (copy / "study.journal").read_bytes() == journal


def test_without_a_terminal_each_dev_evaluation_logs_one_line(
    tmp_path: Path,
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    space = write_space(tmp_path, tiny_bert_dir, trials=2)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # output that is not a terminal, as under nohup or CI
    with caplog.at_level(logging.INFO, logger="autopeft"):
        assert main(["search", str(space), "--out", str(tmp_path / "run")]) == 0
    pattern = re.compile(r"trial (\d+): step (\d+)/(\d+) task_metric=(\S+) \((\d+\.\d) s\)")
    logged = [m.groups() for m in map(pattern.fullmatch, caplog.messages) if m]
    study = RunDirectory(tmp_path / "run").load_study()
    expected = [
        (str(t.number), str(int(point["step"])), "6", f"{point['task_metric']:.4g}")
        for t in study.trials
        for point in t.user_attrs["curve"]
    ]
    assert len(expected) == 4  # two trials, two evaluations each
    assert [groups[:4] for groups in logged] == expected


WITH_CTRL_C = (  # `python -m autopeft ARGS` with Python's Ctrl-C handler, even if SIGINT came in ignored
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['autopeft', *sys.argv[1:]]; runpy.run_module('autopeft', run_name='__main__', alter_sys=True)"
)


def test_ctrl_c_leaves_the_study_consistent_and_resumes(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """The search is started with SIGINT at its default, so that Ctrl-C reaches it even when the test session
    itself runs in the background (a background job inherits SIGINT ignored, and Python keeps it ignored)."""
    space = write_space(
        tmp_path,
        tiny_bert_dir,
        trials=3,
        budget=(
            "budget: {train_examples: 64, dev_examples: 32, steps: 400, max_length: 24, batch_size: 8, evaluations: 2}"
        ),
        dimensions="dimensions:\n  modules: [query, value]\n  rank: {choices: [2, 4]}",
    )
    run = tmp_path / "run"
    command = [sys.executable, "-m", "autopeft", "search", str(space), "--out", str(run), "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-c", WITH_CTRL_C, *command[3:]],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 120
    while not (run / "trials" / "0" / "plan.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    study = RunDirectory(run).load_study()
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    assert study.trials[-1].user_attrs["reason"] == "interrupted"
    metrics = json.loads((run / "trials" / str(study.trials[-1].number) / "metrics.json").read_text())
    assert (metrics["state"], metrics["reason"]) == ("failed", "interrupted")
    short = space.read_text().replace("steps: 400", "steps: 4")
    space.write_text(short)
    assert (
        main(["search", str(space), "--out", str(run), "--quiet", "--study", "space"]) == 2
    )  # space changed
    space.write_text(short.replace("steps: 4", "steps: 400"))
    process = subprocess.run(
        command + ["--trials", "1"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert process.returncode == 0, process.stderr
    counted = [
        t for t in RunDirectory(run).load_study().trials if t.user_attrs.get("reason") != "interrupted"
    ]
    assert len(counted) == 1 and counted[0].state == optuna.trial.TrialState.COMPLETE
