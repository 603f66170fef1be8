"""The objectives a search can optimise: what each measures and its natural direction.

`task_metric` has no fixed direction: it follows the task's metric (a loss or perplexity is minimised, an
accuracy maximised), which `SearchSpace.directions` reads from the task when the YAML gives none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, field_validator

if TYPE_CHECKING:
    from autopeft.tasks.task_config import TaskConfig

Direction = Literal["maximize", "minimize"]

OBJECTIVES: dict[str, tuple[Direction, str]] = {
    "task_metric": (
        "maximize",
        (
            "the task's dev metric after training (accuracy, Matthews correlation or F1; for instruction "
            "tasks reply loss or perplexity, minimised, exact match or multiple-choice accuracy)"
        ),
    ),
    "trainable_parameters": ("minimize", "parameters the adapter trains, counted exactly from the plan"),
    "peak_memory_mb": ("minimize", "peak training memory: process RSS on CPU, CUDA peak allocation on GPU"),
    "train_tokens_per_second": ("maximize", "non-padding training tokens per second of training"),
    "wall_seconds": ("minimize", "wall time of the whole trial"),
    "inference_tokens_per_second": (
        "maximize",
        "dev-set tokens per second of the final (possibly pruned) model",
    ),
    "model_parameters": ("minimize", "parameters of the final base model, after any pruning"),
    "forgetting": (
        "minimize",
        (
            "instruction tasks: LM loss on a fixed general-text sample after fine-tuning minus before "
            "(nats per token)"
        ),
    ),
}


class ObjectiveConfig(BaseModel):
    """One objective of a search space and its direction (defaults to its natural one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    direction: Direction | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in OBJECTIVES:
            raise ValueError(f"expected one of {sorted(OBJECTIVES)}, got {name!r}")
        return name

    def resolved_direction(self, task: TaskConfig) -> Direction:
        """The direction given, else the natural one; `task_metric`'s natural direction is its metric's."""
        if self.direction is not None:
            return self.direction
        return task.metric_direction if self.name == "task_metric" else OBJECTIVES[self.name][0]


def check_objectives(objectives: Sequence[ObjectiveConfig], task: TaskConfig) -> None:
    """`task_metric` goes the way its metric does; `forgetting` needs a causal LM (an instruction task).
    Raises `ValueError` naming the objective's key."""
    for index, objective in enumerate(objectives):
        natural = task.metric_direction
        if objective.name == "task_metric" and objective.direction not in (None, natural):
            metric = f" '{task.resolved_metric}'" if task.resolved_metric else ""
            raise ValueError(
                f"objectives[{index}].direction: the task metric{metric} is {natural[:-1]}ed; got "
                f"{objective.direction} (leave direction out to follow the metric)"
            )
        if objective.name == "forgetting" and not task.is_instruction:
            raise ValueError(
                f"objectives[{index}].name: 'forgetting' is measured on instruction tasks (sft, demo_sft); "
                f"task '{task.name}' trains a classifier"
            )
