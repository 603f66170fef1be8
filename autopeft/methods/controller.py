"""MethodController: the hooks a PEFT method uses to steer the training loop (METHODS.md, hooks table).

`run_trial`'s loop and the Trainer callback adapter call the hooks in the same order:
`setup` once (optimizer already created), then per optimizer step `before_step` (no grads yet),
`after_backward` (clipped grads present), `after_step` (weights updated, grads still present),
and `finish` once, which returns what the method learned for the trial's metrics.

Besides the step hooks, a controller may run a phase before the main training (`prepare`: DiffoRA, Light-PEFT),
replace the peft config the plan builds (`peft_config`: AdaLoRA), state the plan whose parameters count against
the budget (`budget_plan`) and the share of it expected to remain (`expected_share`), hand back a plain LoRA
model to save at the end (`final_adapter`), add files next to the adapter (`artifacts`) and say where its report
shows adaptation to matter (`signals`). Generic code asks these hooks and never branches on a method's name.

A controller never imports the trial that calls it: what a preparation phase needs from the trial (fresh base
models, adapters built from a plan, batches, short training runs) arrives as a `TrialServices` argument.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from autopeft.model_layout import module_key_of

if TYPE_CHECKING:
    from peft import PeftConfig, PeftModel

    from autopeft.budget import BudgetConfig
    from autopeft.model_layout import ModelLayout
    from autopeft.plan import PeftPlan

Batch = dict[str, torch.Tensor]
BatchSource = Callable[[int, int], Iterator[Batch]]


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


@dataclass
class Preparation:
    """What a preparation phase hands the trial: the model to train from then on (already wrapped by peft,
    possibly on a pruned base), its layout and plan, and how many of the trial's optimizer steps it used."""

    model: PeftModel
    layout: ModelLayout
    plan: PeftPlan
    steps_used: int = 0
    report: dict[str, Any] = field(default_factory=dict)


class TrialServices(Protocol):
    """What the trial offers a method's preparation phase (`MethodController.prepare`), so that a controller
    never imports the code that calls it. Tokens and time spent in `train` count for the trial."""

    budget: BudgetConfig
    device: torch.device
    seed: int
    model_name: str
    cache_dir: Path | None

    def load_base(self) -> nn.Module:
        """A fresh copy of the trial's base model (with its task head), on the CPU."""

    def build_adapters(
        self, base: nn.Module, plan: PeftPlan, total_steps: int
    ) -> tuple[PeftModel, ModelLayout]:
        """`base` wrapped by peft exactly as `plan` says (or as one of its methods asks), with its layout."""

    def batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
        """Endless shuffled training batches with labels, on the trial's device."""

    def disjoint_batches(
        self, held_out_fraction: float, seed: int
    ) -> tuple[Iterator[Batch], Iterator[Batch]]:
        """Training batches and held-out batches from two disjoint slices of the training subset."""

    def train(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        steps: int,
        batches: Iterator[Batch],
        controllers: Sequence[MethodController] = (),
        extra_loss: Callable[[], torch.Tensor] | None = None,
        after_each: Callable[[int, float], bool] | None = None,
    ) -> None:
        """`steps` optimizer steps with the controllers' hooks (no schedule, no evaluation)."""

    def data_fingerprint(self) -> str:
        """A short hash of the training data a phase sees, for keys of results cached across trials."""


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

    def prepare(self, plan: PeftPlan, services: TrialServices) -> Preparation | None:
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

    @classmethod
    def signals(cls, report: Mapping[str, Any]) -> dict[str, float]:
        """Where this method's `finish()` report says adaptation matters, in the method's own scale, keyed by
        block (`L3`) or block and module (`L3.query`, see `model_layout.module_key`); the default sampler
        warm-starts from them. Empty when the method learns nothing of the kind."""
        return {}


def signals_by_module(values: Mapping[str, float]) -> dict[str, float]:
    """Values keyed by full module name re-keyed as `L3.query` (`model_layout.module_key_of`); modules outside
    the blocks (the head) carry no signal."""
    keys = {name: module_key_of(name) for name in values}
    return {key: float(values[name]) for name, key in keys.items() if key is not None}
