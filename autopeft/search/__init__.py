"""Search drivers and samplers; the package exports only what a plain Optuna user needs (`ParetoStopping`),
so importing it loads neither torch, Ray nor the drivers."""

from autopeft.search.pareto_stopping import ParetoStopping

__all__ = ["ParetoStopping"]
