"""Light-PEFT: early pruning of the base model and of the adapters (METHODS.md §5).

Paper: Gu et al., "Light-PEFT: Lightening Parameter-Efficient Fine-Tuning via Early Pruning", Findings of ACL
2024; reference code gccnlp/Light-PEFT. Three phases, all inside one trial:

- E (estimation, `prepare`): LoRA on every candidate module plus trainable head and FFN-neuron masks with an L1
  penalty; module importance is the per-token ratio ‖s·BAx‖ / ‖W0x + b‖ over non-padding tokens, rank importance
  |mean_j A_ij ∂L/∂A_ij| + |mean_k B_ki ∂L/∂B_ki|, both averaged over the second half of the steps. The result is
  cached in the run directory, so trials that differ only in their ratios reuse it.
- P (pruning): heads per layer and FFN neurons globally by their final masks (`autopeft.pruning.pruning_plan`), adapter
  modules and ranks by their importances; heads and neurons are removed physically.
- F (fine-tuning): the pruned base, LoRA on the kept modules at their kept ranks (alpha = alpha0·r/r0 keeps the
  scaling), initialised from the sliced phase-E weights, trained for the trial's full budget with a fresh
  optimizer.

The artifact is the adapter plus its pruning plan (`autopeft.pruning.artifact`); `autopeft.export.load_exported`
re-applies the plan to the original checkpoint, which is never modified.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from pydantic import Field
from safetensors.torch import load_file, save_file

from autopeft.methods.controller import (
    MethodConfig,
    MethodController,
    Preparation,
    TrainingContext,
    TrialServices,
    signals_by_module,
)
from autopeft.model_layout import ModelLayout
from autopeft.plan import ModuleSetting, PeftPlan
from autopeft.pruning.artifact import artifact_files
from autopeft.pruning.layout import PruningShape
from autopeft.pruning.masks import install_masks
from autopeft.pruning.pruning_plan import PruningPlan, apply_pruning, plan_pruning, slice_lora_state
from autopeft.storage.atomic_files import write_json_atomic

_ADAPTER = "default"
_PREFIX = "base_model.model."


class LightPeftConfig(MethodConfig):
    """Light-PEFT's knobs; the ratios are the shares pruned (METHODS.md §5 tables)."""

    enabled: bool = Field(default=True, description="Prune base and adapter after a short estimation phase.")
    head_ratio: float = Field(
        default=1 / 3, ge=0, lt=1, description="rho_attn: share of heads pruned per layer."
    )
    ffn_ratio: float = Field(default=1 / 3, ge=0, lt=1, description="rho_ffn: share of FFN neurons pruned.")
    module_ratio: float = Field(
        default=0.75, ge=0, lt=1, description="rho_mod: share of adapter modules dropped."
    )
    rank_ratio: float = Field(default=0.5, ge=0, lt=1, description="rho_rank: share of kept ranks dropped.")
    estimation_steps: int | None = Field(
        default=None, ge=2, description="Phase E steps; default 5 % of the trial."
    )
    head_scope: Literal["layerwise", "global"] = "layerwise"
    ffn_scope: Literal["layerwise", "global"] = "global"
    l1: float = Field(default=1e-4, ge=0, description="lambda_1, weight of the mask L1 penalty.")
    mask_lr_multiplier: float = Field(default=1.0, gt=0)

    def is_enabled(self) -> bool:
        return self.enabled


