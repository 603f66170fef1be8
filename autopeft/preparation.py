"""Preparation phases: what a method may run before a trial's main training (DiffoRA's module selection,
Light-PEFT's estimation and pruning), and the services `run_trial` offers them.

A controller's `prepare(plan, runner)` returns a `Preparation`: the model to train from then on (already wrapped
by peft, possibly on a pruned base), its layout and plan, and how many of the trial's optimizer steps it used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from peft import PeftModel

from autopeft.model_layout import ModelLayout
from autopeft.plan import PeftPlan
from autopeft.tokenized_split import TokenizedSplit
from autopeft.training_loop import Batch, TrainingLoop

if TYPE_CHECKING:
    from autopeft.methods.controller import MethodController
    from autopeft.search_space import BudgetConfig


@dataclass
class Preparation:
    """The result of a preparation phase."""

    model: PeftModel
    layout: ModelLayout
    plan: PeftPlan
    steps_used: int = 0
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class PhaseRunner:
    """Services for preparation phases: fresh base models, batches, short training runs, a cache folder."""

    load_base: Callable[[], torch.nn.Module]
    train_split: TokenizedSplit
    budget: BudgetConfig
    device: torch.device
    seed: int
    model_name: str
    cache_dir: Path | None
    tokens: int = 0
    seconds: float = 0.0

    def batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
        return self.train_split.shuffled_forever(batch_size, self.device, seed)

    def disjoint_batches(
        self, held_out_fraction: float, seed: int
    ) -> tuple[Iterator[Batch], Iterator[Batch]]:
        """Training batches and held-out batches from two disjoint slices of the training subset."""
        held_out, kept = self.train_split.split(held_out_fraction, seed)
        size = self.budget.batch_size
        return kept.shuffled_forever(size, self.device, seed), held_out.shuffled_forever(
            size, self.device, seed + 1
        )

    def train(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        steps: int,
        batches: Iterator[Batch],
        controllers: Sequence[MethodController] = (),
        extra_loss: Callable[[], torch.Tensor] | None = None,
        after_each: Callable[[int, float], bool] | None = None,
    ) -> TrainingLoop:
        """`steps` optimizer steps (no schedule, no evaluation); their tokens and time count for the trial."""
        loop = TrainingLoop(
            model, optimizer, None, controllers, self.device, self.budget.max_grad_norm, extra_loss
        )
        loop.run(batches, steps, after_each)
        self.tokens += loop.tokens
        self.seconds += loop.train_seconds
        return loop
