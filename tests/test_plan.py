"""PeftPlan: exact parameter counts against peft, the LoRA config it emits, JSON, and validation messages."""

from __future__ import annotations

import re
import warnings

import pytest
from peft import LoraConfig, get_peft_model
from torch import nn

from autopeft.errors import PlanError, UnknownMethodError
from autopeft.methods.resolved_plan import ResolvedPlan
from autopeft.model_layout import ModelLayout
from autopeft.plan import ModuleSetting, PeftPlan


def _plan_over(layout: ModelLayout, rank_of) -> PeftPlan:
    adapters = [
        ModuleSetting(layer=m.layer, module=m.module_type, rank=rank_of(m.layer, i), alpha=2.0 * (i + 1))
        for i, m in enumerate(layout.modules)
    ]
    return PeftPlan(adapters=tuple(adapters), dropout=0.05)


def _peft_count(model: nn.Module, plan: PeftPlan, layout: ModelLayout) -> int:
    peft_model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", **plan.lora_config_kwargs(layout)))
    return peft_model.get_nb_trainable_parameters()[0]


RANK_RULES = {
    "uniform": lambda layer, i: 4,
    "mixed": lambda layer, i: (i * 7 + layer) % 5,
    "top_layer_only": lambda layer, i: 8 if layer == 1 else 0,
    "one_module": lambda layer, i: 3 if i == 0 else 0,
}


@pytest.mark.parametrize("rule", sorted(RANK_RULES))
@pytest.mark.parametrize("family", ["tiny_bert", "tiny_llama"])
def test_plan_parameter_count_equals_peft(family: str, rule: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(family)
    layout = ModelLayout.from_model(model, family)
    plan = _plan_over(layout, RANK_RULES[rule])
    assert plan.trainable_parameters(layout) == _peft_count(model, plan, layout)


def test_plan_parameter_count_equals_peft_on_minilm(minilm: nn.Module) -> None:
    import copy

    model = copy.deepcopy(minilm)
    layout = ModelLayout.from_model(model, "minilm")
    plan = _plan_over(layout, RANK_RULES["mixed"])
    assert layout.num_layers == 6
    assert plan.trainable_parameters(layout) == _peft_count(model, plan, layout)


def test_rank_zero_modules_are_left_out_and_patterns_use_escaped_full_names(tiny_bert: nn.Module) -> None:
    layout = ModelLayout.from_model(tiny_bert)
    plan = _plan_over(layout, RANK_RULES["top_layer_only"])
    kwargs = plan.lora_config_kwargs(layout)
    assert all(".layer.1." in name for name in kwargs["target_modules"])
    assert len(kwargs["target_modules"]) == len(layout.module_types)
    assert set(kwargs["rank_pattern"]) == {re.escape(n) for n in kwargs["target_modules"]}
    assert set(kwargs["rank_pattern"].values()) == {8}


def test_per_module_ranks_reach_the_built_modules(tiny_llama: nn.Module) -> None:
    layout = ModelLayout.from_model(tiny_llama)
    plan = _plan_over(layout, RANK_RULES["mixed"])
    peft_model = get_peft_model(
        tiny_llama, LoraConfig(task_type="SEQ_CLS", **plan.lora_config_kwargs(layout))
    )
    built = {
        name.removeprefix("base_model.model."): module.r["default"]
        for name, module in peft_model.named_modules()
        if hasattr(module, "r") and isinstance(module.r, dict)
    }
    expected = {layout.find(a.layer, a.module).name: a.rank for a in plan.adapted}
    assert built == expected


def test_json_round_trip_keeps_the_plan() -> None:
    plan = PeftPlan(
        adapters=(ModuleSetting(layer=0, module="attention.self.query", rank=4, alpha=8),),
        dropout=0.1,
        use_rslora=True,
        init="gaussian",
    )
    assert PeftPlan.from_json(plan.to_json()) == plan


def test_module_missing_from_the_model_is_named(tiny_bert: nn.Module) -> None:
    layout = ModelLayout.from_model(tiny_bert, "tiny-bert")
    plan = PeftPlan(adapters=(ModuleSetting(layer=1, module="attention.self.qkv", rank=4, alpha=8),))
    with pytest.raises(
        PlanError, match=r"adapters\[0\]: tiny-bert: layer 1 has no module 'attention.self.qkv'"
    ):
        plan.validate_for(layout)


def test_layer_beyond_the_model_is_named(tiny_bert: nn.Module) -> None:
    layout = ModelLayout.from_model(tiny_bert, "tiny-bert")
    plan = PeftPlan(adapters=(ModuleSetting(layer=7, module="attention.self.query", rank=4, alpha=8),))
    with pytest.raises(PlanError, match=r"layer 7 does not exist; expected 0..1"):
        plan.validate_for(layout)


def test_plan_without_any_rank_is_rejected(tiny_bert: nn.Module) -> None:
    layout = ModelLayout.from_model(tiny_bert)
    plan = PeftPlan(adapters=(ModuleSetting(layer=0, module="attention.self.query", rank=0, alpha=8),))
    with pytest.raises(PlanError, match="adapts no module"):
        plan.validate_for(layout)


def test_unknown_method_lists_the_known_ones(tiny_bert: nn.Module) -> None:
    layout = ModelLayout.from_model(tiny_bert)
    plan = PeftPlan(
        adapters=(ModuleSetting(layer=0, module="attention.self.query", rank=2, alpha=4),),
        methods={"warp_drive": {}},
    )
    with pytest.raises(
        UnknownMethodError, match="methods.warp_drive: unknown method 'warp_drive'; expected one of"
    ):
        ResolvedPlan.resolve(plan, layout)


def test_duplicate_entries_and_bad_values_name_their_key() -> None:
    entry = {"layer": 0, "module": "q", "rank": 2, "alpha": 4}
    with pytest.raises(PlanError, match="each \\(layer, module\\) once"):
        PeftPlan.from_dict({"adapters": [entry, entry]})
    with pytest.raises(
        PlanError, match=r"plan.json: adapters\[0\].rank: .*greater than or equal to 0, got -1"
    ):
        PeftPlan.from_json('{"adapters": [{"layer": 0, "module": "q", "rank": -1, "alpha": 4}]}')
    with pytest.raises(PlanError, match="plan.json: not valid JSON"):
        PeftPlan.from_json("{adapters")


def test_plan_from_a_newer_version_warns_and_names_the_ignored_keys() -> None:
    data = {"autopeft_version": "9.0.0", "adapters": [], "hyperdrive": True}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = PeftPlan.from_dict(data, "old.json")
    assert plan.adapters == ()
    assert any("ignoring keys ['hyperdrive']" in str(w.message) for w in caught)


def test_summary_names_layers_and_ranks() -> None:
    plan = PeftPlan(
        adapters=(
            ModuleSetting(layer=2, module="attention.self.query", rank=4, alpha=8),
            ModuleSetting(layer=3, module="attention.self.query", rank=8, alpha=8),
            ModuleSetting(layer=3, module="intermediate.dense", rank=0, alpha=8),
        )
    )
    assert plan.summary() == "lora L2-3 query:r4-8"
