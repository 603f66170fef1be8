"""The objectives a search can optimise: what each measures and its natural direction."""

from __future__ import annotations

from typing import Literal

Direction = Literal["maximize", "minimize"]

OBJECTIVES: dict[str, tuple[Direction, str]] = {
    "task_metric": (
        "maximize",
        "the task's dev metric (accuracy, Matthews correlation or F1) after training",
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
}
