"""CheapestPlan: the lowest exact cost of a search space, found from a handful of configurations, equals the
minimum over every configuration of the space."""

from __future__ import annotations

import itertools

import optuna
import pytest
from torch import nn

from autopeft.model_layout import ModelLayout
from autopeft.search.cheapest_plan import CheapestPlan
from autopeft.search.plan_probe import PlanProbe
from autopeft.search_space import SearchSpace

SPACE = """
model: tiny
task: {name: demo}
objectives: [{name: task_metric}]
dimensions:
  layers: LAYERS
  modules: [query, value, intermediate.dense]
  rank: {choices: RANKS, share: SHARE}
methods: METHODS
"""


def _brute_force_cheapest(space: SearchSpace, layout: ModelLayout) -> int:
    """The minimum cost over every combination of every choice (the dimensions read from a real trial)."""
    study = optuna.create_study(directions=space.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    space.sample(trial, layout)
    names = sorted(trial.distributions)
    choices = [trial.distributions[name].choices for name in names]  # type: ignore[attr-defined]
    probe = PlanProbe(space, layout)
    facts = (probe(dict(zip(names, combo, strict=True))) for combo in itertools.product(*choices))
    return min(f.trainable_parameters for f in facts if f.modules)


@pytest.mark.parametrize(
    ("layers", "ranks", "share", "methods"),
    [
        (
            "{mode: per_layer}",
            "[0, 2, 4]",
            "layer_module",
            "{ist: {mode: [off, ist]}, adalora: {enabled: [false, true], target_rank_ratio: [0.25, 0.5]}}",
        ),
        (
            "{mode: all}",
            "[2, 4]",
            "global",
            "{adalora: {enabled: [false, true], target_rank_ratio: [0.5, 1.0]}}",
        ),
        ("{mode: top, top_choices: [1, 2]}", "[0, 3, 8]", "layer", "{light_peft: {enabled: [true, false]}}"),
        ("{mode: per_layer}", "[1, 2]", "module_type", "{}"),
    ],
)
def test_cheapest_plan_costs_the_minimum_over_every_configuration(
    layers: str, ranks: str, share: str, methods: str, tiny_bert: nn.Module
) -> None:
    text = SPACE.replace("LAYERS", layers).replace("RANKS", ranks).replace("SHARE", share)
    space = SearchSpace.from_yaml(text.replace("METHODS", methods), "cheap.yaml")
    layout = ModelLayout.from_model(tiny_bert)
    cheapest = CheapestPlan.of(space, layout)
    assert cheapest is not None
    assert cheapest.cost == _brute_force_cheapest(space, layout)
    assert cheapest.plan.trainable_parameters(layout) >= cheapest.cost  # AdaLoRA's budget is below its plan
