"""Name-to-sampler table for the `sampler:` block; samplers are built lazily, only when named.

Every factory receives the sampler config, the seed and, when the driver has one, the `CostProbe` (a real
search's `PlanProbe`) that costs a configuration exactly before training (the default `autopeft` sampler
needs it; the others ignore it).
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from autopeft.search.budgeted_sampler import BudgetedParetoSampler
from autopeft.search.plan_probe import CostProbe
from autopeft.search_space import SamplerConfig

SamplerFactory = Callable[[SamplerConfig, int, "CostProbe | None"], optuna.samplers.BaseSampler]

OPTUNA_STARTUP_TRIALS = 4
"""TPE's and GP's random trials before their model when the config names none."""

SAMPLERS: dict[str, SamplerFactory] = {
    "autopeft": lambda c, seed, probe: BudgetedParetoSampler(
        probe, seed=seed, startup_trials=c.startup_trials or BudgetedParetoSampler.STARTUP_TRIALS
    ),
    "nsga2": lambda c, seed, probe: optuna.samplers.NSGAIISampler(
        population_size=c.population_size, seed=seed
    ),
    "tpe": lambda c, seed, probe: optuna.samplers.TPESampler(
        n_startup_trials=c.startup_trials or OPTUNA_STARTUP_TRIALS, multivariate=True, seed=seed
    ),
    "gp": lambda c, seed, probe: optuna.samplers.GPSampler(
        n_startup_trials=c.startup_trials or OPTUNA_STARTUP_TRIALS, seed=seed
    ),
    "random": lambda c, seed, probe: optuna.samplers.RandomSampler(seed=seed),
}


def make_sampler(
    config: SamplerConfig, seed: int, probe: CostProbe | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler named in the search space, seeded; `probe` lets it cost candidates before training."""
    return SAMPLERS[config.name](config, seed, probe)