class LightPeftController(MethodController):
    """Estimates (or reuses the cached estimate), prunes, and hands phase F's model to the trial."""

    config_class: ClassVar[type[MethodConfig]] = LightPeftConfig
    incompatible_with: ClassVar[frozenset[str]] = frozenset({"adalora", "diffora"})
    config: LightPeftConfig

    @classmethod
    def expected_share(cls, config: MethodConfig) -> float:
        """Kept modules times kept ranks; head and FFN pruning shrink the kept adapters a little more."""
        assert isinstance(config, LightPeftConfig)
        return (1 - config.module_ratio) * (1 - config.rank_ratio) if config.enabled else 1.0

    def prepare(self, plan: PeftPlan, services: TrialServices) -> Preparation:
        steps = self.config.estimation_steps or max(2, round(0.05 * services.budget.total_steps()))
        self.estimation_steps = steps
        self.estimation, self.estimation_cached = self._estimation(plan, services, steps)
        base = services.load_base()
        self.pruning_plan = plan_pruning(
            PruningShape.from_model(base),
            self.estimation["head_scores"],
            self.estimation["ffn_scores"],
            self.config.head_ratio,
            self.config.ffn_ratio,
            self.config.head_scope,
            self.config.ffn_scope,
        )
        layout = ModelLayout.from_model(base, services.model_name)  # unpruned: the plan's entries speak of it
        apply_pruning(base, self.pruning_plan)
        kept_ranks = self._kept_ranks()
        kept_plan = _plan_with_ranks(plan, layout, kept_ranks)
        model, layout = services.build_adapters(base, kept_plan, services.budget.total_steps())
        _load_sliced(model, self.estimation, self.pruning_plan, kept_ranks)
        self.kept_ranks = {name: len(ranks) for name, ranks in kept_ranks.items()}
        return Preparation(model, layout, kept_plan, steps_used=0)

    def _estimation(self, plan: PeftPlan, services: TrialServices, steps: int) -> tuple[dict[str, Any], bool]:
        """Phase E's outputs, from the run's cache when an identical estimation ran before."""
        folder = (
            services.cache_dir / "light_peft" / self._cache_key(plan, services, steps)
            if services.cache_dir
            else None
        )
        if folder is not None and (folder / "estimation.safetensors").is_file():
            return _read_estimation(folder), True
        estimation = _Estimation(plan, services, self.config, steps).run()
        if folder is not None:
            _write_estimation(folder, estimation)
        return estimation, False

    def _cache_key(self, plan: PeftPlan, services: TrialServices, steps: int) -> str:
        """Everything phase E depends on (METHODS.md §5 "When"); the ratios and scopes are not part of it."""
        inputs = {
            "model": services.model_name,
            "adapters": [a.model_dump() for a in plan.adapted],
            "dropout": plan.dropout,
            "l1": self.config.l1,
            "mask_lr": self.config.mask_lr_multiplier,
            "steps": steps,
            "seed": services.seed,
            "budget": services.budget.model_dump(),
            "data": services.data_fingerprint(),
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]

    def _kept_ranks(self) -> dict[str, list[int]]:
        """Kept modules (importance above the rho_mod quantile) and, in them, kept rank indices."""
        modules = self.estimation["module_importance"]
        kept = _above_quantile(modules, self.config.module_ratio)
        ranks = {name: self.estimation["rank_importance"][name] for name in kept}
        threshold = _quantile(torch.cat(list(ranks.values())), self.config.rank_ratio)
        kept_ranks = {
            name: [i for i, v in enumerate(values.tolist()) if threshold is None or v > threshold]
            for name, values in ranks.items()
        }
        kept_ranks = {name: indices for name, indices in kept_ranks.items() if indices}
        if not kept_ranks:  # every rank tied at the threshold: keep the best module at its best rank
            best = max(ranks, key=lambda n: float(modules[n]))
            kept_ranks = {best: [int(torch.argmax(ranks[best]))]}
        return kept_ranks

    def setup(self, context: TrainingContext) -> None:
        return None

    def artifacts(self) -> Mapping[str, Any]:
        return artifact_files(self.pruning_plan)

    @classmethod
    def signals(cls, report: Mapping[str, Any]) -> dict[str, float]:
        """Module importances (`L3.query`) from phase E's output ratios."""
        return signals_by_module(report.get("module_importance") or {})

    def finish(self) -> Mapping[str, Any]:
        return {
            "pruned_heads": [len(h) for h in self.pruning_plan.pruned_heads],
            "pruned_neurons": [len(n) for n in self.pruning_plan.pruned_neurons],
            "kept_ranks": self.kept_ranks,
            "module_importance": {n: float(v) for n, v in self.estimation["module_importance"].items()},
            "estimation_steps": self.estimation_steps,
            "estimation_cached": self.estimation_cached,
        }


