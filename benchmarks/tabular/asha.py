"""AshaRung: what Ray Tune users get for early stopping, ASHA at the table's one intermediate evaluation.

Ray Tune's `ASHAScheduler` (`AsyncHyperBandScheduler`, `ray/tune/schedulers/async_hyperband.py`, `_Bracket`)
with one bracket puts rungs at `grace_period x reduction_factor^k` below `max_t`. With the grace period at the
table's first checkpoint (step 16 of 32), the only rung a trial can be stopped at is that checkpoint, for
reduction factors 2 and 3 alike (the rung at step 32 is the end of training). At the rung a trial stops when its
metric is below the `1 - 1/reduction_factor` percentile of the metrics recorded there before it, the first
trial never stops, and every trial's metric is recorded whatever the decision. The decision reads the task
metric alone: ASHA is single-objective, so the trainable parameters never enter it.
"""

from __future__ import annotations

import numpy as np


class AshaRung:
    """One ASHA rung: records each trial's metric there and stops the ones below the top 1/`reduction_factor`
    of those recorded before them (the cutoff is Ray's `np.nanpercentile`, linear interpolation)."""

    def __init__(self, reduction_factor: float) -> None:
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor: expected a number > 1, got {reduction_factor!r}")
        self.reduction_factor = reduction_factor
        self.recorded: list[float] = []

    def stops(self, metric: float) -> bool:
        """Whether a trial that reached the rung with `metric` (larger is better) stops there; records it."""
        stop = bool(self.recorded) and metric < self.cutoff()
        self.recorded.append(metric)
        return stop

    def cutoff(self) -> float:
        """The metric a trial must reach to continue: the (1 - 1/reduction_factor) percentile of the recorded."""
        return float(np.nanpercentile(self.recorded, (1 - 1 / self.reduction_factor) * 100))
