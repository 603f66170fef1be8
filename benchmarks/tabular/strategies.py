"""Strategies: every way of searching a table that `benchmarks/search_quality.py` compares, by name, and the
worker that replays one (strategy, seed).

`autopeft` is the default sampler of `autopeft search` with its own multi-objective stopping; two ablations
switch off its stopping and its method signals. `asha_eta3` and `asha_eta2` are what Ray Tune users get:
random search with ASHA stopping by the task metric alone (`asha.py`). `random_pareto_stopping` (random
search with the default's stopping rule, `ParetoStopping`) and `autopeft_asha_eta3` (the default sampler with
ASHA instead of its own stopping) separate what the stopping rule buys from what the sampler buys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import gpytorch
import linear_operator
import optuna
import torch
from tabular.asha import AshaRung
from tabular.replay import Replay, replay_optuna, replay_protocol
from tabular.table import Row, Table

from autopeft.search.budgeted_sampler import BudgetedParetoSampler
from autopeft.search.pareto_stopping import ParetoStopping

Run = Callable[[Table, int, float], Replay]
"""run(table, seed, budget): one replay of a strategy."""


@dataclass(frozen=True)
class Strategy:
    """A strategy's replay and its rough CPU time per seed at budget 80 in seconds (measured on the first
    table), so that parallel runs start the slow GP strategies first and the workers finish together."""

    run: Run
    seconds: float = 0.1


def _random(table: Table, seed: int, budget: float) -> Replay:
    return replay_optuna(table, optuna.samplers.RandomSampler(seed=seed), budget)


def _nsga2(table: Table, seed: int, budget: float) -> Replay:
    return replay_optuna(table, optuna.samplers.NSGAIISampler(population_size=8, seed=seed), budget)


def _tpe(table: Table, seed: int, budget: float) -> Replay:
    sampler = optuna.samplers.TPESampler(n_startup_trials=10, multivariate=True, seed=seed)
    return replay_optuna(table, sampler, budget)


def _gp(table: Table, seed: int, budget: float) -> Replay:
    return replay_optuna(table, optuna.samplers.GPSampler(n_startup_trials=10, seed=seed), budget)


def _protocol(table: Table, seed: int, budget: float) -> Replay:
    return replay_protocol(table, budget, seed)


def _autopeft(table: Table, seed: int, budget: float, stop: bool = True, signal_prior: float = 0.5) -> Replay:
    """The default sampler; with `stop`, its `should_stop_trial` at the intermediate evaluation."""
    sampler = BudgetedParetoSampler(table.probe, seed=seed, signal_prior=signal_prior)

    def stopping(study: optuna.Study, trial: optuna.Trial, row: Row) -> bool:
        return sampler.should_stop_trial(study, trial, 0, row["curve"][0][1])

    return replay_optuna(table, sampler, budget, stopping if stop else None)


def _asha(table: Table, seed: int, budget: float, reduction_factor: float, sampler: str = "random") -> Replay:
    """Random search (the same proposals as `random`), or the default sampler, with ASHA at the intermediate
    evaluation instead of any other stopping."""
    rung = AshaRung(reduction_factor)
    if sampler == "random":
        proposer: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        proposer = BudgetedParetoSampler(table.probe, seed=seed)

    def stopping(study: optuna.Study, trial: optuna.Trial, row: Row) -> bool:
        return rung.stops(row["curve"][0][1])

    return replay_optuna(table, proposer, budget, stopping)


def _random_pareto_stopping(table: Table, seed: int, budget: float) -> Replay:
    """Random search (the same proposals as `random`) with `ParetoStopping`, the default's stopping rule as
    any Optuna study gets it. The cost at the checkpoint is the exact one (the probe's expected parameters,
    known before training), as in the sampler's own rule."""
    rules: list[ParetoStopping] = []

    def stopping(study: optuna.Study, trial: optuna.Trial, row: Row) -> bool:
        if not rules:
            rules.append(ParetoStopping(study, quality="task_metric"))
        step, metric = row["curve"][0][:2]
        return rules[0].should_stop(trial, step, [metric, table.probe(dict(trial.params)).expected])

    return replay_optuna(table, optuna.samplers.RandomSampler(seed=seed), budget, stopping)


STRATEGIES: dict[str, Strategy] = {
    "random": Strategy(_random),
    "nsga2": Strategy(_nsga2),
    "tpe": Strategy(_tpe, 0.2),
    "gp": Strategy(_gp, 12.0),
    "autopeft_protocol": Strategy(_protocol, 31.0),
    "autopeft": Strategy(_autopeft, 2.2),
    "autopeft_no_stopping": Strategy(partial(_autopeft, stop=False), 1.7),
    "autopeft_no_signals": Strategy(partial(_autopeft, signal_prior=0.0), 2.2),
    "asha_eta3": Strategy(partial(_asha, reduction_factor=3)),
    "asha_eta2": Strategy(partial(_asha, reduction_factor=2)),
    "random_pareto_stopping": Strategy(_random_pareto_stopping, 0.2),
    "autopeft_asha_eta3": Strategy(partial(_asha, reduction_factor=3, sampler="autopeft"), 2.0),
}

_worker_table: list[Table] = []
"""The table of this process, set once by `setup_process` (each worker gets it, probe facts included, when it
starts)."""


def setup_process(table: Table) -> None:
    """Make this process a replay worker for `table`: one torch thread (two workers share two cores, and a
    serial run must give the same numbers as a parallel one), no argument validation in torch.distributions
    (it only checks inputs; it was a fifth of the AutoPEFT protocol's GP fitting time) and quiet Optuna."""
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _worker_table[:] = [table]


def run_task(name: str, seed: int, budget: int) -> dict[str, Any]:
    """Replay strategy `name` with `seed` on this process's table: its hypervolume after each whole budget
    1..`budget`, and the trials started and stopped. gpytorch's and linear_operator's debug checks (inputs and
    shapes re-checked at every call, no effect on the numbers; a tenth of the protocol's time) are off."""
    table = _worker_table[0]
    with gpytorch.settings.debug(False), linear_operator.settings.debug(False):
        replay = STRATEGIES[name].run(table, seed, budget)
    return {"curve": replay.curve(table, budget), "started": replay.started, "pruned": replay.pruned}
