"""IST: importance-aware sparse layer tuning, and RST, its random control arm (METHODS.md §2).

Paper: Yao et al., "Layer-wise Importance Matters: Less Memory for Better Performance in Parameter-efficient
Fine-tuning of Large Language Models", Findings of EMNLP 2024; algorithm and defaults follow the reference code
(antgroup/importance-aware-sparse-tuning-IST-paper).

Every block keeps its adapters, but each optimizer step only a sampled few blocks' adapters require grads.
Because the base model is frozen, the blocks below the lowest active one build no autograd graph at all: no
stored activations and no backward there, which is where the time and memory saving comes from. Scores `u`
are learned by suppressing random block subsets on roll-out batches (high `u_l` = suppressing block `l` costs
little); importance is exported as `-u`.

Each block's adapters train in about a fraction `N_u / N_L` of the steps (1 of 6 on MiniLM at ratio 0.25, as
`N_u` rounds down), while the head (`modules_to_save`, outside the blocks) trains in every step. A short run
therefore needs more steps than LoRA, or a higher learning rate: on MiniLM/SST-2 at ratio 0.25, 3x LoRA's 100
steps to come within a point of LoRA's accuracy (benchmarks/README.md, "AdaLoRA and IST at ratio 0.25 at the
majority class").
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

import torch
from peft.tuners.lora import LoraLayer
from pydantic import Field, field_validator

from autopeft.methods.controller import MethodConfig, MethodController, TrainingContext
from autopeft.model_layout import block_index


class IstConfig(MethodConfig):
    """IST's knobs; the search ranges of METHODS.md §2 apply."""

    mode: Literal["ist", "rst", "off"] = Field(
        default="ist", description="ist, rst (uniform sampling) or off."
    )
    active_layer_ratio: float = Field(
        default=0.25, gt=0, le=1, description="rho_u: blocks trainable per step."
    )
    suppressed_ratio: float = Field(
        default=0.5, gt=0, lt=1, description="rho_s: blocks suppressed per roll-out."
    )
    suppression_factor: float = Field(
        default=0.25, ge=0, lt=1, description="lambda_s: scale of suppressed ones."
    )
    rollouts: int = Field(default=3, ge=1, description="K: roll-outs per importance update.")
    score_learning_rate: float = Field(default=10.0, gt=0, description="eta: step size of the score update.")
    update_interval: int = Field(default=10, ge=1, description="T_u: optimizer steps between updates.")
    rollout_batch_size: int = Field(default=16, ge=1, description="B_v: examples per roll-out batch.")
    resample_period: int = Field(default=1, ge=1, description="Steps between active-set draws.")

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, mode: object) -> object:
        """YAML 1.1 reads a bare `off` as False; take it as the mode the user wrote."""
        return "off" if mode is False else mode

    def is_enabled(self) -> bool:
        return self.mode != "off"


