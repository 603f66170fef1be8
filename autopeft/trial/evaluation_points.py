"""EvaluationPoints: the dev evaluations of a trial's main phase, its learning curve and the early-stop question.

The budget spreads `evaluations` points evenly over the main phase's steps (the last at its end); at each the
dev split scores the model with the task's metric, the reporter hears every measurement so far, and a driver
may stop the trial.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import torch

from autopeft.budget import BudgetConfig
from autopeft.tasks.task_kind import DevSplit
from autopeft.trial.peak_memory import PeakMemoryMeter
from autopeft.trial.phase_services import PhaseServices
from autopeft.trial.reporting import Reporter
from autopeft.trial.training_loop import TrainingLoop

TrialState = Literal["complete", "failed", "pruned"]


class EvaluatedTrial(Protocol):
    """What the evaluation points read of the trial they belong to (`run.TrialRun` provides it)."""

    dev_split: DevSplit
    budget: BudgetConfig
    device: torch.device
    reporter: Reporter
    on_progress: Callable[[int, int], None] | None


class EvaluationPoints:
    """Evaluates at the budget's evaluation points, keeps the learning curve and asks the reporter whether to
    stop. Every report carries every measurement so far (drivers such as Ray need each objective in each
    report)."""

    def __init__(
        self,
        trial: EvaluatedTrial,
        loop: TrainingLoop,
        total: int,
        counted: int,
        memory: PeakMemoryMeter,
        services: PhaseServices,
    ) -> None:
        self.trial, self.loop, self.total, self.counted, self.memory, self.services = (
            trial,
            loop,
            total,
            counted,
            memory,
            services,
        )
        count = trial.budget.evaluations
        self.steps = {max(1, round(total * (i + 1) / count)) for i in range(count)}
        self.state: TrialState = "complete"
        self.curve: list[dict[str, float]] = []
        self.predictions: list[int] = []
        self.losses: list[float] = []

    def after_step(self, done: int, loss: float) -> bool:
        self.losses.append(loss)
        if self.trial.on_progress is not None:
            self.trial.on_progress(done, self.total)
        if done not in self.steps:
            return False
        trial = self.trial
        evaluation = trial.dev_split.evaluate(self.loop.model, trial.budget.eval_batch_size, trial.device)
        self.predictions = evaluation.predictions
        point = {
            "step": float(done),
            "task_metric": evaluation.metric,
            "train_loss": sum(self.losses) / len(self.losses),
            **self._measured(),
        }
        self.losses.clear()
        self.curve.append(point)
        trial.reporter.report(done, {k: v for k, v in point.items() if k != "step"})
        if done < self.total and trial.reporter.should_stop():
            self.state = "pruned"
            return True
        return False

    def _measured(self) -> dict[str, float]:
        tokens = self.services.tokens + self.loop.tokens
        seconds = self.services.seconds + self.loop.train_seconds
        return {
            "trainable_parameters": float(self.counted),
            "peak_memory_mb": self.memory.current_peak_mb(),
            "train_tokens_per_second": tokens / max(seconds, 1e-9),
        }
