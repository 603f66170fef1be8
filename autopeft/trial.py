"""run_trial: the one trial function. It builds the model, applies the plan, trains on the low-cost budget,
evaluates, measures and saves the adapter. It knows nothing of Optuna or Ray: drivers pass a `Reporter`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from peft import PeftModel
from transformers import get_linear_schedule_with_warmup

from autopeft.adapter_builder import apply_plan
from autopeft.errors import AutopeftError
from autopeft.methods import MethodController, TrainingContext, budget_plan, configured_controllers
from autopeft.model_layout import ModelLayout
from autopeft.models import load_classifier, load_tokenizer, resolve_model_path
from autopeft.peak_memory import PeakMemoryMeter
from autopeft.plan import PeftPlan
from autopeft.reporting import Reporter
from autopeft.search_space import BudgetConfig
from autopeft.task import Task, TaskConfig, load_task
from autopeft.tokenized_split import TokenizedSplit

logger = logging.getLogger(__name__)

TrialState = Literal["complete", "failed", "pruned"]
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trial needs besides the plan: model, task, budget, seed and device."""

    model: str
    task: TaskConfig
    budget: BudgetConfig
    task_base_dir: str = "."
    seed: int = 0
    device: str = "auto"


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


class TrialFailure(AutopeftError):
    """Training went wrong in a way that fails the trial but not the search (a NaN loss, say)."""


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
        result = _train(plan, spec, reporter, Path(out_dir), on_progress)
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


def build_peft_model(plan: PeftPlan, spec: TrialSpec, task: Task) -> tuple[PeftModel, ModelLayout, Any]:
    """Load the base classifier and apply the plan to it; returns the model, its layout and the tokenizer."""
    folder = resolve_model_path(spec.model)
    tokenizer = load_tokenizer(folder)
    model = load_classifier(folder, len(task.labels), tokenizer.pad_token_id)
    peft_model, layout = apply_plan(model, plan, spec.budget.total_steps(), spec.model)
    return peft_model, layout, tokenizer


