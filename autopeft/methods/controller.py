"""MethodController: the hooks a PEFT method uses to steer the training loop (METHODS.md, hooks table).

`run_trial`'s loop and the Trainer callback adapter call the hooks in the same order:
`setup` once (optimizer already created), then per optimizer step `before_step` (no grads yet),
`after_backward` (clipped grads present), `after_step` (weights updated, grads still present),
and `finish` once, which returns what the method learned for the trial's metrics.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from pydantic import BaseModel


@dataclass
class TrainingContext:
    """What a controller may read or steer: the peft model, its optimizer, the data and the step budget."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    total_steps: int
    train_batches: Any
    device: torch.device
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)


class MethodController(abc.ABC):
    """Base of every method controller; `setup` and `finish` are required, the step hooks optional."""

    config_class: ClassVar[type[BaseModel]]
    incompatible_with: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: BaseModel) -> None:
        self.config = config

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
        """Called once after training; returns what the method learned (ranks, importances)."""
