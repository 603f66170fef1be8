"""The embedded driver: Optuna in this process, a journal file (or RDB) in the run directory, resumable.

Optuna cannot report intermediate values of multi-objective trials (`Trial.report` raises), so
`OptunaReporter` forwards them only for single-objective studies; the learning curve is stored with the trial.
Multi-objective trials are stopped early by a sampler that implements `EarlyStopping` (the default `autopeft`
sampler): the reporter asks it at each checkpoint, and a stopped trial is recorded as PRUNED.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import optuna

from autopeft.search.early_stopping import EarlyStopping
from autopeft.search.progress import SearchProgress, SilentProgress
from autopeft.search.search_setup import INTERRUPTED, SearchSetup
from autopeft.search.trial_record import record_plan, record_result, write_result_files
from autopeft.trial import TrialResult, run_trial

logger = logging.getLogger(__name__)


class OptunaReporter:
    """Forwards the task metric to `trial.report` in single-objective studies (Optuna's pruner decides);
    in multi-objective ones, asks an `EarlyStopping` sampler whether the latest metric can reach the front.
    `on_evaluation(step, task_metric)` hears every dev evaluation (the progress display)."""

    def __init__(
        self,
        trial: optuna.Trial,
        single_objective: bool,
        on_evaluation: Callable[[int, float], None] | None = None,
    ) -> None:
        self.trial = trial
        self.single_objective = single_objective
        self.on_evaluation = on_evaluation
        self.metrics: list[float] = []

    def report(self, step: int, values: Mapping[str, float]) -> None:
        if "task_metric" not in values:
            return
        self.metrics.append(values["task_metric"])
        if self.on_evaluation is not None:
            self.on_evaluation(step, values["task_metric"])
        if self.single_objective:
            self.trial.report(values["task_metric"], step)

    def should_stop(self) -> bool:
        if self.single_objective:
            return self.trial.should_prune()
        sampler = self.trial.study.sampler
        if not self.metrics or not isinstance(sampler, EarlyStopping):
            return False
        checkpoint = len(self.metrics) - 1
        return sampler.should_stop_trial(self.trial.study, self.trial, checkpoint, self.metrics[-1])


def run_search(
    setup: SearchSetup, progress: SearchProgress | None = None, study: optuna.Study | None = None
) -> optuna.Study:
    """Run trials until the study holds `setup.trials` finished ones; Ctrl-C fails the current trial
    (marked interrupted, not counted) and re-raises, leaving storage and files consistent."""
    progress = progress or SilentProgress()
    study = study or setup.open_study()
    setup.settle_interrupted(study)
    while setup.finished_count(study) < setup.trials:
        _run_one(study, setup, progress)
    return study


def _run_one(study: optuna.Study, setup: SearchSetup, progress: SearchProgress) -> None:
    trial = study.ask()
    plan = setup.space.sample(trial, setup.layout)
    record_plan(trial, plan, setup)
    progress.trial_started(trial.number, plan.summary())
    reporter = OptunaReporter(trial, len(setup.space.objectives) == 1, progress.trial_evaluated)
    folder = setup.run_dir.trial_dir(trial.number)
    try:
        result = run_trial(plan, setup.spec, reporter, folder, on_progress=progress.trial_step)
    except KeyboardInterrupt:
        # The trial's folder says what happened as a finished trial's does, and the study stays consistent.
        write_result_files(folder, TrialResult(state="failed", reason=INTERRUPTED))
        trial.set_user_attr("reason", INTERRUPTED)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    record_result(study, trial, result, setup)
    shown = {name: result.metrics[name] for name in setup.space.objective_names if name in result.metrics}
    progress.trial_finished(
        trial.number, result.state if not result.reason else f"failed ({result.reason})", shown
    )
    _log_outcome(trial.number, result)


def _log_outcome(number: int, result: TrialResult) -> None:
    if result.state == "failed":
        logger.warning("trial %d failed: %s", number, result.reason)
    else:
        logger.info("trial %d %s", number, result.state)
