"""run_trial: the one trial function. It builds the model, applies the plan, runs any preparation phase a
method asks for, trains on the low-cost budget, evaluates, measures and saves the adapter. It knows nothing of
Optuna or Ray: drivers pass a `Reporter`.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import PeftModel
from transformers import get_linear_schedule_with_warmup

from autopeft.budget import BudgetConfig
from autopeft.errors import PlanError
from autopeft.methods import Preparation, TrainingContext
from autopeft.methods.method_mix import MethodMix
from autopeft.methods.resolved_plan import ResolvedPlan
from autopeft.models import load_tokenizer, resolve_model_path
from autopeft.plan import PeftPlan
from autopeft.storage.atomic_files import write_json_atomic
from autopeft.tasks.task import TaskConfig, load_task
from autopeft.tasks.task_kind import DevSplit, TaskKind, TrainingSplit
from autopeft.trial.adapters import apply_plan
from autopeft.trial.evaluation_points import EvaluationPoints, TrialState
from autopeft.trial.peak_memory import PeakMemoryMeter
from autopeft.trial.phase_services import PhaseServices
from autopeft.trial.reporting import Reporter
from autopeft.trial.training_loop import TrainingLoop

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trial needs besides the plan: model, task, budget, seed, device and a cache folder
    (shared by the trials of one run, e.g. for Light-PEFT's estimation phase)."""

    model: str
    task: TaskConfig
    budget: BudgetConfig
    task_base_dir: str = "."
    seed: int = 0
    device: str = "auto"
    cache_dir: str | None = None


@dataclass
class TrialResult:
    """What a trial measured; `metrics` carries every objective when the state is complete."""

    state: TrialState
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    curve: list[dict[str, float]] = field(default_factory=list)
    method_reports: dict[str, Any] = field(default_factory=dict)
    dev_predictions: list[int] = field(default_factory=list)
    adapter_dir: str | None = None
    final_plan: PeftPlan | None = None


def run_trial(
    plan: PeftPlan,
    spec: TrialSpec,
    reporter: Reporter,
    out_dir: Path,
    on_progress: ProgressCallback | None = None,
) -> TrialResult:
    """Train `plan` under `spec` and save its adapter in `out_dir/adapter`.

    Bad plans, NaN losses and exceptions from the training code become a failed result with its reason, so a
    search goes on; Ctrl-C propagates.
    """
    started = time.perf_counter()
    try:
        result = TrialRun(plan, spec, reporter, Path(out_dir), on_progress).run()
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - any training error fails this trial, not the whole search
        logger.warning("trial failed: %s: %s", type(error).__name__, error)
        return TrialResult(state="failed", reason=f"{type(error).__name__}: {error}")
    result.metrics["wall_seconds"] = time.perf_counter() - started
    return result


