"""Name-to-sampler table for the `sampler:` block; samplers are built lazily, only when named."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from autopeft.search_space import SamplerConfig

SamplerFactory = Callable[[SamplerConfig, int], optuna.samplers.BaseSampler]

SAMPLERS: dict[str, SamplerFactory] = {
    "nsga2": lambda c, seed: optuna.samplers.NSGAIISampler(population_size=c.population_size, seed=seed),
    "tpe": lambda c, seed: optuna.samplers.TPESampler(
        n_startup_trials=c.startup_trials, multivariate=True, seed=seed
    ),
    "gp": lambda c, seed: optuna.samplers.GPSampler(n_startup_trials=c.startup_trials, seed=seed),
    "random": lambda c, seed: optuna.samplers.RandomSampler(seed=seed),
}


def make_sampler(config: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler named in the search space, seeded."""
    return SAMPLERS[config.name](config, seed)
