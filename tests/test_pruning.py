"""Structural pruning (METHODS.md §5, Phase P): plans, masks, exact slicing, LoRA slicing and reloading.

Exactness is the central check: a pruned model must compute what the unpruned model computes with the pruned
heads and neurons masked to 0, for BERT and for LLaMA with grouped KV heads, with and without a LoRA adapter.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

from autopeft.errors import PlanError
from autopeft.pruning.layout import PruningShape
from autopeft.pruning.masks import install_masks
from autopeft.pruning.pruning_plan import (
    PruningPlan,
    apply_pruning,
    load_pruned,
    plan_pruning,
    slice_lora_state,
)

BERT_SHAPE = PruningShape("bert", num_layers=2, num_heads=4, num_kv_heads=4, head_dim=8, intermediate_size=64)
LLAMA_SHAPE = PruningShape(
    "llama", num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, intermediate_size=64
)
# Layer 0 loses a third of its neurons (every third one); layer 1 keeps its FFN whole.
THIRD = tuple(range(0, 64, 3))
BERT_PLAN = PruningPlan(BERT_SHAPE, pruned_heads=((1,), (0, 3)), pruned_neurons=(THIRD, ()))
LLAMA_PLAN = PruningPlan(LLAMA_SHAPE, pruned_heads=((1,), ()), pruned_neurons=(THIRD, ()))
LORA_TARGETS = {
    "bert": ["query", "key", "value", "dense"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def padded_batch() -> dict[str, torch.Tensor]:
    """Three sequences of lengths 7, 4 and 2, right-padded with token 0 (the tiny LLaMA's pad token)."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 1000, (3, 7), generator=generator)
    attention_mask = (torch.arange(7) < torch.tensor([[7], [4], [2]])).long()
    return {"input_ids": input_ids * attention_mask, "attention_mask": attention_mask}


def logits(model: nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**padded_batch()).logits


def masked_logits(model: nn.Module, plan: PruningPlan) -> torch.Tensor:
    """Logits of the unpruned `model` with the plan's heads and neurons masked to 0 by hooks."""
    masks = install_masks(model)
    masks.set_values(plan.head_keep(), plan.neuron_keep())
    result = logits(model)
    masks.remove()
    return result


def lora(model: nn.Module, family: str) -> nn.Module:
    """LoRA on every projection, with random non-zero B so that the adapter changes the outputs."""
    torch.manual_seed(2)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=LORA_TARGETS[family], init_lora_weights=False, task_type="SEQ_CLS"
    )
    return get_peft_model(model, config)


@pytest.fixture(params=["bert", "llama"])
def case(request: pytest.FixtureRequest) -> tuple[str, nn.Module, PruningPlan]:
    """(family, tiny model, a plan that prunes heads in both layers or one, and neurons in layer 0 only)."""
    if request.param == "bert":
        return "bert", request.getfixturevalue("tiny_bert"), BERT_PLAN
    return "llama", request.getfixturevalue("tiny_llama"), LLAMA_PLAN


def test_bert_pruned_shapes_follow_the_plan(tiny_bert: nn.Module) -> None:
    result = apply_pruning(tiny_bert, BERT_PLAN)
    layer0, layer1 = tiny_bert.bert.encoder.layer
    assert layer0.attention.self.query.weight.shape == (24, 32)
    assert layer0.attention.self.value.bias.shape == (24,)
    assert layer0.attention.output.dense.weight.shape == (32, 24)
    assert layer1.attention.self.key.weight.shape == (16, 32)
    assert [layer0.attention.self.num_attention_heads, layer0.attention.self.all_head_size] == [3, 24]
    assert layer0.intermediate.dense.weight.shape == (64 - 22, 32)
    assert layer0.output.dense.weight.shape == (32, 42)
    # a layer has 8544 parameters; a head costs 3·(8·32+8) + 8·32 = 1048 and 22 neurons 22·(33+32) = 1430
    assert result.layer_parameters == (8544 - 1048 - 1430, 8544 - 2 * 1048)


def test_llama_gqa_pruning_removes_a_kv_group_with_its_query_heads(tiny_llama: nn.Module) -> None:
    apply_pruning(tiny_llama, LLAMA_PLAN)
    attention = tiny_llama.model.layers[0].self_attn
    assert [attention.q_proj.out_features, attention.k_proj.out_features] == [16, 8]
    assert attention.v_proj.weight.shape == (8, 32)
    assert attention.o_proj.weight.shape == (32, 16)
    assert attention.num_key_value_groups == 2
    mlp = tiny_llama.model.layers[0].mlp
    assert [mlp.gate_proj.out_features, mlp.up_proj.out_features, mlp.down_proj.in_features] == [42, 42, 42]


def test_layers_with_nothing_to_remove_keep_their_weight_tensors(tiny_llama: nn.Module) -> None:
    layer1 = tiny_llama.model.layers[1]
    before = [layer1.mlp.down_proj.weight, layer1.self_attn.q_proj.weight]
    apply_pruning(tiny_llama, LLAMA_PLAN)
    assert [layer1.mlp.down_proj.weight, layer1.self_attn.q_proj.weight] == before


