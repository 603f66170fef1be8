"""AdaLoRA-style budgeted rank reallocation through peft's AdaLoRA (METHODS.md §3).

Paper: Zhang et al., "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning", ICLR 2023; autopeft uses
peft's `AdaLoraModel` and calls `update_and_allocate` after every optimizer step. Every adapted module starts at
`init_r` (the plan's largest rank); the budget shrinks on peft's cubic schedule to `target_r` triplets per
module on average, so ranks move to where they matter. `total_step` is the trial's step count, never searched.

The result is exported as a plain LoRA adapter whose `rank_pattern`/`alpha_pattern` reproduce the AdaLoRA model:
for each module the kept triplets give `A' = (A ⊙ E)[kept]`, `B' = B[:, kept]`, and `alpha' = s·r'` with AdaLoRA's
scaling `s = lora_alpha / (init_r + 1e-5)`.

At LoRA's learning rate AdaLoRA starts much slower, by design rather than by a frozen part: peft starts `E` at 0
and `A`, `B` at N(0, 0.02²), so `ΔW = s·B·diag(E)·A` grows from a product of three small factors, and the
orthogonality term (about 1.7 at the start with the default weight 0.5, against a task loss of 0.69) steers `A`
and `B` in the first steps. The head and all three factors train every step (tests/methods/test_adalora.py); on
MiniLM/SST-2, 100 steps at lr 1e-3 leave AdaLoRA at the majority class and lr 1e-2 does not
(benchmarks/README.md, "AdaLoRA and IST at ratio 0.25 at the majority class").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from peft import AdaLoraConfig, LoraConfig, PeftModel, get_peft_model
from peft.tuners.adalora import AdaLoraLayer, AdaLoraModel
from peft.utils import ModulesToSaveWrapper
from pydantic import Field

from autopeft.methods.controller import MethodConfig, MethodController, TrainingContext, signals_by_module
from autopeft.plan import ModuleSetting, PeftPlan

if TYPE_CHECKING:
    from autopeft.model_layout import ModelLayout

_ADAPTER = "default"
_RANKNUM_EPSILON = 1e-5  # peft divides by ranknum + 1e-5


class AdaloraConfig(MethodConfig):
    """AdaLoRA's knobs. The schedule is given as fractions of the trial's steps."""

    enabled: bool = Field(default=True, description="Run AdaLoRA instead of fixed-rank LoRA.")
    target_rank_ratio: float = Field(default=0.5, gt=0, le=1, description="target_r / init_r.")
    initial_fraction: float = Field(default=0.1, ge=0, lt=1, description="t_i / T: steps before any masking.")
    final_fraction: float = Field(default=0.2, gt=0, lt=1, description="t_f / T: steps with fixed ranks.")
    allocation_interval: int = Field(default=1, ge=1, description="deltaT: steps between maskings.")
    beta1: float = Field(default=0.85, gt=0, lt=1, description="EMA of sensitivity.")
    beta2: float = Field(default=0.85, gt=0, lt=1, description="EMA of uncertainty.")
    orth_reg_weight: float = Field(default=0.5, ge=0, description="Orthogonality regulariser weight.")

    def is_enabled(self) -> bool:
        return self.enabled


def _ranks(config: AdaloraConfig, plan: PeftPlan) -> tuple[int, int]:
    init_r = max(a.rank for a in plan.adapted)
    return init_r, max(1, round(config.target_rank_ratio * init_r))


class AdaloraController(MethodController):
    """Drives peft's rank allocator and converts the result to plain LoRA."""

    config_class: ClassVar[type[MethodConfig]] = AdaloraConfig
    incompatible_with: ClassVar[frozenset[str]] = frozenset({"ist", "light_peft", "diffora"})
    config: AdaloraConfig

    @classmethod
    def peft_config(
        cls, config: MethodConfig, plan: PeftPlan, layout: ModelLayout, total_steps: int
    ) -> AdaLoraConfig:
        assert isinstance(config, AdaloraConfig)
        lora = plan.lora_config_kwargs(layout)
        init_r, target_r = _ranks(config, plan)
        first = plan.adapted[0]
        tfinal = max(1, round(config.final_fraction * total_steps))
        tinit = min(round(config.initial_fraction * total_steps), max(0, total_steps - tfinal - 1))
        return AdaLoraConfig(
            target_modules=lora["target_modules"],
            modules_to_save=lora["modules_to_save"],
            init_r=init_r,
            target_r=target_r,
            # peft annotates lora_alpha as int, but scales by lora_alpha / r and takes any number
            lora_alpha=first.alpha / first.rank * init_r,  # type: ignore[arg-type]
            lora_dropout=plan.dropout,
            tinit=tinit,
            tfinal=tfinal,
            deltaT=config.allocation_interval,
            beta1=config.beta1,
            beta2=config.beta2,
            orth_reg_weight=config.orth_reg_weight,
            total_step=total_steps,
        )

    @classmethod
    def budget_plan(cls, config: MethodConfig, plan: PeftPlan) -> PeftPlan:
        """Every adapted module at `target_r`: the final budget (exact when the modules share a shape)."""
        assert isinstance(config, AdaloraConfig)
        _, target_r = _ranks(config, plan)
        first = plan.adapted[0]
        adapters = tuple(
            a.model_copy(update={"rank": target_r, "alpha": first.alpha / first.rank * target_r})
            if a.rank > 0
            else a
            for a in plan.adapters
        )
        return plan.model_copy(update={"adapters": adapters})

    def setup(self, context: TrainingContext) -> None:
        self.model = context.model
        self.total_steps = context.total_steps

    def after_step(self, step: int) -> None:
        self._tuner().update_and_allocate(step)

    def _tuner(self) -> AdaLoraModel:
        """peft's AdaLoRA tuner inside the trial's PeftModel (`peft_config` made it an AdaLoraModel)."""
        tuner = self.model.base_model
        assert isinstance(tuner, AdaLoraModel)
        return tuner

    def final_ranks(self) -> dict[str, int]:
        """Kept triplets per adapted module (full module name)."""
        return {name: int(_kept(module).sum()) for name, module in _adalora_layers(self.model).items()}

    def finish(self) -> Mapping[str, Any]:
        ranks = self.final_ranks()
        peft_config = self._tuner().peft_config[_ADAPTER]
        assert isinstance(peft_config, AdaLoraConfig)
        return {
            "final_ranks": ranks,
            "total_rank": sum(ranks.values()),
            "target_total_rank": peft_config.target_r * len(ranks),
            "init_r": peft_config.init_r,
        }

    @classmethod
    def signals(cls, report: Mapping[str, Any]) -> dict[str, float]:
        """Final ranks (`L3.query`): where the allocator kept its budget."""
        return signals_by_module(report.get("final_ranks") or {})

    def final_adapter(
        self, model: PeftModel, plan: PeftPlan, layout: ModelLayout
    ) -> tuple[PeftModel, PeftPlan]:
        return adalora_to_lora(model, plan, layout)


