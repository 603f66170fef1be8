"""EarlyStopping: how the drivers stop a multi-objective trial at a checkpoint.

Optuna's pruners need one objective, so in multi-objective studies the sampler decides: the drivers ask a
sampler that implements this protocol (the default `BudgetedParetoSampler` does) and record a stopped trial as
PRUNED. The default sampler applies `pareto_stopping.ParetoStoppingRule`; outside autopeft's drivers, the same
rule is `ParetoStopping`, called from an Optuna objective.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import optuna
from optuna.trial import FrozenTrial


@runtime_checkable
class EarlyStopping(Protocol):
    """A sampler that can stop multi-objective trials at a checkpoint (Optuna's pruners need one
    objective)."""

    def should_stop_trial(
        self, study: optuna.Study, trial: FrozenTrial | optuna.Trial, checkpoint: int, task_metric: float
    ) -> bool:
        """True when the trial, at its `checkpoint`-th evaluation (0-based), cannot reach the front."""
