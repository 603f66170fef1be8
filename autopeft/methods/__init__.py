"""The method registry: the only place a PEFT method is declared (STYLE.md, "A registry for methods").

The key is the YAML key, the `PeftPlan.methods` key and the name the dashboards show. Adding a method is one
file under `autopeft/methods/` plus one line in `METHODS`.
"""

from __future__ import annotations

from autopeft.errors import UnknownMethodError
from autopeft.methods.adalora import AdaloraController
from autopeft.methods.controller import MethodConfig, MethodController, TrainingContext
from autopeft.methods.diffora import DifforaController
from autopeft.methods.ist import IstController
from autopeft.methods.light_peft import LightPeftController
from autopeft.plan import PeftPlan

METHODS: dict[str, type[MethodController]] = {
    "ist": IstController,
    "adalora": AdaloraController,
    "diffora": DifforaController,
    "light_peft": LightPeftController,
}


def controller_class(key: str, source: str = "plan") -> type[MethodController]:
    """The controller registered under `key`; an unknown key is an error listing the known ones."""
    if key not in METHODS:
        raise UnknownMethodError(f"{source}: unknown method '{key}'; expected one of {sorted(METHODS)}")
    return METHODS[key]


def configured_controllers(plan: PeftPlan) -> list[tuple[type[MethodController], MethodConfig]]:
    """Each method of `plan` with its validated config, in plan order."""
    pairs = []
    for key, config in plan.methods.items():
        cls = controller_class(key, source=f"methods.{key}")
        pairs.append((cls, cls.config_class.model_validate(config)))
    return pairs


def budget_plan(plan: PeftPlan) -> PeftPlan:
    """The plan whose parameters count against the budget: each method may shrink it (AdaLoRA's target)."""
    for cls, config in configured_controllers(plan):
        plan = cls.budget_plan(config, plan)
    return plan


def expected_share(plan: PeftPlan) -> float:
    """The share of `budget_plan(plan)`'s trainable parameters expected after training (Light-PEFT prunes)."""
    share = 1.0
    for cls, config in configured_controllers(plan):
        share *= cls.expected_share(config)
    return share


__all__ = [
    "METHODS",
    "budget_plan",
    "configured_controllers",
    "expected_share",
    "MethodConfig",
    "MethodController",
    "TrainingContext",
    "controller_class",
]
