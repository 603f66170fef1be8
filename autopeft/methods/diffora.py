"""DiffoRA: differentiable module selection (METHODS.md §4).

Paper: Jiang, Wang and Yuan, "DiffoRA" (arXiv 2502.08905, 2025). There is no public code. Published: LoRA is
applied to a subset of modules chosen through a continuously relaxed "Differential Adaptation Matrix" over
(layer, module type), optimised bi-level and discretised at a selection ratio rho, with weight sharing to soften
the discretisation. Everything else here is autopeft's DARTS-style *reconstruction* (Liu et al., ICLR 2019):

1. supernet: the plan's LoRA on every candidate module, each branch multiplied by a gate (sigmoid of a logit
   initialised to 0, or per-layer softmax times the module count), the logits kept outside the PeftModel;
2. first-order alternation for `steps` steps: one AdamW step on the LoRA weights with the gates fixed (detached),
   then one Adam step on the gates from a held-out slice of the training data (`torch.autograd.grad`, so the
   LoRA grads are untouched);
3. keep the top-rho candidates by gate, globally or per layer (`selection: random` is the control arm);
4. weight sharing: kept modules inherit A and B (B folded with its gate), the rest are removed;
5. plain LoRA on exactly the kept modules trains on for the rest of the trial's steps.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from peft.utils import ModulesToSaveWrapper
from pydantic import Field

from autopeft.methods.controller import (
    MethodConfig,
    MethodController,
    Preparation,
    TrainingContext,
    TrialServices,
    signals_by_module,
)
from autopeft.model_layout import ModelLayout, block_index
from autopeft.plan import PeftPlan

_ADAPTER = "default"


class DifforaConfig(MethodConfig):
    """DiffoRA's knobs (METHODS.md §4 search ranges)."""

    enabled: bool = Field(default=True, description="Select modules with DiffoRA before training.")
    rho: float = Field(default=0.5, gt=0, le=1, description="Kept fraction of the candidate modules.")
    scope: Literal["global", "layer"] = Field(
        default="global", description="Rank the gates globally or per layer."
    )
    steps: int | None = Field(
        default=None, ge=1, description="Selection steps; default 10 % of the trial's steps."
    )
    gate: Literal["sigmoid", "softmax"] = "sigmoid"
    gate_lr: float = Field(default=1e-3, gt=0, description="Adam learning rate of the gate logits.")
    held_out_fraction: float = Field(
        default=0.1, gt=0, lt=1, description="Training share used for gate steps."
    )
    selection: Literal["gates", "random"] = Field(default="gates", description="random = the control arm.")
    fold_gate: bool = Field(default=True, description="Fold each kept gate into its B when inheriting.")

    def is_enabled(self) -> bool:
        return self.enabled


