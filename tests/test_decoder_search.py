"""`autopeft search` with an instruction task on the tiny causal LLaMA, end to end: two trials, a minimised
task metric, forgetting as an objective; and a bad JSONL line stops it before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from autopeft.cli import main
from autopeft.storage.run_directory import RunDirectory
from tests.tasks.tiny_chat import save_tiny_causal_lm

SPACE = """\
model: {model}
task: {{name: sft, train_file: train.jsonl, dev_file: dev.jsonl, packing: true}}
budget: {{train_examples: 32, dev_examples: 8, steps: 4, max_length: 32, batch_size: 4, learning_rate: 0.01,
         evaluations: 2}}
objectives: [{{name: task_metric}}, {{name: trainable_parameters}}, {{name: forgetting}}]
dimensions:
  layers: {{mode: per_layer}}
  modules: [q_proj, v_proj, down_proj]
  rank: {{choices: [0, 2, 4], share: module_type}}
sampler: {{name: random}}
seed: 0
"""


def _records(count: int) -> str:
    lines = []
    for a in range(count):
        if a % 2:
            lines.append({"prompt": f"what is {a} plus 2 ?", "response": str(a + 2)})
        else:
            turns = [
                {"role": "user", "content": f"what is {a} minus 1 ?"},
                {"role": "assistant", "content": str(a - 1)},
            ]
            lines.append({"messages": turns})
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture
def space(tmp_path: Path) -> Path:
    model = save_tiny_causal_lm(tmp_path / "tiny_lm")
    (tmp_path / "train.jsonl").write_text(_records(40))
    (tmp_path / "dev.jsonl").write_text(_records(10))
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.format(model=model))
    return path


def test_a_two_trial_sft_search_runs_end_to_end(space: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = space.parent / "run"
    assert main(["search", str(space), "--trials", "2", "--out", str(run), "--quiet"]) == 0
    study = optuna.load_study(study_name="space", storage=RunDirectory(run).storage("journal"))
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE] * 3  # the reply loss is minimised
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2
    for trial in complete:
        metrics = json.loads((run / trial.user_attrs["artifact_dir"] / "metrics.json").read_text())["metrics"]
        assert trial.values == [
            metrics["task_metric"],
            metrics["trainable_parameters"],
            metrics["forgetting"],
        ]
        assert trial.values[1] == trial.user_attrs["trainable_parameters"]  # no classifier head counted
        adapter = run / trial.user_attrs["artifact_dir"] / "adapter" / "adapter_config.json"
        assert json.loads(adapter.read_text())["task_type"] == "CAUSAL_LM"
    capsys.readouterr()
    assert main(["show", str(run), "--json", "--all"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown) == 2 and all("forgetting" in row["values"] for row in shown)


def test_a_bad_jsonl_line_exits_2_with_file_line_and_key(
    space: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (space.parent / "dev.jsonl").open("a") as handle:
        handle.write(json.dumps({"prompt": "what is 1 plus 1 ?"}) + "\n")
    run = space.parent / "run"
    assert main(["search", str(space), "--trials", "2", "--out", str(run), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith(f"{space.parent / 'dev.jsonl'}: line 11: missing key 'response'")
    assert len(error.splitlines()) == 1
    assert not run.exists()
