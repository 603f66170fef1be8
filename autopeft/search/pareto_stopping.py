"""ParetoStopping: multi-objective early stopping for any Optuna study, and the rule it shares with
`BudgetedParetoSampler`.

Optuna cannot prune multi-objective trials: `Trial.report` raises `NotImplementedError` when a study has more
than one direction (optuna/optuna#3450), so no pruner ever sees a multi-objective learning curve. The rule
here needs no pruner: a trial stops at a checkpoint when, even granted the largest improvement from that
checkpoint to the end seen among complete trials, it would be weakly dominated by a complete trial (one that
is at least as good in every objective). Only the objectives that improve with training (the task metric:
"quality") are granted a gain; the others (trainable parameters, memory: "cost") are taken as they are at the
checkpoint, because they are known before training or measured by then.

`ParetoStoppingRule` is the rule on plain numbers, so that the sampler (in its own plane of exact cost and
task metric, with autopeft's curves) and `ParetoStopping` (on a study's own objectives and trials) apply the
same arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

MIN_COMPLETE_TRIALS = 3
"""Complete trials that must have reached a checkpoint before anything is stopped there: with fewer, the
largest gain seen is mostly luck."""

Progress = tuple[Sequence[float], Sequence[float]]
"""A complete trial's quality objectives at the checkpoint and at its end, in the order of `quality`."""


@dataclass(frozen=True)
class ParetoStoppingRule:
    """Stops a trial whose optimistic final vector is weakly dominated by a complete trial.

    The optimistic final vector is the intermediate vector with each quality objective (indices in `quality`)
    moved, in its direction, by the gain it is granted: the `gain_quantile` of the improvements from the same
    checkpoint to the end among complete trials (1 = the largest: only trials that cannot reach the front even
    with the best gain seen are stopped; lower values stop more, and may stop a trial that would have reached
    it). Nothing is stopped until `min_complete_trials` complete trials have reached the checkpoint.
    """

    directions: tuple[StudyDirection, ...]
    quality: tuple[int, ...]
    min_complete_trials: int = MIN_COMPLETE_TRIALS
    gain_quantile: float = 1.0

    def stops(
        self, intermediate: Sequence[float], progress: Sequence[Progress], finals: Iterable[Sequence[float]]
    ) -> bool:
        """True when some vector of `finals` (the final values of the feasible complete trials) is at least as
        good in every objective as `intermediate` granted the gains that `progress` (one entry per complete
        trial that reached this checkpoint) allows."""
        if len(progress) < self.min_complete_trials:
            return False
        reachable = list(intermediate)
        for position, index in enumerate(self.quality):
            gain = self._granted_gain(position, progress)
            reachable[index] += gain if self._maximized(index) else -gain
        return any(self._weakly_dominates(final, reachable) for final in finals)

    def _granted_gain(self, position: int, progress: Sequence[Progress]) -> float:
        """The `gain_quantile` of the improvements of the `position`-th quality objective (positive = better,
        whatever its direction)."""
        if self._maximized(self.quality[position]):
            improvements = [final[position] - reached[position] for reached, final in progress]
        else:
            improvements = [reached[position] - final[position] for reached, final in progress]
        return float(np.quantile(improvements, self.gain_quantile))

    def _maximized(self, index: int) -> bool:
        return self.directions[index] == StudyDirection.MAXIMIZE

    def _weakly_dominates(self, final: Sequence[float], reachable: Sequence[float]) -> bool:
        return all(
            f >= r if self._maximized(index) else f <= r
            for index, (f, r) in enumerate(zip(final, reachable, strict=True))
        )


