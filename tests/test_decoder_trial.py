"""run_trial on a causal LM: the task kind supplies the LM head, CAUSAL_LM adapters, reply-only batches (padded
or packed), its dev metric, truncation counts and forgetting; the trial itself is the classification one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autopeft.budget import BudgetConfig
from autopeft.model_layout import ModelLayout
from autopeft.models import load_causal_lm
from autopeft.plan import ModuleSetting, PeftPlan
from autopeft.tasks.task import TaskConfig
from autopeft.trial import TrialSpec, run_trial
from autopeft.trial.reporting import RecordingReporter
from tests.tasks.tiny_chat import save_tiny_causal_lm

BUDGET = BudgetConfig(
    train_examples=64,
    dev_examples=16,
    steps=9,
    max_length=24,
    batch_size=8,
    eval_batch_size=8,
    learning_rate=1e-2,
    evaluations=3,
)
MODULES = ("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj")


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"))


def _plan(rank: int = 4, methods: dict | None = None) -> PeftPlan:
    adapters = tuple(
        ModuleSetting(layer=layer, module=m, rank=rank, alpha=2 * rank) for layer in range(2) for m in MODULES
    )
    return PeftPlan(adapters=adapters, methods=methods or {})


def test_a_causal_lm_has_no_classifier_head_to_train(tiny_lm_dir: Path) -> None:
    model = load_causal_lm(tiny_lm_dir, 0)
    layout = ModelLayout.from_model(model)
    assert layout.head_parameters == 0 and layout.head_names == ()
    assert _plan().lora_config_kwargs(layout)["modules_to_save"] == []
    assert _plan().trainable_parameters(layout) == 2 * 4 * ((32 + 32) + (32 + 16) + (64 + 32))
    assert model.config.use_cache is False  # packed rows need it off (per-conversation attention)


@pytest.mark.parametrize("packing", [False, True])
def test_sft_trial_lowers_the_reply_loss_and_saves_a_causal_lm_adapter(
    tiny_lm_dir: Path, tmp_path: Path, packing: bool
) -> None:
    reporter = RecordingReporter()
    task = TaskConfig(name="demo_sft", metric="loss", packing=packing)
    result = run_trial(_plan(), TrialSpec(str(tiny_lm_dir), task, BUDGET), reporter, tmp_path)
    assert result.state == "complete", result.reason
    losses = [point["task_metric"] for point in result.curve]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert result.metrics["task_metric"] == losses[-1]
    assert result.metrics["trainable_parameters"] == 2 * 4 * ((32 + 32) + (32 + 16) + (64 + 32))
    assert {"forgetting", "train_truncated_examples", "dev_dropped_examples"} <= set(result.metrics)
    assert result.metrics["forgetting"] != 0.0 and result.metrics["train_tokens_per_second"] > 0
    assert result.dev_predictions == []
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and not config["modules_to_save"]


def test_truncation_is_reported_in_the_trial_metrics(tiny_lm_dir: Path, tmp_path: Path) -> None:
    budget = BUDGET.model_copy(update={"max_length": 12, "steps": 2, "evaluations": 1})
    spec = TrialSpec(str(tiny_lm_dir), TaskConfig(name="demo_sft", metric="loss"), budget)
    result = run_trial(_plan(), spec, RecordingReporter(), tmp_path)
    assert result.state == "complete", result.reason
    # "<user> how many words are in this list : w1 , ... ? </s> <assistant> n </s>" is 12 tokens or more
    assert result.metrics["train_truncated_examples"] > 0
    assert result.metrics["train_dropped_examples"] <= result.metrics["train_truncated_examples"]


def test_exact_match_trial_scores_each_dev_conversation(tiny_lm_dir: Path, tmp_path: Path) -> None:
    records = [{"messages": [{"role": "user", "content": f"what is {a} plus 1 ?"},
                             {"role": "assistant", "content": str(a + 1)}]} for a in range(40)]  # fmt: skip
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    task = TaskConfig(name="sft", train_file="train.jsonl", dev_file="train.jsonl", metric="exact_match")
    spec = TrialSpec(str(tiny_lm_dir), task, BUDGET.model_copy(update={"steps": 2}), str(tmp_path))
    result = run_trial(_plan(), spec, RecordingReporter(), tmp_path / "trial")
    assert result.state == "complete", result.reason
    assert len(result.dev_predictions) == 16 and set(result.dev_predictions) <= {0, 1}
    assert result.metrics["task_metric"] == sum(result.dev_predictions) / 16


def test_adalora_on_a_causal_lm_exports_a_causal_lm_adapter(tiny_lm_dir: Path, tmp_path: Path) -> None:
    spec = TrialSpec(str(tiny_lm_dir), TaskConfig(name="demo_sft", metric="loss"), BUDGET)
    result = run_trial(_plan(methods={"adalora": {}}), spec, RecordingReporter(), tmp_path)
    assert result.state == "complete", result.reason
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and not config["modules_to_save"]
    assert torch.isfinite(torch.tensor(result.metrics["task_metric"]))
