"""Task metrics: accuracy, Matthews correlation and F1, computed from label and prediction lists."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

MetricFunction = Callable[[Sequence[int], Sequence[int]], float]


def accuracy(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """Share of predictions equal to their label."""
    return sum(int(y == p) for y, p in zip(labels, predictions, strict=True)) / max(len(labels), 1)


def _confusion(labels: Sequence[int], predictions: Sequence[int]) -> tuple[int, int, int, int]:
    pairs = list(zip(labels, predictions, strict=True))
    tp = sum(1 for y, p in pairs if y == 1 and p == 1)
    tn = sum(1 for y, p in pairs if y == 0 and p == 0)
    fp = sum(1 for y, p in pairs if y == 0 and p == 1)
    fn = sum(1 for y, p in pairs if y == 1 and p == 0)
    return tp, tn, fp, fn


def matthews_correlation(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """Matthews correlation of a binary task (CoLA's metric); 0 when a class is never predicted."""
    tp, tn, fp, fn = _confusion(labels, predictions)
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def f1(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """F1 of the positive class 1 (MRPC's metric)."""
    tp, _, fp, fn = _confusion(labels, predictions)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


METRICS: dict[str, MetricFunction] = {"accuracy": accuracy, "matthews": matthews_correlation, "f1": f1}
