"""DiffoRA (autopeft's reconstruction): gate steps, exact kept-set sizes, inherited weights, random control."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autopeft.budget import BudgetConfig
from autopeft.methods.diffora import DifforaConfig, DifforaController, _Gates
from autopeft.models import load_classifier, load_tokenizer
from autopeft.tasks.task import TaskConfig, load_task
from autopeft.tasks.tokenized_split import TokenizedSplit
from autopeft.trial.adapters import apply_plan
from autopeft.trial.phase_services import PhaseServices
from tests.methods.hand_loop import CPU, plan_for

MODULES = ("attention.self.query", "attention.self.value", "intermediate.dense", "output.dense")
BUDGET = BudgetConfig(
    train_examples=128, dev_examples=32, steps=20, max_length=24, batch_size=8, learning_rate=3e-3
)


def _services(folder: Path) -> PhaseServices:
    tokenizer = load_tokenizer(folder)
    split = TokenizedSplit.build(load_task(TaskConfig(name="demo"), Path(".")).train[:128], tokenizer, 24)
    return PhaseServices(
        lambda: load_classifier(folder, 2, tokenizer.pad_token_id), split, BUDGET, CPU, 0, str(folder), None
    )


def _prepared(folder: Path, **config: object) -> tuple[DifforaController, object]:
    torch.manual_seed(0)  # dropout draws: run_trial seeds everything, a bare prepare does not
    controller = DifforaController(DifforaConfig(steps=6, gate_lr=0.05, **config))
    return controller, controller.prepare(plan_for(2, {"diffora": {}}, MODULES), _services(folder))


def test_gates_get_gradients_only_in_gate_steps(tiny_bert_dir: Path) -> None:
    services = _services(tiny_bert_dir)
    model, _ = apply_plan(services.load_base(), plan_for(2, {}, MODULES), 10)
    with torch.no_grad():  # LoRA starts with B = 0, where every gate gradient is exactly 0
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    gates = _Gates(model, "sigmoid")
    batch = next(services.batches(8, 0))
    model(**batch).loss.backward()
    assert all(p.grad is None for p in gates.parameters())
    assert any(p.grad is not None for n, p in model.named_parameters() if "lora_B" in n)
    gates.learning = True
    grads = torch.autograd.grad(model(**batch).loss, list(gates.parameters()))
    assert all(g is not None for g in grads) and any(float(g.abs()) > 0 for g in grads)


def test_selection_phase_moves_the_gates(tiny_bert_dir: Path) -> None:
    controller, _ = _prepared(tiny_bert_dir)
    assert controller.gate_steps == 6
    assert any(abs(value - 0.5) > 1e-4 for value in controller.gate_values.values())


@pytest.mark.parametrize(
    ("rho", "scope", "expected"),
    [(0.25, "global", 2), (0.5, "global", 4), (0.25, "layer", 2), (0.75, "layer", 6)],
)
def test_kept_set_has_exactly_the_requested_size(
    rho: float, scope: str, expected: int, tiny_bert_dir: Path
) -> None:
    controller, prepared = _prepared(tiny_bert_dir, rho=rho, scope=scope)
    assert len(controller.selected) == expected
    assert len(prepared.plan.adapted) == expected
    if scope == "layer":
        assert {name.split(".layer.")[1][0] for name in controller.selected} == {"0", "1"}
    gates = controller.gate_values
    if scope == "global":
        threshold = min(gates[n] for n in controller.selected)
        assert all(gates[n] <= threshold for n in gates if n not in controller.selected)


def test_kept_modules_carry_over_the_selection_phase_weights(tiny_bert_dir: Path) -> None:
    controller, prepared = _prepared(tiny_bert_dir, rho=0.5)
    state = {k.removeprefix("base_model.model."): v for k, v in prepared.model.state_dict().items()}
    for name in controller.selected:
        assert torch.equal(state[f"{name}.lora_A.default.weight"], controller.inherited[f"{name}.lora_A"])
        assert torch.equal(state[f"{name}.lora_B.default.weight"], controller.inherited[f"{name}.lora_B"])
    adapted = {k.split(".lora_A")[0] for k in state if ".lora_A." in k}
    assert adapted == set(controller.selected)


def test_gate_is_folded_into_the_inherited_b(tiny_bert_dir: Path) -> None:
    folded, _ = _prepared(tiny_bert_dir, rho=0.5, fold_gate=True)
    plain, _ = _prepared(tiny_bert_dir, rho=0.5, fold_gate=False)
    assert folded.selected == plain.selected
    name = folded.selected[0]
    torch.testing.assert_close(
        folded.inherited[f"{name}.lora_B"], folded.gate_values[name] * plain.inherited[f"{name}.lora_B"]
    )


def test_random_control_arm_keeps_as_many_modules(tiny_bert_dir: Path) -> None:
    chosen, _ = _prepared(tiny_bert_dir, rho=0.5)
    random_arm, _ = _prepared(tiny_bert_dir, rho=0.5, selection="random")
    assert len(random_arm.selected) == len(chosen.selected) == 4