def test_parameter_counts_after_pruning_are_reported(tiny_llama: nn.Module) -> None:
    total = sum(p.numel() for p in tiny_llama.parameters())
    result = apply_pruning(tiny_llama, LLAMA_PLAN)
    removed = 16 * 32 + 8 * 32 * 2 + 32 * 16 + 22 * 32 * 3  # q, k+v, o columns, gate+up rows and down columns
    assert result.removed_parameters == removed
    assert result.model_parameters == total - removed == sum(p.numel() for p in tiny_llama.parameters())


def test_pruned_model_equals_masked_model(case: tuple[str, nn.Module, PruningPlan]) -> None:
    _, model, plan = case
    expected = masked_logits(model, plan)
    assert not torch.allclose(expected, logits(model), atol=1e-4)  # the masks matter
    apply_pruning(model, plan)
    torch.testing.assert_close(logits(model), expected, atol=1e-5, rtol=0)


def test_pretrained_minilm_pruned_at_default_ratios_equals_masked(minilm: nn.Module) -> None:
    model = copy.deepcopy(minilm)
    shape = PruningShape.from_model(model)
    assert shape == PruningShape("bert", 6, 12, 12, 32, 1536)
    scores = torch.Generator().manual_seed(3)
    plan = plan_pruning(
        shape,
        torch.rand(6, 12, generator=scores),
        torch.rand(6, 1536, generator=scores),
        head_ratio=1 / 3,
        ffn_ratio=1 / 3,
    )
    assert [len(heads) for heads in plan.pruned_heads] == [4] * 6  # 12 heads: quantile at the 4th lowest
    assert abs(sum(map(len, plan.pruned_neurons)) - 9216 / 3) <= 1
    expected = masked_logits(model, plan)
    apply_pruning(model, plan)
    torch.testing.assert_close(logits(model), expected, atol=1e-5, rtol=0)


def test_sliced_lora_on_pruned_model_equals_masked_lora_model(
    case: tuple[str, nn.Module, PruningPlan],
) -> None:
    family, model, plan = case
    adapted = lora(copy.deepcopy(model), family)
    expected = masked_logits(adapted, plan)
    state = slice_lora_state(get_peft_model_state_dict(adapted), plan)
    pruned = lora(apply_pruning(model, plan).model, family)
    assert set_peft_model_state_dict(pruned, state).unexpected_keys == []
    torch.testing.assert_close(logits(pruned), expected, atol=1e-5, rtol=0)


def test_lora_slices_follow_the_plan() -> None:
    state = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(32, 4),
        "base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight": torch.zeros(4, 32),
        "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight": torch.zeros(32, 4),
        "base_model.model.model.layers.1.mlp.up_proj.lora_B.default.weight": torch.zeros(64, 4),
    }
    shapes = [tuple(t.shape) for t in slice_lora_state(state, LLAMA_PLAN).values()]
    assert shapes == [(16, 4), (4, 16), (32, 4), (64, 4)]


def test_masks_at_one_change_nothing_and_remove_restores_the_model(tiny_bert: nn.Module) -> None:
    expected = logits(tiny_bert)
    masks = install_masks(tiny_bert)
    assert masks.l1().item() == 2 * 4 + 2 * 64
    torch.testing.assert_close(logits(tiny_bert), expected, atol=0, rtol=0)
    masks.set_values(torch.zeros(2, 4), torch.zeros(2, 64))
    assert not torch.allclose(logits(tiny_bert), expected)
    masks.remove()
    torch.testing.assert_close(logits(tiny_bert), expected, atol=0, rtol=0)


def test_masks_receive_gradients_through_a_lora_model(tiny_llama: nn.Module) -> None:
    adapted = lora(tiny_llama, "llama")
    masks = install_masks(adapted)
    (adapted(**padded_batch()).logits.sum() + masks.l1()).backward()
    assert all(mask.grad is not None and mask.grad.abs().sum() > 0 for mask in masks.parameters())
    assert [tuple(s.shape) for s in (masks.head_scores(), masks.ffn_scores())] == [(2, 4), (2, 64)]


def test_load_pruned_reproduces_the_pruned_model(
    case: tuple[str, nn.Module, PruningPlan], tmp_path: Path
) -> None:
    _, model, plan = case
    model.save_pretrained(tmp_path / "original")
    plan.save(tmp_path / "plan.json")
    expected = logits(apply_pruning(model, plan).model)
    reloaded = load_pruned(tmp_path / "original", tmp_path / "plan.json")
    torch.testing.assert_close(logits(reloaded), expected, atol=1e-6, rtol=0)
    assert PruningPlan.load(tmp_path / "plan.json") == plan


