"""Pareto fronts of a study's trials and the hypervolume they dominate."""

from autopeft.pareto.front import TrialRow, dominates, trial_rows

__all__ = ["TrialRow", "dominates", "trial_rows"]