def pick_device(requested: str) -> torch.device:
    """`auto` means the GPU Ray or the user made visible, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class TrialRun:
    """One trial's state, so the phases stay small functions."""

    def __init__(
        self,
        plan: PeftPlan,
        spec: TrialSpec,
        reporter: Reporter,
        out_dir: Path,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.plan, self.spec, self.reporter, self.out_dir, self.on_progress = (
            plan,
            spec,
            reporter,
            out_dir,
            on_progress,
        )
        self.budget = spec.budget
        seed_everything(spec.seed)
        self.device = pick_device(spec.device)
        self.task: TaskKind = load_task(spec.task, Path(spec.task_base_dir), spec.seed)
        self.folder = resolve_model_path(spec.model)
        self.tokenizer = load_tokenizer(self.folder)
        splits = self.task.splits(self.tokenizer, self.budget, spec.seed)
        self.train_split: TrainingSplit = splits[0]
        self.dev_split: DevSplit = splits[1]
        self.methods = MethodMix.of(plan)
        self.controllers = self.methods.controllers()

    def load_base(self) -> torch.nn.Module:
        """A fresh pretrained model with the task's head (a classifier, or the causal LM's own LM head)."""
        return self.task.load_model(self.folder, self.tokenizer)

    def run(self) -> TrialResult:
        with PeakMemoryMeter(self.device) as memory:
            services = PhaseServices(
                self.load_base,
                self.train_split,
                self.budget,
                self.device,
                self.spec.seed,
                self.spec.model,
                Path(self.spec.cache_dir) if self.spec.cache_dir else None,
                self.task.peft_task_type,
            )
            prepared = self._prepare(services)
            prepared.model.to(self.device)
            loop, state, curve, predictions = self._main_phase(prepared, services, memory)
        reports = {key: dict(c.finish()) for key, c in self.controllers.items()}
        final_model, final_plan = self._final_adapter(prepared)
        batch_size = self.budget.eval_batch_size
        inference_speed = self.dev_split.inference_speed(final_model, batch_size, self.device)
        task_measurements = self.dev_split.final_metrics(final_model, batch_size, self.device)
        self._save(final_model)
        tokens, seconds = services.tokens + loop.tokens, services.seconds + loop.train_seconds
        metrics = {
            "task_metric": curve[-1]["task_metric"],
            "trainable_parameters": float(final_plan.trainable_parameters(prepared.layout)),
            "peak_memory_mb": memory.peak_mb,
            "train_tokens_per_second": tokens / max(seconds, 1e-9),
            "inference_tokens_per_second": inference_speed,
            "model_parameters": float(_base_parameters(final_model)),
            "steps": float(prepared.steps_used + loop.steps_done),
            **{f"train_{phase}_seconds": seconds for phase, seconds in loop.phase_seconds.items()},
            **{f"train_{key}": value for key, value in self.train_split.data_metrics.items()},
            **{f"dev_{key}": value for key, value in self.dev_split.data_metrics.items()},
            **task_measurements,
        }
        return TrialResult(
            state,
            metrics,
            "",
            curve,
            reports,
            predictions,
            str(self.out_dir / "adapter"),
            final_plan if final_plan != self.plan else None,
        )

    def _prepare(self, services: PhaseServices) -> Preparation:
        """The first method that prepares decides the model; otherwise the plan's adapter on the base."""
        preparations = [
            p for c in self.controllers.values() if (p := c.prepare(self.plan, services)) is not None
        ]
        if len(preparations) > 1:
            raise PlanError(
                f"methods {sorted(self.plan.methods)}: only one method may run a preparation phase"
            )
        if preparations:
            return preparations[0]
        model, layout = apply_plan(
            self.load_base(),
            self.plan,
            self.budget.total_steps(),
            self.spec.model,
            self.methods,
            self.task.peft_task_type,
        )
        return Preparation(model, layout, self.plan)

    def _main_phase(
        self, prepared: Preparation, services: PhaseServices, memory: PeakMemoryMeter
    ) -> tuple[TrainingLoop, TrialState, list[dict[str, float]], list[int]]:
        total = max(1, self.budget.total_steps() - prepared.steps_used)
        model = prepared.model
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=self.budget.learning_rate,
            weight_decay=self.budget.weight_decay,
        )
        scheduler = get_linear_schedule_with_warmup(optimizer, round(self.budget.warmup_ratio * total), total)
        context = TrainingContext(model, optimizer, total, services.batches, self.device, self.spec.seed)
        for controller in self.controllers.values():
            controller.setup(context)
        loop = TrainingLoop(
            model,
            optimizer,
            scheduler,
            list(self.controllers.values()),
            self.device,
            self.budget.max_grad_norm,
        )
        counted = ResolvedPlan.resolve(prepared.plan, prepared.layout, self.methods).cost
        points = EvaluationPoints(self, loop, total, counted, memory, services)
        loop.run(services.batches(self.budget.batch_size, self.spec.seed), total, points.after_step)
        return loop, points.state, points.curve, points.predictions

    def _final_adapter(self, prepared: Preparation) -> tuple[PeftModel, PeftPlan]:
        model, plan = prepared.model, prepared.plan
        for controller in self.controllers.values():
            model, plan = controller.final_adapter(model, plan, prepared.layout) or (model, plan)
        return model, plan

    def _save(self, model: PeftModel) -> None:
        """Write the adapter (and method artifacts) under a temporary name, then swap it in."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        final, staging = self.out_dir / "adapter", self.out_dir / ".adapter.partial"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(str(staging))
        for controller in self.controllers.values():
            for name, content in controller.artifacts().items():
                write_json_atomic(staging / name, content)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)


def _base_parameters(model: PeftModel) -> int:
    """Parameters of the (possibly pruned) base model, adapters and trained head copies excluded."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if "lora_" not in name and "modules_to_save" not in name
    )
