"""MethodMix: a plan's methods parsed once into their typed configs and checked against each other.

`PeftPlan.methods` is data (registry key -> plain dict), so that a plan stays JSON and imports no controller.
Everything that asks what the methods do with a plan (the trial, the adapter building, the sampler's cost of
every candidate) goes through one `MethodMix`, so the configs are validated and the combination rules of
METHODS.md §7 checked in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autopeft.errors import PlanError
from autopeft.methods import controller_class, first_clash
from autopeft.methods.controller import MethodConfig, MethodController

if TYPE_CHECKING:
    from peft import PeftConfig

    from autopeft.model_layout import ModelLayout
    from autopeft.plan import PeftPlan


@dataclass(frozen=True)
class MethodSetting:
    """One method of a plan: its registry key, controller class and validated config."""

    key: str
    controller: type[MethodController]
    config: MethodConfig


@dataclass(frozen=True)
class MethodMix:
    """The methods of one plan, in plan order."""

    settings: tuple[MethodSetting, ...]

    @classmethod
    def of(cls, plan: PeftPlan) -> MethodMix:
        """Parse and check `plan.methods`: an unknown key lists the known ones, a forbidden pair names both."""
        settings = []
        for key, config in plan.methods.items():
            controller = controller_class(key, source=f"methods.{key}")
            settings.append(MethodSetting(key, controller, controller.config_class.model_validate(config)))
        clash = first_clash(plan.methods, plan.init)
        if clash is not None:
            raise PlanError(f"methods.{clash[0]}: cannot be combined with '{clash[1]}' (METHODS.md §7)")
        return cls(tuple(settings))

    def controllers(self) -> dict[str, MethodController]:
        """Fresh controllers, one per method, keyed by registry key (a controller holds one trial's state)."""
        return {setting.key: setting.controller(setting.config) for setting in self.settings}

    def budget_plan(self, plan: PeftPlan) -> PeftPlan:
        """The plan whose parameters count against the budget: each method may shrink it (AdaLoRA's target)."""
        for setting in self.settings:
            plan = setting.controller.budget_plan(setting.config, plan)
        return plan

    def expected_share(self) -> float:
        """The share of the budget plan's trainable parameters expected after training (Light-PEFT prunes)."""
        return math.prod(setting.controller.expected_share(setting.config) for setting in self.settings)

    def peft_config(self, plan: PeftPlan, layout: ModelLayout, total_steps: int) -> PeftConfig | None:
        """The peft config a method asks for instead of the plan's LoRA (AdaLoRA), or None to keep LoRA."""
        config = None
        for setting in self.settings:
            config = setting.controller.peft_config(setting.config, plan, layout, total_steps) or config
        return config
