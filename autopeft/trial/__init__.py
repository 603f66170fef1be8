"""One trial: a plan trained on the low-cost budget, measured and saved. It knows nothing of Optuna or Ray."""

from autopeft.trial.adapters import apply_plan
from autopeft.trial.run import TrialResult, TrialSpec, pick_device, run_trial
from autopeft.trial.training_loop import TrialFailure, evaluate

__all__ = ["TrialFailure", "TrialResult", "TrialSpec", "apply_plan", "evaluate", "pick_device", "run_trial"]
