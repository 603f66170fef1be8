"""TrainingLoop: optimizer steps with the method-controller hooks in METHODS.md's order, and evaluation.

Used for a trial's main phase and for the preparation phases some methods run first (DiffoRA's selection,
Light-PEFT's estimation), so every phase counts tokens and time the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise
from typing import Any

import torch

from autopeft.errors import AutopeftError
from autopeft.methods.controller import MethodController
from autopeft.tasks.classification_dev import predict_timed
from autopeft.tasks.task_kind import Batch, autocast
from autopeft.tasks.tokenized_split import TokenizedSplit

__all__ = ["PHASES", "TrainingLoop", "TrialFailure", "autocast", "evaluate", "token_count"]
PHASES = ("hooks", "forward", "backward", "update")
"""Where a step's time goes: the before-step hooks (IST's roll-outs and draws), the forward pass, the backward
pass, and the rest (clipping, the other hooks, the optimizer and scheduler)."""


class TrialFailure(AutopeftError):
    """Training went wrong in a way that fails the trial but not the search (a NaN loss, say)."""


def evaluate(
    model: torch.nn.Module, split: TokenizedSplit, batch_size: int, device: torch.device
) -> list[int]:
    """Argmax predictions for every example of a classification split, in order."""
    return predict_timed(model, split, batch_size, device)[0]


def token_count(batch: Batch) -> int:
    """Tokens a batch trains on: its attention mask's ones, or every position of a packed batch (which has no
    mask; its only padding is the short tail of a row)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


class TrainingLoop:
    """One optimizer step at a time: forward, optional extra loss term, backward, clip, hooks, update."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        controllers: Sequence[MethodController],
        device: torch.device,
        max_grad_norm: float,
        extra_loss: Callable[[], torch.Tensor] | None = None,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.controllers = list(controllers)
        self.device, self.max_grad_norm, self.extra_loss = device, max_grad_norm, extra_loss
        self.tokens, self.train_seconds, self.steps_done = 0, 0.0, 0
        self.phase_seconds = dict.fromkeys(PHASES, 0.0)

    def run(
        self, batches: Iterator[Batch], steps: int, after_each: Callable[[int, float], bool] | None = None
    ) -> None:
        """Take `steps` steps; `after_each(steps_done, loss)` may return True to stop early."""
        self.model.train()
        for step in range(steps):
            loss = self.step(step, next(batches))
            if after_each is not None and after_each(step + 1, loss):
                return

    def step(self, step: int, batch: Batch) -> float:
        """One optimizer step; a non-finite loss fails the trial."""
        marks = [time.perf_counter()]
        for controller in self.controllers:
            controller.before_step(step)
        marks.append(time.perf_counter())
        with autocast(self.device):
            loss = self.model(**batch).loss
            if self.extra_loss is not None:
                loss = loss + self.extra_loss()
        if not math.isfinite(loss.item()):
            raise TrialFailure(f"loss became {loss.item()} at step {step}; lower the learning rate")
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        parameters = [
            p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None
        ]
        torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
        for controller in self.controllers:
            controller.after_backward(step)
        self.optimizer.step()
        for controller in self.controllers:
            controller.after_step(step)
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        for phase, (start, stop) in zip(PHASES, pairwise(marks), strict=True):
            self.phase_seconds[phase] += stop - start
        self.tokens += token_count(batch)
        self.train_seconds += marks[-1] - marks[0]
        self.steps_done += 1
        return float(loss.item())
