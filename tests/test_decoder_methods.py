"""Every method of the mix runs a trial on a causal LLaMA (GQA: 4 query heads share 2 key-value heads, a gated
MLP), and its exported adapter, loaded by `load_exported` from the base folder, generates exactly the tokens the
trial's own final model generated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from autopeft.budget import BudgetConfig
from autopeft.export import load_exported
from autopeft.methods import METHODS
from autopeft.models import load_causal_lm
from autopeft.plan import ModuleSetting, PeftPlan
from autopeft.pruning.artifact import is_pruned_adapter
from autopeft.tasks.task import TaskConfig
from autopeft.trial import TrialSpec, run_trial
from autopeft.trial.reporting import RecordingReporter
from tests.final_generations import catch_final_generations, greedy_tokens
from tests.tasks.tiny_chat import save_tiny_causal_lm

BUDGET = BudgetConfig(
    train_examples=64, dev_examples=8, steps=8, max_length=24, batch_size=8, learning_rate=1e-2, evaluations=2
)
MODULES = ("self_attn.q_proj", "self_attn.v_proj", "mlp.up_proj", "mlp.down_proj")
PROMPTS = torch.tensor([[2, 5, 9, 14, 21, 6], [2, 6, 30, 31, 32, 6]])


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.mark.parametrize("key", sorted(METHODS))
def test_each_method_trains_a_causal_lm_and_its_export_generates_the_trial_tokens(
    key: str, tiny_lm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = catch_final_generations(monkeypatch, PROMPTS)
    adapters = tuple(ModuleSetting(layer=i, module=m, rank=4, alpha=8) for i in range(2) for m in MODULES)
    plan = PeftPlan(adapters=adapters, methods={key: {}})
    spec = TrialSpec(str(tiny_lm_dir), TaskConfig(name="demo_sft", metric="loss"), BUDGET)
    result = run_trial(plan, spec, RecordingReporter(), tmp_path)
    assert result.state == "complete", result.reason
    assert key in result.method_reports
    adapter = tmp_path / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
    reloaded = load_exported(tiny_lm_dir, adapter)
    assert greedy_tokens(reloaded, PROMPTS) == generated[0]
    if not is_pruned_adapter(adapter):  # a plain peft load sees the same model
        plain = PeftModel.from_pretrained(load_causal_lm(tiny_lm_dir, 0), adapter)
        assert greedy_tokens(plain, PROMPTS) == generated[0]


def test_light_peft_prunes_query_heads_with_the_key_value_head_they_share(
    tiny_lm_dir: Path, tmp_path: Path
) -> None:
    adapters = tuple(ModuleSetting(layer=i, module=m, rank=4, alpha=8) for i in range(2) for m in MODULES)
    methods = {"light_peft": {"head_ratio": 0.5, "ffn_ratio": 0.25, "ffn_scope": "layerwise"}}
    spec = TrialSpec(str(tiny_lm_dir), TaskConfig(name="demo_sft", metric="loss"), BUDGET)
    result = run_trial(PeftPlan(adapters=adapters, methods=methods), spec, RecordingReporter(), tmp_path)
    assert result.state == "complete", result.reason
    base = load_exported(tiny_lm_dir, tmp_path / "adapter").get_base_model()
    for block in base.model.layers:
        attention = block.self_attn
        # one of two key-value groups removed: 2 of 4 query heads and 1 of 2 key/value heads, 8 wide each
        assert attention.q_proj.out_features == 16 and attention.o_proj.in_features == 16
        assert attention.k_proj.out_features == 8 and attention.v_proj.out_features == 8
        assert block.mlp.gate_proj.out_features == block.mlp.up_proj.out_features == 48
        assert block.mlp.down_proj.in_features == 48
