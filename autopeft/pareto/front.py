"""ParetoTable: the trials of a study as rows, with the non-dominated ones (complete and feasible) marked.

Computed once here and shared by `autopeft show`, the dashboards and the reports (compute, then draw).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import optuna

from autopeft.objectives import Direction


@dataclass(frozen=True)
class TrialRow:
    """One trial as the tables and plots show it.

    A trial has two parameter counts, which differ when a method changes the adapter while it trains (AdaLoRA's
    final ranks, Light-PEFT's pruning): `values["trainable_parameters"]`, when that is an objective, is measured
    on the final adapter after training; `planned_trainable_parameters` is counted from the sampled plan before
    training, and is the count `max_trainable_parameters` constrains.
    """

    number: int
    state: str
    values: dict[str, float]  # the objectives, measured after training; empty unless complete
    planned_trainable_parameters: int
    summary: str
    feasible: bool
    on_front: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        """The row as `autopeft show --json` prints it: its field names are the JSON keys (see README.md)."""
        return asdict(self)


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[Direction]) -> bool:
    """True when `a` is at least as good as `b` in every objective and better in one."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    no_worse = all(s * x >= s * y for s, x, y in zip(signs, a, b, strict=True))
    better = any(s * x > s * y for s, x, y in zip(signs, a, b, strict=True))
    return no_worse and better


def trial_rows(study: optuna.Study, names: Sequence[str], directions: Sequence[Direction]) -> list[TrialRow]:
    """Every trial of `study`, with `on_front` set for the non-dominated complete feasible ones."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        values = dict(zip(names, trial.values, strict=True)) if complete and trial.values else {}
        rows.append(
            TrialRow(
                number=trial.number,
                state=trial.state.name.lower(),
                values=values,
                planned_trainable_parameters=int(trial.user_attrs.get("trainable_parameters", 0)),
                summary=str(trial.user_attrs.get("plan_summary", "")),
                feasible=all(v <= 0 for v in trial.constraints.values()),
                on_front=False,
                reason=str(trial.user_attrs.get("reason", "")),
            )
        )
    candidates = [r for r in rows if r.values and r.feasible]
    front = {
        r.number
        for r in candidates
        if not any(dominates(_vector(o, names), _vector(r, names), directions) for o in candidates)
    }
    return [TrialRow(**{**r.__dict__, "on_front": r.number in front}) for r in rows]


def _vector(row: TrialRow, names: Sequence[str]) -> list[float]:
    return [row.values[name] for name in names]