class _Estimation(MethodController):
    """Phase E as a run with its own hooks: masks and L1 in the loss, module ratios in forward hooks,
    rank importance after each backward (on clipped grads; clipping rescales a step uniformly)."""

    config_class: ClassVar[type[MethodConfig]] = LightPeftConfig
    config: LightPeftConfig

    def __init__(self, plan: PeftPlan, services: TrialServices, config: LightPeftConfig, steps: int) -> None:
        super().__init__(config)
        self.plan, self.services, self.steps = plan, services, steps
        self.module_sums: dict[str, float] = {}
        self.rank_sums: dict[str, torch.Tensor] = {}
        self.counted_steps = 0
        self.ratios: dict[str, list[float]] = {}

    def run(self) -> dict[str, Any]:
        services = self.services
        model, _ = services.build_adapters(services.load_base(), self.plan, self.steps)
        model.to(services.device)
        masks = install_masks(model)
        self.layers = {
            n.removeprefix(_PREFIX): m for n, m in model.named_modules() if isinstance(m, LoraLayer)
        }
        hooks = self._install_ratio_hooks(model)
        weights = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": weights, "lr": services.budget.learning_rate},
                {
                    "params": masks.parameters(),
                    "lr": services.budget.learning_rate * self.config.mask_lr_multiplier,
                    "weight_decay": 0.0,
                },
            ]
        )
        services.train(
            model,
            optimizer,
            self.steps,
            services.batches(services.budget.batch_size, services.seed + 5),
            controllers=[self],
            extra_loss=lambda: self.config.l1 * masks.l1(),
        )
        for hook in hooks:
            hook.remove()
        masks.remove()
        denominator = max(self.counted_steps, 1)
        return {
            "head_scores": masks.head_scores().cpu(),
            "ffn_scores": masks.ffn_scores().cpu(),
            "module_importance": {
                n: torch.tensor(s / denominator).nan_to_num(0.0) for n, s in self.module_sums.items()
            },
            "rank_importance": {
                n: (s / denominator).nan_to_num(0.0).cpu() for n, s in self.rank_sums.items()
            },
            "lora_state": {
                k: v.detach().cpu().clone()
                for k, v in model.state_dict().items()
                if "lora_" in k or "modules_to_save" in k
            },
        }

    def _install_ratio_hooks(self, model: PeftModel) -> list[Any]:
        """Per-token ‖LoRA output‖ / ‖base output‖ of each module, averaged over non-padding tokens."""
        stash: dict[str, torch.Tensor | None] = {}

        def keep_mask(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            stash["mask"] = kwargs.get("attention_mask")

        hooks = [model.register_forward_pre_hook(keep_mask, with_kwargs=True)]
        for name, layer in self.layers.items():
            outputs: dict[str, torch.Tensor] = {}
            hooks.append(
                layer.base_layer.register_forward_hook(
                    lambda m, i, o, outputs=outputs: outputs.__setitem__("base", o.detach())
                )
            )
            hooks.append(
                layer.lora_B[_ADAPTER].register_forward_hook(
                    lambda m, i, o, outputs=outputs, name=name, layer=layer: self._ratio(
                        name, o.detach() * layer.scaling[_ADAPTER], outputs["base"], stash.get("mask")
                    )
                )
            )
        return hooks

    def _ratio(self, name: str, lora: torch.Tensor, base: torch.Tensor, mask: torch.Tensor | None) -> None:
        if not torch.is_grad_enabled():
            return
        ratio = lora.float().norm(dim=-1) / base.float().norm(dim=-1).clamp_min(1e-12)
        weights = (
            mask.to(ratio.dtype) if mask is not None and mask.shape == ratio.shape else torch.ones_like(ratio)
        )
        self.ratios.setdefault(name, []).append(float((ratio * weights).sum() / weights.sum()))

    def setup(self, context: TrainingContext) -> None:
        return None

    def after_backward(self, step: int) -> None:
        """Accumulate both importances over the second half of the steps (METHODS.md §5, E.5)."""
        ratios, self.ratios = self.ratios, {}
        if step < self.steps // 2:
            return
        self.counted_steps += 1
        for name, layer in self.layers.items():
            a, b = layer.lora_A[_ADAPTER].weight, layer.lora_B[_ADAPTER].weight
            assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)  # nn.Linear weights
            if a.grad is None or b.grad is None:
                continue
            score = (a * a.grad).mean(dim=1).abs() + (b * b.grad).mean(dim=0).abs()
            self.rank_sums[name] = self.rank_sums.get(name, 0) + score.detach().float()
            self.module_sums[name] = self.module_sums.get(name, 0.0) + sum(ratios.get(name, [0.0]))

    def finish(self) -> Mapping[str, Any]:
        return {}


