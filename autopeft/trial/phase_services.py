"""PhaseServices: what a trial offers the preparation phase a method may run before the main training
(DiffoRA's module selection, Light-PEFT's estimation and pruning).

It implements `autopeft.methods.controller.TrialServices`, the protocol the controllers are written against, so
the controllers never import the trial. Every phase's tokens and time are added up here and count for the
trial's throughput.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel

from autopeft.budget import BudgetConfig
from autopeft.methods.controller import Batch, MethodController
from autopeft.model_layout import ModelLayout
from autopeft.plan import PeftPlan
from autopeft.tasks.task_kind import TrainingSplit
from autopeft.trial.adapters import apply_plan
from autopeft.trial.training_loop import TrainingLoop


@dataclass
class PhaseServices:
    """Fresh base models, adapters, batches and short training runs for one trial's preparation phase."""

    load_base: Callable[[], torch.nn.Module]
    train_split: TrainingSplit
    budget: BudgetConfig
    device: torch.device
    seed: int
    model_name: str
    cache_dir: Path | None
    task_type: str = "SEQ_CLS"
    tokens: int = 0
    seconds: float = 0.0

    def build_adapters(
        self, base: torch.nn.Module, plan: PeftPlan, total_steps: int
    ) -> tuple[PeftModel, ModelLayout]:
        return apply_plan(base, plan, total_steps, self.model_name, task_type=self.task_type)

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
    ) -> None:
        """`steps` optimizer steps (no schedule, no evaluation); their tokens and time count for the trial."""
        loop = TrainingLoop(
            model, optimizer, None, controllers, self.device, self.budget.max_grad_norm, extra_loss
        )
        loop.run(batches, steps, after_each)
        self.tokens += loop.tokens
        self.seconds += loop.train_seconds

    def data_fingerprint(self) -> str:
        """A hash of the first 64 tokenised training examples (enough to tell two data sets apart)."""
        return self.train_split.fingerprint()
