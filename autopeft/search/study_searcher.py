"""StudySearcher: Ray Tune's OptunaSearch on the run directory's study, storing trials as the embedded driver.

One Ray trial is one Optuna trial. `suggest` asks the shared study for a trial, samples the plan from the
search space and records it (`record_plan`: plan, summary, artifact folder, parameter count, budget
constraint), so trial numbers, attributes and files match an embedded run. The plan travels to the worker
inside the Ray config.

Ray's own OptunaSearch tells Optuna COMPLETE with whatever the last result held, so a trial that a scheduler
(ASHA) stopped early would reach the Pareto front with half-trained metrics. This searcher decides from the
trial's own final report instead: complete only when `run_trial` finished its budget, pruned when the last
result is an intermediate one (a scheduler stopped it), failed when Ray gave up on it after its retries.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import optuna
from ray.tune.search.optuna import OptunaSearch

from autopeft.plan import PeftPlan
from autopeft.search.search_setup import SearchSetup
from autopeft.search.trial_record import is_finished, record_plan, record_result, tell_result
from autopeft.trial import TrialResult

logger = logging.getLogger(__name__)

# Keys of the Ray results a trial reports (see `RayReporter`); JSON strings, as Tune flattens nested dicts.
CURVE_KEY = "autopeft_curve"
OUTCOME_KEY = "autopeft_outcome"
PLAN_KEY = "autopeft_plan"
NUMBER_KEY = "autopeft_trial_number"

STOPPED_BY_SCHEDULER = "stopped early by the Ray scheduler"
GIVEN_UP_BY_RAY = "the Ray trial failed on every attempt (see the Ray experiment folder for its errors)"


class PlanSuggester:
    """The define-by-run space: samples and records the plan, returns it (and the trial number) as Ray config.

    A class rather than a closure because Ray pickles the searcher, and with it this space, into the
    experiment checkpoint that `Tuner.restore` reads back.
    """

    def __init__(self, setup: SearchSetup) -> None:
        self.setup = setup

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        plan = self.setup.space.sample(trial, self.setup.layout)
        record_plan(trial, plan, self.setup)
        return {PLAN_KEY: plan.model_dump(mode="json"), NUMBER_KEY: trial.number}


class StudySearcher(OptunaSearch):
    """OptunaSearch over the setup's study, sampler, objectives and directions, with autopeft's recording."""

    def __init__(
        self, setup: SearchSetup, sampler: optuna.samplers.BaseSampler, storage: optuna.storages.BaseStorage
    ) -> None:
        self._setup = setup
        self._last_results: dict[str, dict[str, Any]] = {}
        modes = ["max" if direction == "maximize" else "min" for direction in setup.space.directions]
        super().__init__(
            PlanSuggester(setup),
            metric=setup.space.objective_names,
            mode=modes,
            sampler=sampler,
            study_name=setup.study_name,
            storage=storage,
        )

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Keep the latest report; single-objective studies also get the task metric as an intermediate value,
        as `OptunaReporter` stores it in the embedded driver."""
        self._last_results[trial_id] = result
        if len(self._setup.space.objectives) == 1 and "task_metric" in result and OUTCOME_KEY not in result:
            self._ot_trials[trial_id].report(float(result["task_metric"]), int(result["step"]))

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell the study how the trial ended; one the study already holds as finished is not told twice."""
        if trial_id in self._completed_trials:
            return
        self._completed_trials.add(trial_id)
        trial = self._ot_trials[trial_id]
        # OptunaSearch sets `_ot_study` up before any trial, but declares it as None (`self._ot_study = None`)
        study = cast(optuna.Study, self._ot_study)
        if is_finished(study, trial):
            logger.info("trial %d was already recorded; not counted again", trial.number)
            return
        last = result or self._last_results.get(trial_id)
        outcome = trial_outcome(last, error)
        if last is not None and OUTCOME_KEY in last:
            tell_result(study, trial, outcome, self._setup)  # the worker wrote its files
        else:
            record_result(study, trial, outcome, self._setup)
        self._last_results.pop(trial_id, None)
        logger.info("trial %d %s", trial.number, outcome.state)


def trial_outcome(result: dict[str, Any] | None, error: bool) -> TrialResult:
    """What a Ray trial's last result says about it: its final outcome, or pruned/failed when it has none.

    A pruned trial keeps the metrics of its last evaluation, so it is visible but never on the front.
    """
    curve = json.loads(result[CURVE_KEY]) if result and CURVE_KEY in result else []
    if result is not None and OUTCOME_KEY in result:
        final = json.loads(result[OUTCOME_KEY])
        final_plan = PeftPlan.model_validate(final["final_plan"]) if final.get("final_plan") else None
        return TrialResult(
            final["state"],
            final["metrics"],
            final["reason"],
            curve,
            method_reports=final.get("methods") or {},
            final_plan=final_plan,
        )
    if error:
        return TrialResult("failed", reason=GIVEN_UP_BY_RAY, curve=curve)
    metrics = {key: value for key, value in curve[-1].items() if key != "step"} if curve else {}
    return TrialResult("pruned", metrics, STOPPED_BY_SCHEDULER, curve)