class DifforaController(MethodController):
    """Runs the selection phase in `prepare`; the main phase is plain LoRA on the kept modules."""

    config_class: ClassVar[type[MethodConfig]] = DifforaConfig
    incompatible_with: ClassVar[frozenset[str]] = frozenset({"light_peft", "adalora"})
    config: DifforaConfig

    def prepare(self, plan: PeftPlan, services: TrialServices) -> Preparation:
        steps = self.config.steps or max(1, round(0.1 * services.budget.total_steps()))
        supernet, layout = services.build_adapters(services.load_base(), plan, steps)
        supernet.to(services.device)
        self.gates = _Gates(supernet, self.config.gate)
        self.gates.to(services.device)
        self._search(supernet, services, steps)
        self.selected = self._select(services.seed)
        values = self.gates.floats()
        kept_plan = _keep_only(plan, layout, set(self.selected))
        self.inherited = self._inherited_weights(supernet, values)
        self.gates.remove()
        model, kept_layout = services.build_adapters(
            services.load_base(), kept_plan, services.budget.total_steps()
        )
        _load_inherited(model, self.inherited)
        self.gate_values = values
        return Preparation(model, kept_layout, kept_plan, steps_used=steps)

    def _search(self, supernet: PeftModel, services: TrialServices, steps: int) -> None:
        """First-order bi-level alternation: a LoRA step with fixed gates, then a gate step on held-out data."""
        train, held_out = services.disjoint_batches(self.config.held_out_fraction, services.seed)
        weights = [p for p in supernet.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(weights, lr=services.budget.learning_rate)
        gate_optimizer = torch.optim.Adam(self.gates.parameters(), lr=self.config.gate_lr, weight_decay=1e-3)
        self.gate_steps = 0

        def gate_step(done: int, loss: float) -> bool:
            self.gates.learning = True
            held_out_loss = supernet(**next(held_out)).loss
            grads = torch.autograd.grad(held_out_loss, list(self.gates.parameters()))
            self.gates.learning = False
            for parameter, grad in zip(self.gates.parameters(), grads, strict=True):
                parameter.grad = grad
            gate_optimizer.step()
            gate_optimizer.zero_grad(set_to_none=True)
            self.gate_steps += 1
            return False

        services.train(supernet, optimizer, steps, train, after_each=gate_step)

    def _select(self, seed: int) -> list[str]:
        """The kept module names: top-rho by gate (or a random set of the same size), globally or per layer."""
        values = self.gates.floats()
        groups: dict[int | None, list[str]] = {}
        for name in values:
            groups.setdefault(block_index(name) if self.config.scope == "layer" else None, []).append(name)
        rng = random.Random(seed + 13)
        kept = []
        for names in groups.values():
            count = max(1, round(self.config.rho * len(names)))
            ranked = (
                rng.sample(names, len(names))
                if self.config.selection == "random"
                else sorted(names, key=lambda n: -values[n])
            )
            kept.extend(ranked[:count])
        return sorted(kept)

    def _inherited_weights(self, supernet: PeftModel, gates: Mapping[str, float]) -> dict[str, torch.Tensor]:
        """LoRA A/B of the kept modules (B folded with its gate) and the trained head, keyed by parameter name."""
        kept = set(self.selected)
        inherited = {}
        for name, module in supernet.named_modules():
            short = name.removeprefix("base_model.model.")
            if isinstance(module, LoraLayer) and short in kept:
                gate = gates[short] if self.config.fold_gate else 1.0
                inherited[f"{short}.lora_A"] = _weight(module.lora_A).detach().clone()
                inherited[f"{short}.lora_B"] = gate * _weight(module.lora_B).detach().clone()
            if isinstance(module, ModulesToSaveWrapper):
                for key, value in module.modules_to_save[_ADAPTER].state_dict().items():
                    inherited[f"{short}.head.{key}"] = value.detach().clone()
        return inherited

    def setup(self, context: TrainingContext) -> None:
        return None

    @classmethod
    def signals(cls, report: Mapping[str, Any]) -> dict[str, float]:
        """Gate values (`L3.query`) of the selection phase."""
        return signals_by_module(report.get("gates") or {})

    def finish(self) -> Mapping[str, Any]:
        return {
            "selected": self.selected,
            "gates": self.gate_values,
            "selection": self.config.selection,
            "scope": self.config.scope,
            "gate_steps": self.gate_steps,
            "note": "DiffoRA reconstruction (no public code); see autopeft/methods/diffora.py",
        }


class _Gates(torch.nn.Module):
    """One logit per adapted module, applied by a forward hook on its `lora_B` (the LoRA branch only)."""

    def __init__(self, model: PeftModel, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.learning = False
        self.names = [
            n.removeprefix("base_model.model.") for n, m in model.named_modules() if isinstance(m, LoraLayer)
        ]
        self.logits = torch.nn.ParameterDict(
            {_key(n): torch.nn.Parameter(torch.zeros(())) for n in self.names}
        )
        self.hooks = [
            module.lora_B[_ADAPTER].register_forward_hook(self._hook(n.removeprefix("base_model.model.")))
            for n, module in model.named_modules()
            if isinstance(module, LoraLayer)
        ]

    def values(self) -> dict[str, torch.Tensor]:
        """gamma per module: sigmoid(a), or M·softmax(a) over the modules of each layer (mean gate 1)."""
        if self.kind == "sigmoid":
            return {n: torch.sigmoid(self.logits[_key(n)]) for n in self.names}
        values: dict[str, torch.Tensor] = {}
        for layer in sorted({block_index(n) for n in self.names}, key=lambda i: -1 if i is None else i):
            names = [n for n in self.names if block_index(n) == layer]
            weights = len(names) * torch.softmax(torch.stack([self.logits[_key(n)] for n in names]), dim=0)
            values.update(dict(zip(names, weights, strict=True)))
        return values

    def floats(self) -> dict[str, float]:
        """The gate values as plain numbers (for ranking, folding and the trial report)."""
        return {name: float(value.detach()) for name, value in self.values().items()}

    def _hook(self, name: str) -> Any:
        def scale(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            gate = self.values()[name]
            return output * (gate if self.learning else gate.detach())

        return scale

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def _key(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _keep_only(plan: PeftPlan, layout: ModelLayout, kept: set[str]) -> PeftPlan:
    adapters = tuple(
        a if module.name in kept else a.model_copy(update={"rank": 0})
        for a, module in zip(plan.adapters, plan.modules(layout), strict=True)
    )
    return plan.model_copy(update={"adapters": adapters})


def _load_inherited(model: PeftModel, inherited: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, module in model.named_modules():
            short = name.removeprefix("base_model.model.")
            if isinstance(module, LoraLayer) and f"{short}.lora_A" in inherited:
                _weight(module.lora_A).copy_(inherited[f"{short}.lora_A"])
                _weight(module.lora_B).copy_(inherited[f"{short}.lora_B"])
            if isinstance(module, ModulesToSaveWrapper):
                head = {
                    k.split(".head.", 1)[1]: v for k, v in inherited.items() if k.startswith(f"{short}.head.")
                }
                module.modules_to_save[_ADAPTER].load_state_dict(head)


def _weight(factors: torch.nn.ModuleDict) -> torch.Tensor:
    """The weight of the adapter's LoRA factor (an `nn.Linear`; a Module attribute is `Tensor | Module`)."""
    weight = factors[_ADAPTER].weight
    assert isinstance(weight, torch.Tensor)
    return weight


__all__ = ["DifforaConfig", "DifforaController"]
