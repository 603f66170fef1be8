"""The method controllers inside a real `transformers.Trainer`, through `ControllerCallback`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

from autopeft.methods.trainer_callback import ControllerCallback
from autopeft.model_layout import block_index
from autopeft.models import load_classifier, load_tokenizer
from autopeft.tasks.task import TaskConfig, load_task
from autopeft.trial.adapters import apply_plan
from tests.methods.hand_loop import plan_for

STEPS = 12


class GradientAudit(TrainerCallback):
    """Records, at each pre-optimizer event, which blocks' LoRA weights hold grads."""

    def __init__(self) -> None:
        self.blocks_with_grads: list[set[int]] = []

    def on_pre_optimizer_step(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        self.blocks_with_grads.append(
            {
                block_index(n.removeprefix("base_model.model."))
                for n, p in model.named_parameters()
                if "lora_" in n and p.grad is not None
            }
        )


def _train(
    folder: Path, plan_methods: dict[str, dict[str, object]], tmp_path: Path, extra: list[TrainerCallback]
) -> ControllerCallback:
    tokenizer = load_tokenizer(folder)
    plan = plan_for(
        8 if "deep" in str(folder) else 2, plan_methods, ("attention.self.query", "intermediate.dense")
    )
    model, _ = apply_plan(load_classifier(folder, 2, tokenizer.pad_token_id), plan, total_steps=STEPS)
    task = load_task(TaskConfig(name="demo"), Path("."))
    dataset = [
        {**tokenizer(text, truncation=True, max_length=24), "labels": label}
        for (text,), label in task.train[: STEPS * 8]
    ]
    callback = ControllerCallback(plan)
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        per_device_train_batch_size=8,
        max_steps=STEPS,
        learning_rate=3e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[callback, *extra],
    ).train()
    return callback


def test_ist_runs_inside_the_trainer(deep_bert_dir: Path, tmp_path: Path) -> None:
    audit = GradientAudit()
    ist = {"mode": "ist", "active_layer_ratio": 0.25, "update_interval": 4}
    callback = _train(deep_bert_dir, {"ist": ist}, tmp_path, [audit])
    assert len(audit.blocks_with_grads) == STEPS
    assert all(len(blocks) == 2 for blocks in audit.blocks_with_grads)
    assert callback.reports["ist"]["score_updates"] == 2
    assert any(value != 0 for value in callback.reports["ist"]["importance"])


def test_adalora_runs_inside_the_trainer(tiny_bert_dir: Path, tmp_path: Path) -> None:
    callback = _train(tiny_bert_dir, {"adalora": {"target_rank_ratio": 0.5}}, tmp_path, [])
    report = callback.reports["adalora"]
    assert report["target_total_rank"] == 2 * 4
    assert report["target_total_rank"] - 2 <= report["total_rank"] <= report["target_total_rank"]


@pytest.mark.parametrize("method", ["ist", "adalora"])
def test_callback_reports_are_keyed_by_method(method: str, tiny_bert_dir: Path, tmp_path: Path) -> None:
    callback = _train(tiny_bert_dir, {method: {}}, tmp_path, [])
    assert list(callback.reports) == [method]