def adalora_to_lora(model: PeftModel, plan: PeftPlan, layout: ModelLayout) -> tuple[PeftModel, PeftPlan]:
    """A plain LoRA model with the same outputs as the trained AdaLoRA `model`, and its plan.

    Consumes `model`: its base is unloaded (adapters removed, head kept trained) and wrapped again with LoRA.
    """
    layers = _adalora_layers(model)
    weights = {name: _lora_factors(module) for name, module in layers.items()}
    final_plan = _plan_from_ranks(
        plan,
        layout,
        {n: a.shape[0] for n, (a, _, _) in weights.items()},
        {n: s for n, (_, _, s) in weights.items()},
    )
    head = {
        name.removeprefix("base_model.model."): module.modules_to_save[_ADAPTER].state_dict()
        for name, module in model.named_modules()
        if isinstance(module, ModulesToSaveWrapper)
    }
    task_type = model.peft_config[_ADAPTER].task_type
    base = model.unload()
    lora_model = get_peft_model(
        base, LoraConfig(task_type=task_type, **final_plan.lora_config_kwargs(layout))
    )
    with torch.no_grad():
        for name, module in lora_model.named_modules():
            short = name.removeprefix("base_model.model.")
            if short in weights and weights[short][0].shape[0] > 0:
                module.lora_A[_ADAPTER].weight.copy_(weights[short][0])
                module.lora_B[_ADAPTER].weight.copy_(weights[short][1])
            if isinstance(module, ModulesToSaveWrapper):
                module.modules_to_save[_ADAPTER].load_state_dict(head[short])
    return lora_model, final_plan


def _adalora_layers(model: torch.nn.Module) -> dict[str, AdaLoraLayer]:
    return {
        name.removeprefix("base_model.model."): module
        for name, module in model.named_modules()
        if isinstance(module, AdaLoraLayer)
    }


def _kept(module: AdaLoraLayer) -> torch.Tensor:
    """Boolean mask of the triplets the allocator kept (masked ones have E exactly 0)."""
    return module.lora_E[_ADAPTER].detach().view(-1) != 0


def _lora_factors(module: AdaLoraLayer) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(A', B', s): LoRA factors of the kept triplets and AdaLoRA's effective scaling."""
    kept = _kept(module)
    a = (module.lora_A[_ADAPTER] * module.lora_E[_ADAPTER]).detach()[kept]
    # peft's AdaLoraLayer makes lora_A/B ParameterDicts, but declares them as LoraLayer's ModuleDicts
    b = module.lora_B[_ADAPTER].detach()[:, kept]  # type: ignore[operator]
    scaling = module.scaling[_ADAPTER] / (module.ranknum[_ADAPTER].item() + _RANKNUM_EPSILON)
    return a, b, float(scaling)


def _plan_from_ranks(
    plan: PeftPlan, layout: ModelLayout, ranks: Mapping[str, int], scalings: Mapping[str, float]
) -> PeftPlan:
    """The plan with each module at its kept rank and alpha = s·r, so alpha/r keeps AdaLoRA's scaling."""
    adapters = []
    for adapter, module in zip(plan.adapters, plan.modules(layout), strict=True):
        name = module.name
        rank = ranks.get(name, 0)
        alpha = scalings[name] * rank if rank else adapter.alpha
        adapters.append(ModuleSetting(layer=adapter.layer, module=adapter.module, rank=rank, alpha=alpha))
    methods = {k: v for k, v in plan.methods.items() if k != "adalora"}
    return plan.model_copy(update={"adapters": tuple(adapters), "methods": methods})


__all__ = ["AdaloraConfig", "AdaloraController", "adalora_to_lora"]
