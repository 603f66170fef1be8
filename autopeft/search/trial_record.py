"""How a trial is stored: the same user attributes, files and told values whichever driver ran it."""

from __future__ import annotations

from pathlib import Path

import optuna

from autopeft.methods.resolved_plan import ResolvedPlan
from autopeft.plan import PeftPlan
from autopeft.search.method_signals import SIGNALS_KEY, method_signals
from autopeft.search.search_setup import SearchSetup
from autopeft.storage.atomic_files import write_json_atomic
from autopeft.trial import TrialResult

_STATES = {
    "complete": optuna.trial.TrialState.COMPLETE,
    "pruned": optuna.trial.TrialState.PRUNED,
    "failed": optuna.trial.TrialState.FAIL,
}


def record_plan(trial: optuna.Trial, plan: PeftPlan, setup: SearchSetup) -> None:
    """Store the plan (JSON attribute and plan.json), its exact parameter count and the budget constraint.

    Trainable parameters are known before training, so they are computed here, never learned.
    """
    trainable = ResolvedPlan.resolve(plan, setup.layout).cost
    trial.set_user_attr("plan", plan.model_dump(mode="json"))
    trial.set_user_attr("plan_summary", plan.summary())
    folder = setup.run_dir.trial_dir(trial.number)
    trial.set_user_attr("artifact_dir", str(folder.relative_to(setup.run_dir.root)))
    trial.set_user_attr("trainable_parameters", trainable)
    limit = setup.space.constraints.max_trainable_parameters
    if limit is not None:
        trial.set_constraint("trainable_parameters", float(trainable - limit))
    write_json_atomic(folder / "plan.json", plan.model_dump(mode="json"))


def record_result(study: optuna.Study, trial: optuna.Trial, result: TrialResult, setup: SearchSetup) -> None:
    """Write metrics.json and predictions.json, copy the curve and metrics into the trial, and tell Optuna."""
    write_result_files(setup.run_dir.trial_dir(trial.number), result)
    tell_result(study, trial, result, setup)


def write_result_files(folder: Path, result: TrialResult) -> None:
    """metrics.json (state, reason, metrics, curve, method reports) and predictions.json when there are any.

    Split from `record_result` because on Ray the worker that ran the trial writes them into the shared
    artifact folder, while the driver tells the study.
    """
    write_json_atomic(
        folder / "metrics.json",
        {
            "state": result.state,
            "reason": result.reason,
            "metrics": result.metrics,
            "curve": result.curve,
            "methods": result.method_reports,
        },
    )
    if result.dev_predictions:
        write_json_atomic(folder / "predictions.json", result.dev_predictions)
    if result.final_plan is not None:  # a method changed the adapter (AdaLoRA's final ranks)
        write_json_atomic(folder / "final_plan.json", result.final_plan.model_dump(mode="json"))


def tell_result(study: optuna.Study, trial: optuna.Trial, result: TrialResult, setup: SearchSetup) -> None:
    """Copy the metrics, curve, method signals and reason into the trial's attributes and tell Optuna its state
    and values."""
    trial.set_user_attr("metrics", result.metrics)
    trial.set_user_attr("curve", result.curve)
    trial.set_user_attr(SIGNALS_KEY, method_signals(result.method_reports))
    if result.final_plan is not None:
        trial.set_user_attr("final_plan", result.final_plan.model_dump(mode="json"))
    if result.reason:
        trial.set_user_attr("reason", result.reason)
    if result.state == "complete":
        study.tell(trial, [result.metrics[name] for name in setup.space.objective_names])
    else:
        study.tell(trial, state=_STATES[result.state])


def is_finished(study: optuna.Study, trial: optuna.Trial) -> bool:
    """True when storage already holds a final state for `trial` (a resumed Ray run may report it again)."""
    stored = study.get_trials(deepcopy=False)
    return trial.number < len(stored) and stored[trial.number].state.is_finished()
