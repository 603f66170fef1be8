"""Apply a PeftPlan to a loaded model: the plan's LoRA config, or the config a method controller asks for.

Shared by `run_trial` and by users who train a found plan at full scale in their own script
(see `autopeft.methods.trainer_callback`).
"""

from __future__ import annotations

from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from autopeft.errors import PlanError
from autopeft.model_layout import ModelLayout
from autopeft.plan import PeftPlan


def peft_config_for(plan: PeftPlan, layout: ModelLayout, total_steps: int) -> PeftConfig:
    """LoRA with exact module names, unless a method of the plan supplies its own config (AdaLoRA)."""
    from autopeft.methods import configured_controllers  # method controllers build models with this module

    config: PeftConfig = LoraConfig(task_type="SEQ_CLS", **plan.lora_config_kwargs(layout))
    for cls, method_config in configured_controllers(plan):
        config = cls.peft_config(method_config, plan, layout, total_steps) or config
    return config


def apply_plan(
    model: nn.Module, plan: PeftPlan, total_steps: int, model_name: str = "model"
) -> tuple[PeftModel, ModelLayout]:
    """Validate `plan` against `model`, wrap it, and check that peft adapted exactly the planned modules."""
    layout = ModelLayout.from_model(model, model_name)
    plan.validate_for(layout)
    config = peft_config_for(plan, layout, total_steps)
    peft_model = get_peft_model(model, config)
    expected = {layout.find(a.layer, a.module).name for a in plan.adapted}
    adapted = {
        name.removeprefix("base_model.model.")
        for name, module in peft_model.named_modules()
        if isinstance(module, BaseTunerLayer)
    }
    if adapted != expected:
        raise PlanError(f"peft adapted {sorted(adapted ^ expected)[:3]} differently from the plan")
    if type(config) is LoraConfig:
        built = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        if plan.trainable_parameters(layout) != built:
            raise PlanError(
                f"plan counts {plan.trainable_parameters(layout)} trainable parameters, peft built {built}"
            )
    return peft_model, layout
