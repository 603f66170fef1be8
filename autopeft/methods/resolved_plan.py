"""ResolvedPlan: a plan read against one model once, with what the search, the trial and the export ask of it.

A `PeftPlan` speaks of (layer, module type) entries and untyped method blocks; resolving it against a
`ModelLayout` checks both and keeps the answers: the model's module of each entry, the typed methods
(`MethodMix`), the exact cost that counts against the parameter budget and the cost expected after training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from peft import LoraConfig, PeftConfig

from autopeft.methods.method_mix import MethodMix
from autopeft.model_layout import LinearModule, ModelLayout, module_key
from autopeft.plan import PeftPlan


@dataclass(frozen=True)
class ResolvedPlan:
    """A validated plan, its model layout and its typed methods."""

    plan: PeftPlan
    layout: ModelLayout
    methods: MethodMix
    modules: tuple[LinearModule, ...]
    """The model's module of each entry of `plan.adapters`, in order."""

    @classmethod
    def resolve(cls, plan: PeftPlan, layout: ModelLayout, methods: MethodMix | None = None) -> ResolvedPlan:
        """Check `plan`'s entries against the model and its methods against each other; raise `PlanError`
        naming the key. A plan that adapts nothing resolves (it costs its head); only building it fails.
        `methods` skips re-parsing the method blocks when the caller already holds them."""
        modules = plan.modules(layout)
        return cls(plan, layout, methods if methods is not None else MethodMix.of(plan), modules)

    @cached_property
    def adapted_modules(self) -> tuple[LinearModule, ...]:
        """The model's modules the plan adapts (rank >= 1), in plan order."""
        pairs = zip(self.plan.adapters, self.modules, strict=True)
        return tuple(module for adapter, module in pairs if adapter.rank > 0)

    @cached_property
    def module_keys(self) -> frozenset[str]:
        """The adapted (block, module type) pairs as `L3.query`, the keys method signals speak."""
        return frozenset(module_key(module.layer, module.module_type) for module in self.adapted_modules)

    @cached_property
    def trainable_parameters(self) -> int:
        """Exactly what peft trains for the plan as written."""
        return self.plan.trainable_parameters(self.layout)

    @cached_property
    def cost(self) -> int:
        """Trainable parameters that count against the budget, known before training (AdaLoRA's target)."""
        return self.methods.budget_plan(self.plan).trainable_parameters(self.layout)

    @property
    def expected_cost(self) -> float:
        """The trainable parameters expected after training (below `cost` when a method prunes the adapter)."""
        return self.cost * self.methods.expected_share()

    def peft_config(self, total_steps: int, task_type: str) -> PeftConfig:
        """LoRA with exact module names, unless a method of the plan supplies its own config (AdaLoRA).

        `task_type` is peft's name for what the model does (`SEQ_CLS`, `CAUSAL_LM`): it picks peft's model
        wrapper, and with it the heads trained beside the adapters."""
        config = self.methods.peft_config(self.plan, self.layout, total_steps)
        if config is None:
            config = LoraConfig(**self.plan.lora_config_kwargs(self.layout))
        config.task_type = task_type
        return config
