"""AdaLoRA: the budget is met, ranks move between modules, and the plain-LoRA export reproduces the outputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from autopeft.budget import BudgetConfig
from autopeft.methods.adalora import adalora_to_lora
from autopeft.model_layout import ModelLayout
from autopeft.models import load_classifier, load_tokenizer
from autopeft.tasks.task import TaskConfig
from autopeft.trial import TrialSpec, run_trial
from autopeft.trial.reporting import RecordingReporter
from tests.methods.hand_loop import CPU, hand_loop, plan_for

MODULES = ("attention.self.query", "attention.self.value", "intermediate.dense", "output.dense")
ADALORA = {"target_rank_ratio": 0.5, "initial_fraction": 0.1, "final_fraction": 0.2}


def test_final_total_rank_meets_the_budget_and_ranks_differ(tiny_bert_dir: Path, tmp_path: Path) -> None:
    budget = BudgetConfig(
        train_examples=256,
        dev_examples=32,
        steps=40,
        max_length=24,
        batch_size=8,
        learning_rate=3e-3,
        evaluations=1,
    )
    plan = plan_for(2, {"adalora": ADALORA}, MODULES, rank=8)
    result = run_trial(
        plan, TrialSpec(str(tiny_bert_dir), TaskConfig(name="demo"), budget), RecordingReporter(), tmp_path
    )
    assert result.state == "complete", result.reason
    report = result.method_reports["adalora"]
    assert report["target_total_rank"] == 4 * len(plan.adapted)
    assert report["target_total_rank"] - 2 <= report["total_rank"] <= report["target_total_rank"]
    assert len(set(report["final_ranks"].values())) > 1
    assert result.final_plan is not None
    assert sum(a.rank for a in result.final_plan.adapted) == report["total_rank"]


def test_exported_lora_reproduces_the_adalora_outputs(tiny_bert_dir: Path, tmp_path: Path) -> None:
    plan = plan_for(2, {"adalora": ADALORA}, MODULES, rank=8)
    loop = hand_loop(tiny_bert_dir, plan, total_steps=20, lr=5e-3)
    loop.run(20)
    loop.model.eval()
    batch = {k: v for k, v in next(loop.split.shuffled_forever(16, CPU, seed=5)).items() if k != "labels"}
    with torch.no_grad():
        expected = loop.model(**batch).logits
    layout = ModelLayout.from_model(loop.model.get_base_model())
    lora_model, final_plan = adalora_to_lora(loop.model, plan, layout)
    lora_model.save_pretrained(tmp_path / "adapter")
    tokenizer = load_tokenizer(tiny_bert_dir)
    reloaded = PeftModel.from_pretrained(
        load_classifier(tiny_bert_dir, 2, tokenizer.pad_token_id), tmp_path / "adapter"
    )
    reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)
    assert reloaded.peft_config["default"].peft_type.value == "LORA"
    assert sum(a.rank for a in final_plan.adapted) <= 4 * len(plan.adapted)


def test_head_and_every_factor_get_gradients_and_change_at_every_step(tiny_bert_dir: Path) -> None:
    plan = plan_for(2, {"adalora": ADALORA}, MODULES, rank=8)
    loop = hand_loop(tiny_bert_dir, plan, total_steps=20, lr=5e-3)
    trainable = {name: p for name, p in loop.model.named_parameters() if p.requires_grad}
    optimized = {id(p) for group in loop.optimizer.param_groups for p in group["params"]}
    kinds = Counter(name.split(".")[-2] if "lora_" in name else name.split(".")[-3] for name in trainable)
    assert kinds == {"lora_A": 8, "lora_E": 8, "lora_B": 8, "modules_to_save": 2}
    assert {id(p) for p in trainable.values()} == optimized
    moving = {name: p for name, p in trainable.items() if "lora_E" not in name}  # masking may zero E again
    batches = loop.split.shuffled_forever(8, CPU, seed=1)
    for step in range(20):
        loop.forward_backward(step, next(batches))
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.values()), step
        before = {name: p.detach().clone() for name, p in moving.items()}
        loop.update(step)
        assert all(not torch.equal(before[name], p) for name, p in moving.items()), step
    kept = sum(int(torch.count_nonzero(p)) for name, p in trainable.items() if "lora_E" in name)
    assert 0 < kept <= 4 * len(plan.adapted)  # E starts at 0: the kept triplets have learned a value


def _distance_from_orthonormal(rows: torch.Tensor) -> torch.Tensor:
    """||R Rᵀ - I||_F (unsquared, as peft's regulariser) for the (r, d) factor R: A, or Bᵀ."""
    return torch.linalg.matrix_norm(rows @ rows.T - torch.eye(len(rows)))


def test_the_loss_carries_the_orthogonality_regulariser(tiny_bert_dir: Path) -> None:
    plan = plan_for(2, {"adalora": {**ADALORA, "orth_reg_weight": 0.3}}, MODULES, rank=8)
    loop = hand_loop(tiny_bert_dir, plan, total_steps=20)
    batch = next(loop.split.shuffled_forever(8, CPU, seed=2))
    with torch.no_grad():
        output = loop.model(**batch)
        distances = [
            _distance_from_orthonormal(p if "lora_A" in name else p.T)
            for name, p in loop.model.named_parameters()
            if "lora_A" in name or "lora_B" in name
        ]
    cross_entropy = torch.nn.functional.cross_entropy(output.logits, batch["labels"])
    assert len(distances) == 16
    assert float(output.loss - cross_entropy) == pytest.approx(
        0.3 * float(torch.stack(distances).mean()), rel=1e-4
    )
