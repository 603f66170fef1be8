"""IST and RST: sparse active blocks, score updates, uniform sampling, and a graph that stops early."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from autopeft.budget import BudgetConfig
from autopeft.errors import PlanError
from autopeft.methods.ist import IstController
from autopeft.methods.resolved_plan import ResolvedPlan
from autopeft.model_layout import ModelLayout, block_index
from autopeft.tasks.task import TaskConfig
from autopeft.trial import TrialSpec, run_trial
from autopeft.trial.reporting import RecordingReporter
from tests.methods.hand_loop import CPU, hand_loop, plan_for

IST = {"mode": "ist", "active_layer_ratio": 0.25, "update_interval": 3, "rollout_batch_size": 8}


def _grads_by_block(model: torch.nn.Module) -> dict[int, list[bool]]:
    """For each block, whether each LoRA weight has a grad."""
    grads: dict[int, list[bool]] = {}
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            grads.setdefault(block_index(name.removeprefix("base_model.model.")), []).append(
                parameter.grad is not None
            )
    return grads


def test_exactly_the_active_blocks_get_gradients_each_step(deep_bert_dir: Path) -> None:
    loop = hand_loop(deep_bert_dir, plan_for(8, {"ist": IST}), total_steps=12)
    batches = loop.split.shuffled_forever(8, CPU, seed=1)
    for step in range(12):
        loop.forward_backward(step, next(batches))
        grads = _grads_by_block(loop.model)
        with_grads = {block for block, flags in grads.items() if all(flags)}
        without = {block for block, flags in grads.items() if not any(flags)}
        assert with_grads == set(loop.controller.active)
        assert len(with_grads) == 2 and len(without) == 6
        loop.update(step)


def test_scores_move_after_rollouts_and_only_then(deep_bert_dir: Path) -> None:
    loop = hand_loop(deep_bert_dir, plan_for(8, {"ist": IST}), total_steps=7)
    batches = loop.split.shuffled_forever(8, CPU, seed=2)
    for step in range(4):  # update_interval 3: the first update runs at the start of step 3
        assert torch.count_nonzero(loop.controller.scores) == 0
        loop.forward_backward(step, next(batches))
        loop.update(step)
    assert torch.count_nonzero(loop.controller.scores) > 0
    assert loop.controller.updates == 1


def test_rst_samples_blocks_uniformly(deep_bert_dir: Path) -> None:
    loop = hand_loop(deep_bert_dir, plan_for(8, {"ist": {**IST, "mode": "rst"}}), total_steps=4000)
    controller: IstController = loop.controller  # type: ignore[assignment]
    counts: Counter[int] = Counter()
    draws = 4000
    for step in range(draws):
        controller.before_step(step)
        counts.update(controller.active)
    expected = draws * controller.active_count / 8
    assert set(counts) == set(range(8))
    assert all(abs(count - expected) < 0.08 * expected for count in counts.values()), counts
    assert controller.updates == 0


def test_backward_graph_stops_at_the_lowest_active_block(deep_bert_dir: Path) -> None:
    loop = hand_loop(deep_bert_dir, plan_for(8, {"ist": {**IST, "active_layer_ratio": 0.25}}), total_steps=10)
    layers = loop.model.get_base_model().bert.encoder.layer
    needs_grad: dict[int, bool] = {}
    hooks = [
        layer.register_forward_hook(
            lambda module, inputs, output, i=i: needs_grad.__setitem__(
                i, output[0].requires_grad if isinstance(output, tuple) else output.requires_grad
            )
        )
        for i, layer in enumerate(layers)
    ]
    saved: list[int] = []
    batch = next(loop.split.shuffled_forever(8, CPU, seed=3))
    for step in range(10):
        loop.controller.before_step(step)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            loss = loop.model(**batch).loss
        lowest = min(loop.controller.active)
        assert [needs_grad[i] for i in range(8)] == [i >= lowest for i in range(8)]
        loss.backward()
        loop.update(step)
    for hook in hooks:
        hook.remove()
    sparse_saved = sum(saved) / 10
    loop.controller.finish()  # every adapter trainable again: the dense reference
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        loop.model(**batch).loss.backward()
    assert sparse_saved < 0.75 * sum(saved)


def test_importance_profile_is_saved_and_the_artifact_is_an_ordinary_adapter(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    budget = BudgetConfig(
        train_examples=64, dev_examples=32, steps=8, max_length=24, batch_size=8, evaluations=1
    )
    plan = plan_for(2, {"ist": {**IST, "active_layer_ratio": 0.5, "update_interval": 2}})
    result = run_trial(
        plan, TrialSpec(str(tiny_bert_dir), TaskConfig(name="demo"), budget), RecordingReporter(), tmp_path
    )
    assert result.state == "complete", result.reason
    report = result.method_reports["ist"]
    assert report["blocks"] == [0, 1] and len(report["importance"]) == 2 and report["score_updates"] == 3
    assert sum(report["active_counts"]) == 8
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and len(config["target_modules"]) == 4


def test_ist_with_adalora_is_rejected_naming_both(tiny_bert: torch.nn.Module) -> None:
    plan = plan_for(2, {"ist": IST, "adalora": {}})
    with pytest.raises(PlanError, match="methods.ist: cannot be combined with 'adalora'"):
        ResolvedPlan.resolve(plan, ModelLayout.from_model(tiny_bert))


def _head(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The trained copy of the classifier head (peft's `modules_to_save`)."""
    return {name: p for name, p in model.named_parameters() if "modules_to_save" in name}


def test_the_head_gets_a_gradient_and_changes_at_every_step(deep_bert_dir: Path) -> None:
    loop = hand_loop(deep_bert_dir, plan_for(8, {"ist": IST}), total_steps=12)
    head = _head(loop.model)
    optimized = {id(p) for group in loop.optimizer.param_groups for p in group["params"]}
    assert len(head) == 2 and {id(p) for p in head.values()} <= optimized
    batches = loop.split.shuffled_forever(8, CPU, seed=4)
    for step in range(12):  # roll-outs at steps 3, 6 and 9
        loop.forward_backward(step, next(batches))
        assert all(p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0 for p in head.values())
        before = {name: p.detach().clone() for name, p in head.items()}
        loop.update(step)
        assert all(not torch.equal(before[name], p) for name, p in head.items()), step


def test_every_block_is_trained_in_a_run_though_each_step_trains_two(deep_bert_dir: Path) -> None:
    loop = hand_loop(deep_bert_dir, plan_for(8, {"ist": IST}), total_steps=40)
    loop.run(40)
    assert all(count > 0 for count in loop.controller.active_counts)  # type: ignore[attr-defined]
    lora_b = {name: p for name, p in loop.model.named_parameters() if "lora_B" in name}
    assert len(lora_b) == 16 and all(torch.count_nonzero(p) > 0 for p in lora_b.values())  # B starts at 0
