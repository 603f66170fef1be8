"""apply_plan: wrap a loaded model with peft exactly as a `PeftPlan` says (or as one of its methods asks).

Shared by `run_trial`, by the preparation phases it offers the methods (`TrialServices.build_adapters`) and by
users who train a found plan at full scale in their own script (see `autopeft.methods.trainer_callback`).
"""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from autopeft.errors import PlanError
from autopeft.methods.method_mix import MethodMix
from autopeft.methods.resolved_plan import ResolvedPlan
from autopeft.model_layout import ModelLayout
from autopeft.plan import PeftPlan


def apply_plan(
    model: nn.Module,
    plan: PeftPlan,
    total_steps: int,
    model_name: str = "model",
    methods: MethodMix | None = None,
    task_type: str = "SEQ_CLS",
) -> tuple[PeftModel, ModelLayout]:
    """Validate `plan` against `model`, wrap it, and check that peft adapted exactly the planned modules.

    `methods` is the plan's parsed `MethodMix` when the caller holds it already (the trial does). `task_type`
    is peft's name for what the model does, which the task kind supplies (`SEQ_CLS` for a classifier,
    `CAUSAL_LM` for instruction tuning): it picks peft's model wrapper and is written with the adapter."""
    layout = ModelLayout.from_model(model, model_name)
    plan.validate_for(layout)
    resolved = ResolvedPlan.resolve(plan, layout, methods)
    config = resolved.peft_config(total_steps, task_type)
    peft_model = get_peft_model(model, config)
    expected = {module.name for module in resolved.adapted_modules}
    adapted = {
        name.removeprefix("base_model.model.")
        for name, module in peft_model.named_modules()
        if isinstance(module, BaseTunerLayer)
    }
    if adapted != expected:
        raise PlanError(f"peft adapted {sorted(adapted ^ expected)[:3]} differently from the plan")
    if type(config) is LoraConfig:
        built = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        if resolved.trainable_parameters != built:
            raise PlanError(
                f"plan counts {resolved.trainable_parameters} trainable parameters, peft built {built}"
            )
    return peft_model, resolved.layout
