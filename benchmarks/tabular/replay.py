"""Replay: one strategy's run on a built table, each configuration's stored row given instead of training it.

`replay_optuna` is the loop of `run_search` without training (ask, look the row up, tell), with an optional
stopping rule read at the table's intermediate evaluation; `replay_protocol` drives the AutoPEFT protocol
(`autopeft_protocol.py`), which proposes from its own grid. Budgets count full-trial equivalents: a trial
stopped at its intermediate evaluation costs the share of the steps it ran (step 16 of 32: 0.5); a failed or
repeated configuration costs a whole trial, as it would in a real search.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from tabular.autopeft_protocol import run_protocol
from tabular.table import Row, Table

from autopeft.search.method_signals import SIGNALS_KEY

Stopping = Callable[[optuna.Study, optuna.Trial, Row], bool]
"""Whether a trial stops at the table's intermediate evaluation (its row's first curve point), asked once per
trial that has a complete row, before its final metric is seen."""


@dataclass
class Replay:
    """One run of one strategy: the (spent budget, row key) of each complete trial in order, the budget spent,
    the trials started and the trials stopped at the intermediate evaluation."""

    points: list[tuple[float, str]] = field(default_factory=list)
    spent: float = 0.0
    started: int = 0
    pruned: int = 0

    def curve(self, table: Table, budget: int) -> list[float]:
        """The hypervolume of the complete trials within each whole budget 1..`budget`; each distinct set of
        trials is measured once."""
        measured: dict[int, float] = {}
        values = []
        for limit in range(1, budget + 1):
            count = sum(1 for spent, _ in self.points if spent <= limit + 1e-9)
            if count not in measured:
                measured[count] = table.hypervolume([key for _, key in self.points[:count]])
            values.append(measured[count])
        return values


def replay_optuna(
    table: Table, sampler: optuna.samplers.BaseSampler, budget: float, stopping: Stopping | None = None
) -> Replay:
    """Ask, look the row up, tell: the loop of `run_search` without training. With `stopping`, the rule sees
    the intermediate metric first and a stopped trial is told PRUNED, with its curve cut at that point."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["task_metric", "trainable_parameters"])
    replay = Replay()
    while replay.spent < budget:
        trial = study.ask()
        replay.started += 1
        table.grid.space.sample(trial, table.grid.layout)
        row = table.row(trial.params)
        if row["state"] != "complete":
            replay.spent += 1.0
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        trial.set_user_attr(SIGNALS_KEY, row["signals"])
        curve = [{"task_metric": point[1]} for point in row["curve"]]
        if stopping is not None and stopping(study, trial, row):
            replay.spent += row["curve"][0][0] / row["curve"][-1][0]
            replay.pruned += 1
            trial.set_user_attr("curve", curve[:1])
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        trial.set_user_attr("curve", curve)
        objectives = row["objectives"]
        study.tell(trial, [objectives["task_metric"], objectives["trainable_parameters"]])
        replay.spent += 1.0
        replay.points.append((replay.spent, row["key"]))
    return replay


def replay_protocol(table: Table, budget: float, seed: int) -> Replay:
    """The AutoPEFT protocol (random initial design, then qNEHVI over GPs of both objectives), with the
    table's metric reference as its reference point."""
    replay = Replay()

    def evaluate(params: dict[str, Any]) -> tuple[float, float] | None:
        row = table.row(params)
        replay.spent += 1.0
        replay.started += 1
        if row["state"] != "complete":
            return None
        replay.points.append((replay.spent, row["key"]))
        objectives = row["objectives"]
        return objectives["task_metric"], objectives["trainable_parameters"] / (1.1 * table.max_parameters)

    run_protocol(table.dimensions, evaluate, int(budget), seed, table.metric_reference)
    return replay
