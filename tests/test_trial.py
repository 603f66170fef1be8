"""run_trial: trains for real on both model families, reports, measures, saves, and fails cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from autopeft.budget import BudgetConfig
from autopeft.model_layout import ModelLayout
from autopeft.plan import ModuleSetting, PeftPlan
from autopeft.tasks.task import TaskConfig
from autopeft.trial import TrialSpec, run_trial
from autopeft.trial.reporting import RecordingReporter

BUDGET = BudgetConfig(
    train_examples=64,
    dev_examples=32,
    steps=6,
    max_length=24,
    batch_size=8,
    learning_rate=2e-3,
    evaluations=3,
)


def _plan(modules: tuple[str, ...], rank: int = 4) -> PeftPlan:
    return PeftPlan(
        adapters=tuple(
            ModuleSetting(layer=layer, module=m, rank=rank, alpha=2 * rank)
            for layer in range(2)
            for m in modules
        )
    )


def test_trial_on_tiny_llama_completes_with_every_objective(tiny_llama_dir: Path, tmp_path: Path) -> None:
    reporter = RecordingReporter()
    spec = TrialSpec(str(tiny_llama_dir), TaskConfig(name="demo"), BUDGET)
    result = run_trial(_plan(("self_attn.q_proj", "mlp.down_proj")), spec, reporter, tmp_path)
    assert result.state == "complete", result.reason
    assert set(result.metrics) >= {
        "task_metric",
        "trainable_parameters",
        "peak_memory_mb",
        "train_tokens_per_second",
        "wall_seconds",
    }
    assert 0.0 <= result.metrics["task_metric"] <= 1.0
    assert result.metrics["peak_memory_mb"] > 50 and result.metrics["train_tokens_per_second"] > 0
    phases = [
        result.metrics[f"train_{phase}_seconds"] for phase in ("hooks", "forward", "backward", "update")
    ]
    assert all(seconds >= 0 for seconds in phases) and phases[1] > 0 and phases[2] > 0
    assert sum(phases) < result.metrics["wall_seconds"]
    assert [step for step, _ in reporter.reports] == [2, 4, 6]
    assert all("trainable_parameters" in values for _, values in reporter.reports)
    assert len(result.dev_predictions) == 32
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == sorted(
        f"model.layers.{layer}.{m}" for layer in range(2) for m in ("self_attn.q_proj", "mlp.down_proj")
    )


def test_trial_is_reproducible_with_its_seed(tiny_bert_dir: Path, tmp_path: Path) -> None:
    spec = TrialSpec(str(tiny_bert_dir), TaskConfig(name="demo"), BUDGET, seed=3)
    plan = _plan(("attention.self.query",))
    first = run_trial(plan, spec, RecordingReporter(), tmp_path / "a")
    second = run_trial(plan, spec, RecordingReporter(), tmp_path / "b")
    assert first.curve[-1]["train_loss"] == second.curve[-1]["train_loss"]
    assert first.dev_predictions == second.dev_predictions


def test_reporter_stop_request_ends_the_trial_as_pruned(tiny_bert_dir: Path, tmp_path: Path) -> None:
    spec = TrialSpec(str(tiny_bert_dir), TaskConfig(name="demo"), BUDGET)
    result = run_trial(_plan(("attention.self.query",)), spec, RecordingReporter(stop_after=1), tmp_path)
    assert result.state == "pruned"
    assert result.metrics["steps"] == 2


def test_nan_loss_fails_the_trial_with_its_reason(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken_model"
    shutil.copytree(tiny_bert_dir, broken)
    weights = load_file(broken / "model.safetensors")
    weights["bert.embeddings.LayerNorm.weight"] = torch.full_like(
        weights["bert.embeddings.LayerNorm.weight"], float("nan")
    )
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    result = run_trial(
        _plan(("attention.self.query",)),
        TrialSpec(str(broken), TaskConfig(name="demo"), BUDGET),
        RecordingReporter(),
        tmp_path / "trial",
    )
    assert result.state == "failed"
    assert result.reason == "TrialFailure: loss became nan at step 0; lower the learning rate"


def test_plan_that_does_not_fit_the_model_fails_the_trial(tiny_bert_dir: Path, tmp_path: Path) -> None:
    spec = TrialSpec(str(tiny_bert_dir), TaskConfig(name="demo"), BUDGET)
    result = run_trial(_plan(("self_attn.q_proj",)), spec, RecordingReporter(), tmp_path)
    assert result.state == "failed"
    assert "layer 0 has no module 'self_attn.q_proj'" in result.reason


def test_trial_module_imports_neither_optuna_nor_ray() -> None:
    code = "import sys, autopeft.trial; print([m for m in ('optuna', 'ray') if m in sys.modules])"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_layout_reads_both_families(tiny_bert, tiny_llama) -> None:
    bert, llama = ModelLayout.from_model(tiny_bert), ModelLayout.from_model(tiny_llama)
    assert bert.num_layers == llama.num_layers == 2
    assert bert.head_names == ("classifier",) and llama.head_names == ("score",)
    assert llama.resolve_module_type("q_proj") == "self_attn.q_proj"
    assert bert.resolve_module_type("intermediate") == "intermediate.dense"