def _quantile(values: torch.Tensor, ratio: float) -> float | None:
    """The ratio-quantile of `values`, or None for ratio 0 (nothing pruned, the PEFT-only control arm)."""
    return None if ratio <= 0 else float(torch.quantile(values.float(), ratio))


def _above_quantile(scores: Mapping[str, torch.Tensor], ratio: float) -> list[str]:
    """Names scored above the ratio-quantile; the best one survives even when all tie."""
    threshold = _quantile(torch.stack([scores[n].float() for n in scores]), ratio)
    kept = [n for n in scores if threshold is None or float(scores[n]) > threshold]
    return kept or [max(scores, key=lambda n: float(scores[n]))]


def _plan_with_ranks(plan: PeftPlan, layout: ModelLayout, kept: Mapping[str, list[int]]) -> PeftPlan:
    """Kept modules at their kept ranks; alpha = alpha0·r/r0 keeps each module's scaling alpha0/r0."""
    adapters = []
    for adapter, module in zip(plan.adapters, plan.modules(layout), strict=True):
        rank = len(kept.get(module.name, [])) if adapter.rank else 0
        alpha = adapter.alpha * rank / adapter.rank if rank else adapter.alpha
        adapters.append(ModuleSetting(layer=adapter.layer, module=adapter.module, rank=rank, alpha=alpha))
    return plan.model_copy(update={"adapters": tuple(adapters)})


def _load_sliced(
    model: PeftModel, estimation: Mapping[str, Any], pruning: PruningPlan, kept: Mapping[str, list[int]]
) -> None:
    """Phase-E weights sliced to the pruned base (rows/columns) and to the kept ranks, plus the trained head."""
    state = slice_lora_state(estimation["lora_state"], pruning)
    target = model.state_dict()
    loaded = {}
    for key, value in state.items():
        module = key.removeprefix(_PREFIX).split(".lora_")[0]
        if key not in target:
            continue
        if ".lora_A." in key:
            value = value[kept[module]]
        elif ".lora_B." in key:
            value = value[:, kept[module]]
        loaded[key] = value
    model.load_state_dict(loaded, strict=False)


def _write_estimation(folder: Path, estimation: Mapping[str, Any]) -> None:
    tensors = {"head_scores": estimation["head_scores"], "ffn_scores": estimation["ffn_scores"]}
    tensors.update({f"module::{n}": v.reshape(1) for n, v in estimation["module_importance"].items()})
    tensors.update({f"rank::{n}": v for n, v in estimation["rank_importance"].items()})
    tensors.update({f"state::{k}": v.contiguous() for k, v in estimation["lora_state"].items()})
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / ".estimation.safetensors.partial"
    save_file(tensors, str(staging))
    staging.replace(folder / "estimation.safetensors")
    write_json_atomic(folder / "estimation.json", {"modules": sorted(estimation["module_importance"])})


def _read_estimation(folder: Path) -> dict[str, Any]:
    tensors = load_file(str(folder / "estimation.safetensors"))

    def prefixed(prefix: str) -> dict[str, torch.Tensor]:
        return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}

    return {
        "head_scores": tensors["head_scores"],
        "ffn_scores": tensors["ffn_scores"],
        "module_importance": {n: v.reshape(()) for n, v in prefixed("module::").items()},
        "rank_importance": prefixed("rank::"),
        "lora_state": prefixed("state::"),
    }
