"""Method signals: what a trial's method controllers learned about where adaptation matters, in one shape.

Each method's controller says where its report shows adaptation to matter (`MethodController.signals`: IST
block importances, Light-PEFT module importances, AdaLoRA final ranks, DiffoRA gates); they are turned into
percentile ranks in [0, 1] keyed by block (`L3`) or by block and module (`L3.query`), so signals from
different methods and scales average fairly. A search stores them with each trial (`SIGNALS_KEY`) and the
default sampler warm-starts from them (`autopeft/search/budgeted_sampler.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial

from autopeft.methods import signals_of

SIGNALS_KEY = "method_signals"  # the trial user attribute holding `method_signals(...)` of its reports


def method_signals(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Per-module and per-block importance in [0, 1] from a trial's method reports (percentile ranks within
    each signal, so methods with different scales average fairly). Keys: `L3` (IST blocks), `L3.query`
    (modules). Each method says what its report means (`MethodController.signals`)."""
    merged: dict[str, list[float]] = {}
    for signal in signals_of(reports):
        for key, rank in _percentiles(signal).items():
            merged.setdefault(key, []).append(rank)
    return {key: sum(v) / len(v) for key, v in merged.items()}


def average_signals(trials: Sequence[FrozenTrial]) -> dict[str, float]:
    """The mean of each key over the trials that stored signals (`SIGNALS_KEY`)."""
    merged: dict[str, list[float]] = {}
    for trial in trials:
        for key, value in (trial.user_attrs.get(SIGNALS_KEY) or {}).items():
            merged.setdefault(key, []).append(float(value))
    return {key: sum(v) / len(v) for key, v in merged.items()}


def _percentiles(values: Mapping[str, float]) -> dict[str, float]:
    """Rank of each value in [0, 1] (ties share their mean rank); one value ranks 1."""
    if len(values) == 1:
        return {key: 1.0 for key in values}
    ordered = sorted(values.values())
    last = len(ordered) - 1
    return {
        key: (ordered.index(v) + (len(ordered) - 1 - ordered[::-1].index(v))) / (2 * last)
        for key, v in values.items()
    }