def _train(
    plan: PeftPlan, spec: TrialSpec, reporter: Reporter, out_dir: Path, on_progress: ProgressCallback | None
) -> TrialResult:
    seed_everything(spec.seed)
    device = pick_device(spec.device)
    task = load_task(spec.task, Path(spec.task_base_dir), spec.seed)
    model, layout, tokenizer = build_peft_model(plan, spec, task)
    model.to(device)
    budget = spec.budget
    train, dev = _splits(task, tokenizer, budget, spec.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    counted = budget_plan(plan).trainable_parameters(layout)
    optimizer = torch.optim.AdamW(trainable, lr=budget.learning_rate, weight_decay=budget.weight_decay)
    total = budget.total_steps()
    scheduler = get_linear_schedule_with_warmup(optimizer, round(budget.warmup_ratio * total), total)
    batches = train.shuffled_forever(budget.batch_size, device, spec.seed)
    context = TrainingContext(model, optimizer, total, lambda size, seed: train.shuffled_forever(size, device, seed),
                              device, spec.seed)
    controllers = _controllers(plan, context)
    loop = _TrainingLoop(model, optimizer, scheduler, controllers, budget, device)
    with PeakMemoryMeter(device) as memory:
        def measured_so_far() -> dict[str, float]:
            return {"trainable_parameters": float(counted), "peak_memory_mb": memory.current_peak_mb(),
                    "train_tokens_per_second": loop.tokens / max(loop.train_seconds, 1e-9)}

        state, curve, predictions = loop.run(batches, dev, task, reporter, on_progress, measured_so_far)
    method_reports = {key: dict(c.finish()) for key, c in controllers.items()}
    final_model, final_plan = model, plan
    for controller in controllers.values():
        final_model, final_plan = controller.final_adapter(final_model, final_plan, layout) or (final_model, final_plan)
    adapter_dir = _save_adapter(final_model, out_dir)
    metrics = {
        "task_metric": curve[-1]["task_metric"],
        "trainable_parameters": float(final_plan.trainable_parameters(layout)),
        "peak_memory_mb": memory.peak_mb,
        "train_tokens_per_second": loop.tokens / max(loop.train_seconds, 1e-9),
        "steps": float(loop.steps_done),
    }
    return TrialResult(state, metrics, "", curve, method_reports, predictions, str(adapter_dir),
                       final_plan if final_plan is not plan else None)


def _splits(task: Task, tokenizer: Any, budget: BudgetConfig, seed: int) -> tuple[TokenizedSplit, TokenizedSplit]:
    """A seeded training subset and the first `dev_examples` dev examples, both tokenised."""
    order = list(range(len(task.train)))
    random.Random(seed).shuffle(order)
    train_examples = [task.train[i] for i in order[: budget.train_examples]]
    dev_examples = list(task.dev[: budget.dev_examples])
    return (
        TokenizedSplit.build(train_examples, tokenizer, budget.max_length),
        TokenizedSplit.build(dev_examples, tokenizer, budget.max_length),
    )


def _controllers(plan: PeftPlan, context: TrainingContext) -> dict[str, MethodController]:
    """One set-up controller per method of the plan (the optimizer already exists, METHODS.md §1.3)."""
    controllers = {}
    for key, (cls, config) in zip(plan.methods, configured_controllers(plan), strict=True):
        controllers[key] = cls(config)
        controllers[key].setup(context)
    return controllers


def evaluate(model: torch.nn.Module, split: TokenizedSplit, batch_size: int, device: torch.device) -> list[int]:
    """Argmax predictions for every example of `split`, in order."""
    was_training = model.training
    model.eval()
    predictions: list[int] = []
    with torch.no_grad(), _autocast(device):
        for batch in split.in_order(batch_size, device):
            batch.pop("labels")
            predictions.extend(model(**batch).logits.argmax(dim=-1).tolist())
    model.train(was_training)
    return predictions


def _autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA; a no-op context on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


class _TrainingLoop:
    """AdamW with warmup and linear decay; calls the controller hooks in METHODS.md's order."""

    def __init__(self, model: Any, optimizer: Any, scheduler: Any, controllers: Mapping[str, MethodController],
                 budget: BudgetConfig, device: torch.device) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.controllers = list(controllers.values())
        self.budget, self.device = budget, device
        self.tokens, self.train_seconds, self.steps_done = 0, 0.0, 0

    def evaluation_steps(self) -> set[int]:
        total, count = self.budget.total_steps(), self.budget.evaluations
        return {max(1, round(total * (i + 1) / count)) for i in range(count)}

    def run(self, batches: Any, dev: TokenizedSplit, task: Task, reporter: Reporter,
            on_progress: ProgressCallback | None, measured_so_far: Callable[[], dict[str, float]],
            ) -> tuple[TrialState, list[dict[str, float]], list[int]]:
        """Train for the budget, evaluating at the checkpoints; every report carries every measurement so far
        (drivers such as Ray need each objective in each report)."""
        total, checkpoints = self.budget.total_steps(), self.evaluation_steps()
        curve: list[dict[str, float]] = []
        losses: list[float] = []
        predictions: list[int] = []
        self.model.train()
        for step in range(total):
            losses.append(self._step(step, next(batches)))
            self.steps_done = step + 1
            if on_progress is not None:
                on_progress(step + 1, total)
            if step + 1 not in checkpoints:
                continue
            predictions = evaluate(self.model, dev, self.budget.eval_batch_size, self.device)
            point = {"step": float(step + 1), "task_metric": task.score(dev.labels, predictions),
                     "train_loss": sum(losses) / len(losses), **measured_so_far()}
            losses.clear()
            curve.append(point)
            reporter.report(step + 1, {k: v for k, v in point.items() if k != "step"})
            if step + 1 < total and reporter.should_stop():
                return "pruned", curve, predictions
        return "complete", curve, predictions

    def _step(self, step: int, batch: dict[str, torch.Tensor]) -> float:
        started = time.perf_counter()
        for controller in self.controllers:
            controller.before_step(step)
        with _autocast(self.device):
            loss = self.model(**batch).loss
        if not math.isfinite(loss.item()):
            raise TrialFailure(f"loss became {loss.item()} at step {step}; lower the learning rate")
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                       self.budget.max_grad_norm)
        for controller in self.controllers:
            controller.after_backward(step)
        self.optimizer.step()
        for controller in self.controllers:
            controller.after_step(step)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.tokens += int(batch["attention_mask"].sum())
        self.train_seconds += time.perf_counter() - started
        return float(loss.item())


def _save_adapter(model: PeftModel, out_dir: Path) -> Path:
    """Write the adapter next to a temporary name, then swap it in, so a crash never leaves half an adapter."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "adapter"
    staging = out_dir / ".adapter.partial"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final
