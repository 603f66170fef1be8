"""Light-PEFT: pruned shapes follow the plan, the export reloads and reproduces, the estimation is cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autopeft.budget import BudgetConfig
from autopeft.export import load_exported
from autopeft.models import load_tokenizer
from autopeft.tasks.task import TaskConfig, load_task
from autopeft.tasks.tokenized_split import TokenizedSplit
from autopeft.trial import TrialSpec, evaluate, run_trial
from autopeft.trial.reporting import RecordingReporter
from tests.methods.hand_loop import plan_for

BUDGET = BudgetConfig(
    train_examples=128,
    dev_examples=32,
    steps=12,
    max_length=24,
    batch_size=8,
    learning_rate=3e-3,
    evaluations=1,
)
BERT = (
    "attention.self.query",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
LLAMA = ("self_attn.q_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.up_proj", "mlp.down_proj")


def _trial(folder: Path, modules: tuple[str, ...], out: Path, cache: Path, **config: object):
    plan = plan_for(2, {"light_peft": {"estimation_steps": 6, **config}}, modules)
    spec = TrialSpec(str(folder), TaskConfig(name="demo"), BUDGET, cache_dir=str(cache))
    result = run_trial(plan, spec, RecordingReporter(), out)
    assert result.state == "complete", result.reason
    return result


@pytest.mark.parametrize(("family", "modules"), [("tiny_bert_dir", BERT), ("tiny_llama_dir", LLAMA)])
def test_pruned_shapes_follow_the_plan_and_the_export_reproduces(
    family: str, modules: tuple[str, ...], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    folder = request.getfixturevalue(family)
    result = _trial(folder, modules, tmp_path / "trial", tmp_path / "cache", head_ratio=0.25, ffn_ratio=0.5)
    plan = json.loads((tmp_path / "trial" / "adapter" / "pruning_plan.json").read_text())
    model = load_exported(folder, tmp_path / "trial" / "adapter")
    report = result.method_reports["light_peft"]
    shape = plan["shape"]
    layers = (
        model.get_base_model().base_model.layers
        if "llama" in family
        else model.get_base_model().bert.encoder.layer
    )
    for index, layer in enumerate(layers):
        if "llama" in family:
            kv_left = shape["num_kv_heads"] - report["pruned_heads"][index]
            assert (
                layer.self_attn.k_proj.base_layer.out_features == kv_left * shape["head_dim"]
                if hasattr(layer.self_attn.k_proj, "base_layer")
                else layer.self_attn.k_proj.out_features
            )
            up = layer.mlp.up_proj
        else:
            heads_left = shape["num_heads"] - report["pruned_heads"][index]
            query = layer.attention.self.query
            assert getattr(query, "base_layer", query).out_features == heads_left * shape["head_dim"]
            up = layer.intermediate.dense
        assert (
            getattr(up, "base_layer", up).out_features
            == shape["intermediate_size"] - report["pruned_neurons"][index]
        )
    assert sum(report["pruned_neurons"]) == pytest.approx(0.5 * 2 * shape["intermediate_size"], abs=2)
    assert (
        result.metrics["model_parameters"]
        < sum(
            p.numel()
            for p in load_exported(folder, tmp_path / "trial" / "adapter").get_base_model().parameters()
        )
        + 1
    )
    tokenizer = load_tokenizer(folder)
    dev = TokenizedSplit.build(load_task(TaskConfig(name="demo"), Path(".")).dev[:32], tokenizer, 24)
    assert evaluate(model, dev, 16, torch.device("cpu")) == result.dev_predictions


def test_pruning_makes_the_model_smaller(tiny_bert_dir: Path, tmp_path: Path) -> None:
    pruned = _trial(tiny_bert_dir, BERT, tmp_path / "a", tmp_path / "cache", head_ratio=0.5, ffn_ratio=0.5)
    unpruned = _trial(tiny_bert_dir, BERT, tmp_path / "b", tmp_path / "cache", head_ratio=0.0, ffn_ratio=0.0)
    assert unpruned.method_reports["light_peft"]["pruned_heads"] == [0, 0]
    assert pruned.metrics["model_parameters"] < unpruned.metrics["model_parameters"]


def test_estimation_is_cached_across_ratios_and_not_recomputed(tiny_bert_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _trial(tiny_bert_dir, BERT, tmp_path / "a", cache, module_ratio=0.5)
    files = sorted(cache.rglob("estimation.safetensors"))
    stamp = files[0].stat().st_mtime_ns
    second = _trial(tiny_bert_dir, BERT, tmp_path / "b", cache, module_ratio=0.25, head_ratio=0.5)
    assert first.method_reports["light_peft"]["estimation_cached"] is False
    assert second.method_reports["light_peft"]["estimation_cached"] is True
    assert sorted(cache.rglob("estimation.safetensors")) == files and files[0].stat().st_mtime_ns == stamp
    assert (
        second.method_reports["light_peft"]["module_importance"]
        == first.method_reports["light_peft"]["module_importance"]
    )
    third = _trial(tiny_bert_dir, BERT, tmp_path / "c", cache, l1=1e-3)
    assert third.method_reports["light_peft"]["estimation_cached"] is False
    assert len(list(cache.rglob("estimation.safetensors"))) == 2


def test_module_and_rank_ratios_shrink_the_adapter(tiny_bert_dir: Path, tmp_path: Path) -> None:
    result = _trial(tiny_bert_dir, BERT, tmp_path / "a", tmp_path / "cache", module_ratio=0.5, rank_ratio=0.5)
    kept = result.method_reports["light_peft"]["kept_ranks"]
    assert 1 <= len(kept) <= 5 and sum(kept.values()) < 4 * len(kept) + 1
    assert result.final_plan is not None
    assert {a.rank for a in result.final_plan.adapted} <= {1, 2, 3, 4}


def test_a_light_peft_trial_audits_against_its_pruned_base(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from autopeft.cli import main

    run = tmp_path / "run"
    _trial(tiny_bert_dir, BERT, run / "trials" / "0", tmp_path / "cache", head_ratio=0.25)
    assert main(["audit", str(run), "--trial", "0", "--quiet", "--no-cache"]) == 0
    audit = json.loads((run / "trials" / "0" / "audit.json").read_text())
    adapted = json.loads((run / "trials" / "0" / "adapter" / "adapter_config.json").read_text())[
        "target_modules"
    ]
    deltas = [row for row in audit["rows"] if row["kind"] == "delta"]
    assert len(deltas) == len(adapted) and not [row for row in audit["rows"] if row["kind"] == "unmatched"]
