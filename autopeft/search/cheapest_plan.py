"""CheapestPlan: the plan of a search space with the lowest exact cost, found without enumerating the space, so
that a `max_trainable_parameters` no plan can meet is refused before the first trial rather than after a search
whose front stays empty.

A handful of configurations suffice. A plan's cost (`ResolvedPlan.cost`, what the constraint counts) never falls
when a rank rises or a layer is added, so the cheapest plan adapts one rank dimension at the smallest rank >= 1
in the fewest layers (every rank dimension at the smallest rank when 0 is not a choice). Alpha, dropout, init
and rsLoRA do not count and stay at their first choice. A method changes the cost only through its controller's
`budget_plan` (AdaLoRA's target rank), so each configuration of such a method is tried; any other method is
tried off and on, because an enabled method leaves a later one it clashes with out of the plan (METHODS.md §7).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import CategoricalChoiceType

from autopeft.methods import METHODS
from autopeft.methods.controller import MethodController
from autopeft.model_layout import ModelLayout
from autopeft.plan import PeftPlan
from autopeft.search.plan_probe import Params, PlanProbe
from autopeft.search_space import SearchSpace

Dimensions = dict[str, tuple[Any, ...]]


@dataclass(frozen=True)
class CheapestPlan:
    """The cheapest plan of a space that adapts a module, and its exact cost (adapter and classifier head)."""

    plan: PeftPlan
    cost: int

    @classmethod
    def of(cls, space: SearchSpace, layout: ModelLayout, enough: int = 0) -> CheapestPlan | None:
        """The cheapest plan, or None when no configuration adapts a module. The search stops at the first plan
        that costs at most `enough`: a caller that asks whether any plan fits a limit needs no more."""
        probe = PlanProbe(space, layout)
        best: tuple[int, Params] | None = None
        for params in _candidates(space, layout):
            facts = probe(params)
            if facts.modules and (best is None or facts.trainable_parameters < best[0]):
                best = (facts.trainable_parameters, params)
                if best[0] <= enough:
                    break
        if best is None:
            return None
        return cls(space.sample(optuna.trial.FixedTrial(best[1]), layout), best[0])


def _candidates(space: SearchSpace, layout: ModelLayout) -> Iterator[Params]:
    """Configurations that together hold the cheapest plan (see the module docstring)."""
    dimensions = _dimensions(space, layout)
    settings = {name: choices[0] for name, choices in dimensions.items()}
    mixes = _method_mixes(space, dimensions)
    for structure in _structures(dimensions):
        for mix in mixes:
            yield {**settings, **structure, **mix}


def _dimensions(space: SearchSpace, layout: ModelLayout) -> Dimensions:
    """Every dimension `space.sample` asks for, with its choices: it asks each one on every trial, so one
    sample names them all."""
    recorder = _QuestionRecorder()
    space.sample(recorder, layout)
    return recorder.questions


class _QuestionRecorder(optuna.trial.FixedTrial):
    """A trial that answers every categorical question with its first choice and keeps the questions (no study,
    no storage: a throwaway in-memory study would log its creation)."""

    def __init__(self) -> None:
        super().__init__({})
        self.questions: Dimensions = {}

    def suggest_categorical(  # type: ignore[override]  # one signature covers the overloads
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType:
        self.questions[name] = tuple(choices)
        return choices[0]


def _structures(dimensions: Dimensions) -> list[Params]:
    """The layer and rank choices no cheaper choice undercuts: one layer on (or the fewest top layers), and one
    rank dimension at the smallest rank >= 1 with the others at 0 (all at the smallest rank without a 0).
    The dimension names are the ones `SearchSpace.sample` asks for."""
    toggles = [name for name in dimensions if name.startswith("layer.")]
    layer_options: list[Params] = [{name: name == on for name in toggles} for on in toggles] or [{}]
    if "layers.top" in dimensions:
        layer_options = [{"layers.top": min(dimensions["layers.top"])}]
    ranks = [name for name in dimensions if name == "rank" or name.startswith("rank.")]
    choices = dimensions[ranks[0]]  # every rank dimension offers `dimensions.rank.choices`
    smallest = min(rank for rank in choices if rank > 0)
    if 0 in choices:
        rank_options = [{name: smallest if name == one else 0 for name in ranks} for one in ranks]
    else:
        rank_options = [dict.fromkeys(ranks, smallest)]
    return [{**layers, **rank} for layers in layer_options for rank in rank_options]


def _method_mixes(space: SearchSpace, dimensions: Dimensions) -> list[Params]:
    """The method-knob choices that can change the cost, one method's options crossed with the others'."""
    options = [_method_options(key, block, dimensions) for key, block in space.methods.items()]
    return [
        {name: choice for part in combo for name, choice in part.items()}
        for combo in itertools.product(*options)
    ]


def _method_options(key: str, block: dict[str, Any], dimensions: Dimensions) -> list[Params]:
    """One configuration of the method that switches it off (when one does), and the ones that switch it on:
    all of them when the method changes the budget plan, else the first."""
    prefix = f"{key}."
    names = [prefix + field for field in block if prefix + field in dimensions]
    fixed = {field: value[0] if isinstance(value, list) else value for field, value in block.items()}
    config_class = METHODS[key].config_class
    off: list[Params] = []
    on: list[Params] = []
    for combo in itertools.product(*(dimensions[name] for name in names)):
        knobs = dict(zip(names, combo, strict=True))
        config = config_class.model_validate(
            {**fixed, **{n.removeprefix(prefix): v for n, v in knobs.items()}}
        )
        (on if config.is_enabled() else off).append(knobs)
    return off[:1] + (on if _changes_cost(METHODS[key]) else on[:1])


def _changes_cost(controller: type[MethodController]) -> bool:
    """True when the controller overrides `MethodController.budget_plan`, the one hook that changes the cost."""
    base = getattr(MethodController.budget_plan, "__func__", None)
    return getattr(controller.budget_plan, "__func__", None) is not base
