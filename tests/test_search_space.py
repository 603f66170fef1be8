"""SearchSpace: YAML parsing, the dimensions it samples, and the plans it builds."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from torch import nn

from autopeft.errors import ConfigError
from autopeft.model_layout import ModelLayout
from autopeft.search_space import SearchSpace

REPO = Path(__file__).resolve().parents[1]

BASE = """
model: minilm
task: {name: demo}
objectives: [{name: task_metric}, {name: trainable_parameters}]
dimensions:
  layers: {mode: LAYERS}
  modules: [query, value]
  rank: {choices: [0, 4, 8], share: SHARE}
  alpha: {rule: proportional, ratio: [1, 2]}
"""


def _space(layers: str = "all", share: str = "module_type") -> SearchSpace:
    return SearchSpace.from_yaml(BASE.replace("LAYERS", layers).replace("SHARE", share), "test.yaml")


@pytest.mark.parametrize("name", ["demo.yaml", "glue_minilm.yaml", "llama_lora.yaml"])
def test_shipped_spaces_parse(name: str) -> None:
    space = SearchSpace.load(REPO / "search_spaces" / name)
    assert space.directions[0] == "maximize" and "trainable_parameters" in space.objective_names


@pytest.mark.parametrize(
    ("share", "expected_params"),
    [
        ("global", {"rank"}),
        ("module_type", {"rank.query", "rank.value"}),
        ("layer", {"rank.L0", "rank.L1"}),
        ("layer_module", {"rank.L0.query", "rank.L0.value", "rank.L1.query", "rank.L1.value"}),
    ],
)
def test_rank_sharing_granularity_sets_the_dimensions(
    share: str, expected_params: set[str], tiny_bert: nn.Module
) -> None:
    layout = ModelLayout.from_model(tiny_bert)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(0))
    trial = study.ask()
    plan = _space(share=share).sample(trial, layout)
    assert set(trial.params) - {"alpha_ratio"} == expected_params
    assert len(plan.adapters) == 4


def test_sampled_ranks_and_alpha_rule_reach_the_plan(tiny_bert: nn.Module) -> None:
    layout = ModelLayout.from_model(tiny_bert)
    params = {"rank.query": 8, "rank.value": 0, "alpha_ratio": 2}
    plan = _space().sample(optuna.trial.FixedTrial(params), layout)
    by_module = {(a.layer, a.module): a for a in plan.adapters}
    assert by_module[(1, "attention.self.query")].rank == 8
    assert by_module[(1, "attention.self.query")].alpha == 16
    assert by_module[(0, "attention.self.value")].rank == 0


def test_per_layer_selection_turns_whole_layers_off(tiny_bert: nn.Module) -> None:
    layout = ModelLayout.from_model(tiny_bert)
    params = {"layer.0": False, "layer.1": True, "rank.query": 4, "rank.value": 4, "alpha_ratio": 1}
    plan = _space(layers="per_layer").sample(optuna.trial.FixedTrial(params), layout)
    assert {a.layer for a in plan.adapted} == {1}


def test_module_that_the_model_lacks_names_file_and_key(tiny_bert: nn.Module) -> None:
    space = SearchSpace.from_yaml(
        BASE.replace("LAYERS", "all").replace("SHARE", "global").replace("[query, value]", "[query, q_proj]"),
        "spaces/x.yaml",
    )
    with pytest.raises(
        ConfigError, match=r"spaces/x.yaml: dimensions.modules\[1\]: .*module 'q_proj' matches none"
    ):
        space.check_against(ModelLayout.from_model(tiny_bert))


@pytest.mark.parametrize(
    ("methods", "key"),
    [
        ("{ist: {mode: [ist, off], active_layer_ratio: 1.5}}", "methods.ist.active_layer_ratio"),
        ("{ist: {mode: [ist, rst], active_layer_ratio: [0.5, 1.5]}}", r"methods.ist.active_layer_ratio\[1\]"),
        ("{light_peft: {enabled: [true, false], head_ratio: 1.0}}", "methods.light_peft.head_ratio"),
        ("{ist: {mode: [ist, sideways]}}", r"methods.ist.mode\[1\]"),
    ],
)
def test_a_bad_method_knob_is_named_by_its_own_key_path(methods: str, key: str) -> None:
    text = BASE.replace("LAYERS", "all").replace("SHARE", "global") + f"methods: {methods}\n"
    with pytest.raises(ConfigError, match=rf"test.yaml: {key}: Input should be"):
        SearchSpace.from_yaml(text, "test.yaml")


@pytest.mark.parametrize(
    ("dimension", "key"),
    [
        ("  dropout: [0.1, 1.5]\n", r"dimensions.dropout\[1\]: Input should be less than 1, got 1.5"),
        (
            "  alpha: {rule: proportional, ratio: [1, -2]}\n",
            r"dimensions.alpha.ratio\[1\]: Input should be greater",
        ),
    ],
)
def test_every_choice_of_a_plan_setting_is_validated_when_parsed(dimension: str, key: str) -> None:
    text = (
        BASE.replace("LAYERS", "all")
        .replace("SHARE", "global")
        .replace("  alpha: {rule: proportional, ratio: [1, 2]}\n", dimension)
    )
    with pytest.raises(ConfigError, match=rf"test.yaml: {key}"):
        SearchSpace.from_yaml(text, "test.yaml")


def test_a_method_knob_with_no_choices_is_refused() -> None:
    text = BASE.replace("LAYERS", "all").replace("SHARE", "global") + "methods: {ist: {mode: []}}\n"
    with pytest.raises(
        ConfigError, match=r"methods.ist.mode: expected a value or a non-empty list of choices"
    ):
        SearchSpace.from_yaml(text, "test.yaml")


def test_a_module_type_named_twice_is_refused(tiny_bert: nn.Module) -> None:
    space = SearchSpace.from_yaml(
        BASE.replace("LAYERS", "all").replace("SHARE", "global").replace("[query, value]", "[query, query]"),
        "x.yaml",
    )
    with pytest.raises(ConfigError, match=r"x.yaml: dimensions.modules\[1\]: 'query' names .* expected each"):
        space.check_against(ModelLayout.from_model(tiny_bert))