class ParetoStopping:
    """Early stopping for multi-objective Optuna studies: call `should_stop` from the objective at each
    checkpoint with the intermediate vector of values, and raise `optuna.TrialPruned` when it says so.

    `quality` names the objective(s) that improve with training (metric names from `study.set_metric_names`,
    or indices into `study.directions`); the other objectives are read from the intermediate vector as they
    stand. A trial stops when its intermediate vector, with each quality objective granted the `gain_quantile`
    (1 = the largest) of the improvements from that step to the end seen among complete trials, would be
    weakly dominated by a feasible complete trial; so with the default a trial stops only if it could not move
    the front unless it improved more than any complete trial did. Nothing stops at a step until
    `min_complete_trials` complete trials have reported it. Checkpoints are matched by `step`, so report at
    the same steps in every trial. A stopped trial, told PRUNED, has no values and never enters
    `study.best_trials`.

    Everything is read from and written to the study's storage: each call stores the trial's intermediate
    curve in its user attribute `pareto_stopping_curve` (a list of `{"step": ..., "values": [...]}`), so
    processes sharing a storage (journal file, RDB) stop each other's hopeless trials.

    A toy problem: cost is a known width, accuracy climbs linearly to its final value by step 4, and the
    learning rate 0.01 is best at every width, so the true front is that rate at the five widths. Six of the
    fifteen trials stop, after the number of checkpoints shown (width, rate, checkpoints), none of the front.

    >>> import math
    >>> import optuna
    >>> from autopeft.search import ParetoStopping
    >>> grid = {"width": [1, 2, 4, 8, 16], "rate": [0.001, 0.01, 0.1]}
    >>> study = optuna.create_study(
    ...     directions=["maximize", "minimize"], sampler=optuna.samplers.GridSampler(grid, seed=0)
    ... )
    >>> study.set_metric_names(["accuracy", "cost"])
    >>> stopping = ParetoStopping(study, quality="accuracy")
    >>> def objective(trial: optuna.Trial) -> tuple[float, float]:
    ...     width = trial.suggest_categorical("width", grid["width"])
    ...     rate = trial.suggest_categorical("rate", grid["rate"])
    ...     final = 0.5 + {0.001: 0.055, 0.01: 0.1, 0.1: 0.025}[rate] * math.log2(2 * width)
    ...     for step in range(4):
    ...         if stopping.should_stop(trial, step, [final * (step + 1) / 5, width]):
    ...             raise optuna.TrialPruned()
    ...     return final, width
    >>> study.optimize(objective)
    >>> sorted((t.params["width"], t.params["rate"]) for t in study.best_trials)
    [(1, 0.01), (2, 0.01), (4, 0.01), (8, 0.01), (16, 0.01)]
    >>> pruned = study.get_trials(states=[optuna.trial.TrialState.PRUNED])
    >>> [(t.params["width"], t.params["rate"], len(t.user_attrs[stopping.CURVE_ATTR])) for t in pruned]
    [(16, 0.1, 1), (16, 0.001, 1), (8, 0.1, 2), (2, 0.1, 4), (8, 0.001, 2), (4, 0.1, 3)]
    """

    CURVE_ATTR = "pareto_stopping_curve"

    def __init__(
        self,
        study: optuna.Study,
        quality: str | int | Sequence[str | int],
        min_complete_trials: int = MIN_COMPLETE_TRIALS,
        gain_quantile: float = 1.0,
    ) -> None:
        if min_complete_trials < 1:
            raise ValueError(f"min_complete_trials: expected an integer >= 1, got {min_complete_trials!r}")
        if not 0.0 <= gain_quantile <= 1.0:
            raise ValueError(f"gain_quantile: expected a number in [0, 1], got {gain_quantile!r}")
        self.study = study
        self.objectives = _objective_labels(study)
        self.rule = ParetoStoppingRule(
            tuple(study.directions), _quality_indices(quality, study), min_complete_trials, gain_quantile
        )

    def should_stop(self, trial: optuna.Trial, step: int, values: Sequence[float]) -> bool:
        """Store `values` (one per objective, in the study's order) as the trial's intermediate vector at
        `step`, then say whether the trial can no longer reach the front (see the class)."""
        intermediate = self._intermediate(values)
        curve = [point for point in trial.user_attrs.get(self.CURVE_ATTR, []) if point["step"] != step]
        trial.set_user_attr(self.CURVE_ATTR, [*curve, {"step": int(step), "values": intermediate}])
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        progress = [found for t in complete if (found := self._progress(t, step)) is not None]
        finals = [t.values for t in complete if all(v <= 0 for v in t.constraints.values())]
        return self.rule.stops(intermediate, progress, finals)

    def _intermediate(self, values: Sequence[float]) -> list[float]:
        """`values` as plain floats (JSON for any storage), once its length is checked against the study's."""
        if len(values) != len(self.objectives):
            raise ValueError(
                f"values: expected {len(self.objectives)} values, one per objective "
                f"({', '.join(self.objectives)}), got {len(values)}"
            )
        return [float(v) for v in values]

    def _progress(self, trial: FrozenTrial, step: int) -> Progress | None:
        """The trial's quality objectives at `step` and at its end, or None when it did not report `step`."""
        points: list[dict[str, Any]] = trial.user_attrs.get(self.CURVE_ATTR, [])
        reached = next((point["values"] for point in points if point["step"] == step), None)
        if reached is None:
            return None
        quality = self.rule.quality
        return [reached[i] for i in quality], [trial.values[i] for i in quality]


def _objective_labels(study: optuna.Study) -> list[str]:
    """The metric names, or `objective 0`, `objective 1`, ... when the study has none."""
    return list(study.metric_names or [f"objective {i}" for i in range(len(study.directions))])


def _quality_indices(quality: str | int | Sequence[str | int], study: optuna.Study) -> tuple[int, ...]:
    """The indices of the quality objectives, each named once and known to the study."""
    chosen = [quality] if isinstance(quality, str | int) else list(quality)
    if not chosen:
        raise ValueError(f"quality: expected at least one objective ({_known_objectives(study)}), got none")
    indices = tuple(_objective_index(objective, study) for objective in chosen)
    if len(set(indices)) != len(indices):
        raise ValueError(f"quality: expected each objective at most once, got {chosen!r}")
    return indices


def _objective_index(objective: str | int, study: optuna.Study) -> int:
    names = study.metric_names or []
    if isinstance(objective, str) and objective in names:
        return names.index(objective)
    if not isinstance(objective, str | bool) and 0 <= objective < len(study.directions):
        return objective
    raise ValueError(f"quality: expected {_known_objectives(study)}, got {objective!r}")


def _known_objectives(study: optuna.Study) -> str:
    """What `quality` may name in this study, for the error messages."""
    last = len(study.directions) - 1
    if study.metric_names:
        names = ", ".join(repr(name) for name in study.metric_names)
        return f"one of the study's objectives {names} (or an index 0-{last})"
    return f"an objective index 0-{last} (the study has no metric names: see study.set_metric_names)"
