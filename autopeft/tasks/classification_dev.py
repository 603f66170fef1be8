"""ClassificationDev: a classification task's dev split with its metric (argmax predictions, then accuracy,
Matthews correlation or F1)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from autopeft.tasks.metrics import METRICS
from autopeft.tasks.task_kind import DevEvaluation, autocast
from autopeft.tasks.tokenized_split import TokenizedSplit


def predict_timed(
    model: nn.Module, split: TokenizedSplit, batch_size: int, device: torch.device
) -> tuple[list[int], float]:
    """Argmax predictions for every example of `split`, in order, and the inference throughput (non-padding
    tokens per second of forward passes)."""
    was_training = model.training
    model.eval()
    predictions: list[int] = []
    tokens, seconds = 0, 0.0
    with torch.no_grad(), autocast(device):
        for batch in split.in_order(batch_size, device):
            batch.pop("labels")
            started = time.perf_counter()
            logits = model(**batch).logits
            predictions.extend(logits.argmax(dim=-1).tolist())
            seconds += time.perf_counter() - started
            tokens += int(batch["attention_mask"].sum())
    model.train(was_training)
    return predictions, tokens / max(seconds, 1e-9)


@dataclass(frozen=True)
class ClassificationDev:
    """The tokenised dev examples and the name of the metric that scores their predictions."""

    split: TokenizedSplit
    metric: str

    def __len__(self) -> int:
        return len(self.split)

    def evaluate(self, model: nn.Module, batch_size: int, device: torch.device) -> DevEvaluation:
        predictions, _ = predict_timed(model, self.split, batch_size, device)
        return DevEvaluation(METRICS[self.metric](self.split.labels, predictions), predictions)

    def inference_speed(self, model: nn.Module, batch_size: int, device: torch.device) -> float:
        return predict_timed(model, self.split, batch_size, device)[1]

    def final_metrics(self, model: nn.Module, batch_size: int, device: torch.device) -> dict[str, float]:
        return {}

    @property
    def data_metrics(self) -> Mapping[str, float]:
        return self.split.data_metrics
