"""PlanProbe: what a configuration costs before training, so the default sampler never models its costs.

A plan's trainable parameters are known before training: the probe builds the plan a trial would build and
counts it, and the sampler costs every candidate exactly. The probe is a class, not a closure, because Ray
Tune pickles the searcher (and with it the sampler and its probe) at every experiment checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import optuna

from autopeft.methods.resolved_plan import ResolvedPlan

if TYPE_CHECKING:
    from autopeft.model_layout import ModelLayout
    from autopeft.search_space import SearchSpace

Params = dict[str, Any]


@dataclass(frozen=True)
class CandidateFacts:
    """What is known about a configuration before training: its exact cost (the budget plan's trainable
    parameters), whether it fits the budget constraint, the (layer, module) keys it adapts (`L3.query`), to weigh
    method signals, and the parameters expected after training (below the cost when a method prunes)."""

    trainable_parameters: int
    feasible: bool
    modules: frozenset[str]
    expected_parameters: float | None = None

    @property
    def expected(self) -> float:
        """The expected final trainable parameters (the exact cost unless a method prunes)."""
        return float(
            self.trainable_parameters if self.expected_parameters is None else self.expected_parameters
        )


class CostProbe(Protocol):
    """Anything that gives a configuration's facts before training: a `PlanProbe` in a real search, a lookup
    table in the replay benchmark, a toy cost model in tests."""

    def __call__(self, params: Params, /) -> CandidateFacts:
        """The facts of the configuration `params` (Optuna parameter name -> choice)."""


class PlanProbe:
    """The probe of a real search: builds the plan `space.sample` would build and counts it as `record_plan`
    does. A configuration that adapts nothing costs 0 and is infeasible (its trial would fail)."""

    def __init__(self, space: SearchSpace, layout: ModelLayout) -> None:
        self.space = space
        self.layout = layout
        self.limit = space.constraints.max_trainable_parameters

    def __call__(self, params: Params) -> CandidateFacts:
        plan = self.space.sample(optuna.trial.FixedTrial(params), self.layout)
        if not plan.adapted:
            return CandidateFacts(0, False, frozenset())
        resolved = ResolvedPlan.resolve(plan, self.layout)
        feasible = self.limit is None or resolved.cost <= self.limit
        return CandidateFacts(resolved.cost, feasible, resolved.module_keys, resolved.expected_cost)
