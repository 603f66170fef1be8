"""MethodController: the hooks a PEFT method uses to steer the training loop (METHODS.md, hooks table).

`run_trial`'s loop and the Trainer callback adapter call the hooks in the same order:
`setup` once (optimizer already created), then per optimizer step `before_step` (no grads yet),
`after_backward` (clipped grads present), `after_step` (weights updated, grads still present),
and `finish` once, which returns what the method learned for the trial's metrics.

Besides the step hooks, a controller may run a phase before the main training (`prepare`: DiffoRA, Light-PEFT),
replace the peft config the plan builds (`peft_config`: AdaLoRA), state the plan whose parameters count against
the budget (`budget_plan`) and the share of it expected to remain (`expected_share`), hand back a plain LoRA model to save at the end (`final_adapter`) and add files next
to the adapter (`artifacts`). Generic code asks these hooks and never branches on a method's name.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

if TYPE_CHECKING:
    from peft import PeftConfig, PeftModel

    from autopeft.model_layout import ModelLayout
    from autopeft.plan import PeftPlan
    from autopeft.preparation import Preparation, PhaseRunner

BatchSource = Callable[[int, int], Iterator[dict[str, torch.Tensor]]]


class MethodConfig(BaseModel):
    """Base of every method's settings: strict, so an unknown option is an error, never dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def is_enabled(self) -> bool:
        """False for a config that switches its method off (e.g. IST's `mode: off`)."""
        return True


@dataclass
class TrainingContext:
    """What a controller may read or steer: the peft model, its optimizer, the step budget and the data.

    `batches(batch_size, seed)` returns a fresh, independently shuffled iterator of training batches with labels,
    already on `device` (IST draws its roll-out batches from it).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    total_steps: int
    batches: BatchSource
    device: torch.device
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)


class MethodController(abc.ABC):
    """Base of every method controller; `setup` and `finish` are required, the other hooks optional."""

    config_class: ClassVar[type[MethodConfig]]
    incompatible_with: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: MethodConfig) -> None:
        self.config = config

    @classmethod
    def peft_config(
        cls, config: MethodConfig, plan: PeftPlan, layout: ModelLayout, total_steps: int
    ) -> PeftConfig | None:
        """The peft config to build instead of the plan's LoRA config, or None to keep LoRA."""
        return None

    @classmethod
    def budget_plan(cls, config: MethodConfig, plan: PeftPlan) -> PeftPlan:
        """The plan whose trainable parameters count against the budget before training (the final size)."""
        return plan

    @classmethod
    def expected_share(cls, config: MethodConfig) -> float:
        """The share of the budget plan's trainable parameters expected to remain after training (1 unless the
        method prunes the adapter by ratios decided during the trial); the sampler's cost estimate."""
        return 1.0

    def prepare(self, plan: PeftPlan, runner: PhaseRunner) -> Preparation | None:
        """Run a phase before the main training and return the model to train from then on, or None.

        Called before `setup`, with a fresh controller; at most one method of a plan may prepare.
        """
        return None

    @abc.abstractmethod
    def setup(self, context: TrainingContext) -> None:
        """Called once before the first step, after the optimizer exists."""

    def before_step(self, step: int) -> None:
        """Called at the start of optimizer step `step` (0-based), before the forward pass."""

    def after_backward(self, step: int) -> None:
        """Called after backward and gradient clipping, before `optimizer.step()`."""

    def after_step(self, step: int) -> None:
        """Called after `optimizer.step()`, before `zero_grad()`."""

    @abc.abstractmethod
    def finish(self) -> Mapping[str, Any]:
        """Called once after training; returns what the method learned (ranks, importances), JSON-ready."""

    def final_adapter(
        self, model: PeftModel, plan: PeftPlan, layout: ModelLayout
    ) -> tuple[PeftModel, PeftPlan] | None:
        """A plain LoRA model equivalent to the trained one, with its plan, or None to save `model` as is."""
        return None

    def artifacts(self) -> Mapping[str, Any]:
        """JSON files to save next to the adapter (file name -> content), e.g. Light-PEFT's pruning plan."""
        return {}