class IstController(MethodController):
    """Freezes all but a sampled set of blocks' adapters each step; learns block scores by roll-outs."""

    config_class: ClassVar[type[MethodConfig]] = IstConfig
    incompatible_with: ClassVar[frozenset[str]] = frozenset({"adalora"})
    config: IstConfig

    def setup(self, context: TrainingContext) -> None:
        self.model = context.model
        self.blocks = _adapter_blocks(context.model)
        self.parameters = {
            b: [p for m in mods for p in _adapter_parameters(m) if p.requires_grad]
            for b, mods in self.blocks.items()
        }
        self.order = sorted(self.blocks)
        self.scores = torch.zeros(len(self.order), dtype=torch.float64)
        self.active_counts = [0] * len(self.order)
        self.active: list[int] = []
        self.generator = torch.Generator().manual_seed(context.seed + 1)
        self.rollout_batches: Iterator[dict[str, torch.Tensor]] = context.batches(
            self.config.rollout_batch_size, context.seed + 7
        )
        self.updates = 0

    @property
    def active_count(self) -> int:
        """N_u = floor(rho_u · N_L), at least one block."""
        return max(1, math.floor(self.config.active_layer_ratio * len(self.order)))

    def before_step(self, step: int) -> None:
        config = self.config
        if config.mode == "ist" and step > 0 and step % config.update_interval == 0:
            self._update_scores()
        if step % config.resample_period == 0:
            self._resample_active_blocks()

    def _resample_active_blocks(self) -> None:
        weights = torch.sigmoid(-self.scores) if self.config.mode == "ist" else torch.ones(len(self.order))
        picked = torch.multinomial(
            weights.float(), self.active_count, replacement=False, generator=self.generator
        )
        self.active = sorted(self.order[i] for i in picked.tolist())
        for block, parameters in self.parameters.items():
            for parameter in parameters:
                parameter.requires_grad_(block in self.active)
        for index in picked.tolist():
            self.active_counts[index] += 1

    def _update_scores(self) -> None:
        """One importance update: K suppression roll-outs, rewards exp(-loss), advantage-weighted score step."""
        batch = next(self.rollout_batches)
        suppressed_count = max(1, math.floor(self.config.suppressed_ratio * len(self.order)))
        subsets: list[list[int]] = []
        losses: list[float] = []
        self.model.eval()
        try:
            for _ in range(self.config.rollouts):
                subset = self._draw_subset(suppressed_count, subsets)
                subsets.append(subset)
                losses.append(self._suppressed_loss(subset, batch))
        finally:
            self._scale_blocks(set(), 1.0)
            self.model.train()
        rewards = torch.exp(-torch.tensor(losses, dtype=torch.float64))
        advantages = rewards - rewards.mean()
        p = torch.sigmoid(self.scores)
        step = self.config.score_learning_rate * p * (1 - p)
        for subset, advantage in zip(subsets, advantages.tolist(), strict=True):
            for index in subset:
                self.scores[index] += advantage * step[index]
        self.updates += 1

    def _draw_subset(self, size: int, earlier: list[list[int]]) -> list[int]:
        """Indices of `size` blocks drawn with weights sigmoid(u), redrawn (a few times) if already used."""
        weights = torch.sigmoid(self.scores).float()
        for _ in range(10):
            subset = sorted(
                torch.multinomial(weights, size, replacement=False, generator=self.generator).tolist()
            )
            if subset not in earlier:
                break
        return subset

    def _suppressed_loss(self, subset: list[int], batch: dict[str, torch.Tensor]) -> float:
        self._scale_blocks({self.order[i] for i in subset}, self.config.suppression_factor)
        with torch.no_grad():
            return float(self.model(**batch).loss)

    def _scale_blocks(self, suppressed: set[int], factor: float) -> None:
        for block, modules in self.blocks.items():
            for module in modules:
                for adapter in module.active_adapters:
                    module.set_scale(adapter, factor if block in suppressed else 1.0)

    @classmethod
    def signals(cls, report: Mapping[str, Any]) -> dict[str, float]:
        """Block importances (`L3`), the learned `-u` of each block."""
        if not report.get("importance"):
            return {}
        return {f"L{b}": float(v) for b, v in zip(report["blocks"], report["importance"], strict=True)}

    def finish(self) -> Mapping[str, Any]:
        for parameters in self.parameters.values():
            for parameter in parameters:
                parameter.requires_grad_(True)
        return {
            "mode": self.config.mode,
            "blocks": self.order,
            "importance": (-self.scores).tolist(),
            "active_counts": self.active_counts,
            "score_updates": self.updates,
        }


def _adapter_blocks(model: torch.nn.Module) -> dict[int, list[LoraLayer]]:
    """LoRA layers grouped by the block they sit in; adapters outside blocks (the head) are never touched."""
    blocks: dict[int, list[LoraLayer]] = {}
    for name, module in model.named_modules():
        index = block_index(name)
        if isinstance(module, LoraLayer) and index is not None:
            blocks.setdefault(index, []).append(module)
    return blocks


def _adapter_parameters(module: LoraLayer) -> Iterator[torch.nn.Parameter]:
    """The trainable tensors of one LoRA layer (A, B, and any other per-adapter sub-module peft lists)."""
    for attribute in module.adapter_layer_names:
        container = getattr(module, attribute)
        for adapter in module.active_adapters:
            if adapter in container:
                item = container[adapter]
                yield from ([item] if isinstance(item, torch.nn.Parameter) else item.parameters())
