"""TaskKind: what a trial asks of its task, whatever the task trains the model to do.

A task kind supplies the model head (a sequence classifier, or a causal LM with its own LM head), the peft
task type, the training batches and the dev scorer with its metric. The trial holds one `TaskKind` and never
branches on which one it is: classification (`tasks.task.Task`) and instruction tuning
(`tasks.instruction_task.InstructionTask`) are the two kinds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from autopeft.budget import BudgetConfig

Batch = dict[str, torch.Tensor]


def autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA; a no-op context on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


@dataclass(frozen=True)
class DevEvaluation:
    """One scoring of the dev split: the task metric and the per-example predictions behind it (class indices,
    chosen options, or 1/0 for a matched answer; empty for a loss)."""

    metric: float
    predictions: list[int] = field(default_factory=list)


class TrainingSplit(Protocol):
    """The training examples as the trial and the methods' preparation phases use them."""

    def __len__(self) -> int: ...

    def shuffled_forever(self, batch_size: int, device: torch.device, seed: int) -> Iterator[Batch]:
        """Endless batches with labels, reshuffled each epoch by a seeded generator."""
        ...

    def split(self, fraction: float, seed: int) -> tuple[TrainingSplit, TrainingSplit]:
        """A seeded random `fraction` of the examples, and the rest (disjoint)."""
        ...

    def fingerprint(self) -> str:
        """A short hash of the data (keys of results cached across trials)."""
        ...

    @property
    def data_metrics(self) -> Mapping[str, float]:
        """What building the split measured (truncated examples, ...), reported with the trial's metrics."""
        ...


class DevSplit(Protocol):
    """The dev examples with the metric that scores a model on them."""

    def __len__(self) -> int: ...

    def evaluate(self, model: nn.Module, batch_size: int, device: torch.device) -> DevEvaluation:
        """The task metric of `model` on these examples (the model is left in the mode it was in)."""
        ...

    def inference_speed(self, model: nn.Module, batch_size: int, device: torch.device) -> float:
        """Non-padding tokens per second of forward passes over these examples."""
        ...

    def final_metrics(self, model: nn.Module, batch_size: int, device: torch.device) -> dict[str, float]:
        """Measurements this kind adds once training is over (forgetting, for a causal LM); may be empty."""
        ...

    @property
    def data_metrics(self) -> Mapping[str, float]:
        """What building the split measured (truncated examples, ...)."""
        ...


class TaskKind(Protocol):
    """A task as the trial sees it: name, metric, model head, peft task type and splits."""

    @property
    def name(self) -> str: ...

    @property
    def metric(self) -> str: ...

    @property
    def peft_task_type(self) -> str:
        """peft's `task_type` for adapters of this kind (`SEQ_CLS`, `CAUSAL_LM`)."""
        ...

    def load_model(self, folder: Path, tokenizer: PreTrainedTokenizerBase) -> nn.Module:
        """A fresh pretrained model from `folder` with this kind's head, on the CPU."""
        ...

    def splits(
        self, tokenizer: PreTrainedTokenizerBase, budget: BudgetConfig, seed: int
    ) -> tuple[TrainingSplit, DevSplit]:
        """The budget's seeded training subset and its first dev examples, tokenised."""
        ...