def test_quantile_rule_prunes_scores_at_or_below_the_quantile() -> None:
    heads = torch.tensor([[0.1, 0.5, 0.9, 1.0], [0.7, 0.2, 0.8, 0.6]])
    ffn = torch.cat([torch.arange(64.0)[None], 100 + torch.arange(64.0)[None]])
    plan = plan_pruning(BERT_SHAPE, heads, ffn, head_ratio=1 / 3, ffn_ratio=0.25)
    assert plan.pruned_heads == ((0, 1), (1, 3))  # layerwise thresholds 0.5 and 0.6 (linear interpolation)
    assert plan.pruned_neurons == (tuple(range(32)), ())  # global threshold 31.75: all in layer 0
    assert plan_pruning(BERT_SHAPE, heads, ffn, 0, 0).pruned_heads == ((), ())


def test_layerwise_ffn_scope_prunes_each_layer_alike() -> None:
    ffn = torch.cat([torch.arange(64.0)[None], 100 + torch.arange(64.0)[None]])
    plan = plan_pruning(BERT_SHAPE, torch.ones(2, 4), ffn, 0, 0.25, ffn_scope="layerwise")
    assert plan.pruned_neurons == (tuple(range(16)), tuple(range(16)))


def test_a_layer_keeps_its_best_head_and_neuron() -> None:
    heads = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.3, 0.0]])
    ffn = torch.cat([torch.zeros(1, 64), torch.ones(1, 64)])
    plan = plan_pruning(BERT_SHAPE, heads, ffn, head_ratio=1 / 3, ffn_ratio=0.5)
    assert plan.pruned_heads == ((1, 2, 3), (0, 1, 3))  # ties keep the first head
    assert plan.pruned_neurons == (tuple(range(1, 64)), ())


def test_gqa_scores_a_kv_group_by_the_mean_of_its_query_heads() -> None:
    heads = torch.tensor([[0.1, 0.3, 0.9, 0.0], [0.5, 0.5, 0.4, 0.4]])
    plan = plan_pruning(LLAMA_SHAPE, heads, torch.ones(2, 64), head_ratio=0.5, ffn_ratio=0)
    assert plan.pruned_heads == ((0,), (1,))  # group means (0.2, 0.45) and (0.5, 0.4)
    assert plan.head_keep().tolist() == [[0, 0, 1, 1], [1, 1, 0, 0]]


def test_plan_json_round_trip() -> None:
    data = LLAMA_PLAN.to_dict()
    assert data["shape"]["num_kv_heads"] == 2 and data["pruned_heads"] == [[1], []]
    assert PruningPlan.from_dict(data) == LLAMA_PLAN


def test_plan_for_other_sizes_is_rejected_naming_the_layer(tiny_bert: nn.Module) -> None:
    wider = PruningPlan(PruningShape("bert", 2, 4, 4, 8, 128), ((), ()), ((), ()))
    with pytest.raises(PlanError, match=r"^layer 0: expected intermediate_size 128 .*found 64"):
        apply_pruning(tiny_bert, wider)


def test_plan_for_other_family_is_rejected(tiny_llama: nn.Module) -> None:
    with pytest.raises(PlanError, match=r"^layer 0: expected family bert .*found llama"):
        apply_pruning(tiny_llama, BERT_PLAN)


def test_peft_wrapped_model_is_rejected(tiny_bert: nn.Module) -> None:
    with pytest.raises(PlanError, match=r"^layer 0: expected a plain base model; prune before peft wraps it"):
        apply_pruning(lora(tiny_bert, "bert"), BERT_PLAN)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {**BERT_PLAN.to_dict(), "pruned_heads": [[1], [0, 1, 2, 3]]},
            r"^pruning plan: pruned_heads\[1\]: expected at most 3 of 4 removed$",
        ),
        (
            {**BERT_PLAN.to_dict(), "pruned_neurons": [[64], []]},
            r"^pruning plan: pruned_neurons\[0\]: expected sorted distinct indices in 0..63, got \[64\]$",
        ),
        (
            {**BERT_PLAN.to_dict(), "extra": 1},
            r"^pruning plan: expected keys \['pruned_heads', 'pruned_neurons', 'shape'\], got \['extra', ",
        ),
        (
            {**BERT_PLAN.to_dict(), "shape": {**BERT_PLAN.to_dict()["shape"], "num_kv_heads": 3}},
            r"^pruning plan: num_heads: expected a multiple of num_kv_heads \(3\), got 4$",
        ),
    ],
)
def test_malformed_plan_is_rejected(data: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        PruningPlan.from_dict(data)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"head_ratio": 1.0}, r"^plan_pruning: head_ratio: expected a value in \[0, 1\), got 1.0$"),
        (
            {"ffn_scope": "blockwise"},
            r"^plan_pruning: ffn_scope: expected one of \['layerwise', 'global'\], got 'blockwise'$",
        ),
        (
            {"head_scores": torch.ones(2, 2)},
            r"^plan_pruning: head_scores: expected shape \[2, 4\], got \[2, 2\]$",
        ),
    ],
)
def test_bad_pruning_arguments_are_rejected(arguments: dict, message: str) -> None:
    call = {
        "head_scores": torch.ones(2, 4),
        "ffn_scores": torch.ones(2, 64),
        "head_ratio": 0.25,
        "ffn_ratio": 0.25,
    }
    with pytest.raises(PlanError, match=message):
        plan_pruning(BERT_SHAPE, **{**call, **arguments})
