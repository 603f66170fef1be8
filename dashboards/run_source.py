"""RunSource: where a dashboard or report reads its studies, from a run directory or a storage URL.

A run directory (`autopeft search --out`) gives the study, its objectives and the trial files (plan.json,
metrics.json, adapter/, audit.json). A bare storage URL gives only what Optuna stores: the user attributes
`plan`, `curve` and `metrics` of each trial, and no files, so pruning and audits need the run directory.
Every study is re-read on each call, which is what lets the dashboard follow a running search.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna

from autopeft.errors import ConfigError
from autopeft.objectives import Direction
from autopeft.pareto import TrialRow, trial_rows
from autopeft.storage.run_directory import RunDirectory


@dataclass(frozen=True)
class Objectives:
    """Names and directions of one study's objectives, in the order of `trial.values`."""

    names: tuple[str, ...]
    directions: tuple[Direction, ...]


class RunSource:
    """The studies of one storage, and the run directory behind them when there is one."""

    def __init__(self, run_dir: RunDirectory | None, storage: optuna.storages.BaseStorage | str) -> None:
        self.run_dir = run_dir
        self.storage = storage

    @classmethod
    def open(cls, run_dir: str | Path | None = None, storage_url: str | None = None) -> RunSource:
        """A source from a run directory, a storage URL, or both (the URL then overrides run.json's storage)."""
        if run_dir is None and storage_url is None:
            raise ConfigError("expected a run directory or --storage URL")
        directory = RunDirectory.existing(run_dir) if run_dir is not None else None
        if directory is None:
            return cls(None, str(storage_url))
        return cls(directory, directory.storage(storage_url))

    def study_names(self) -> list[str]:
        """Every study in the storage, the run directory's own study first."""
        names = sorted(optuna.get_all_study_names(self.storage))
        default = self.default_study()
        return [default, *(n for n in names if n != default)] if default in names else names

    def default_study(self) -> str | None:
        """The study the run directory was made for; with a bare URL, the first study in the storage."""
        if self.run_dir is not None:
            return str(self.run_dir.info()["study"])
        names = sorted(optuna.get_all_study_names(self.storage))
        return names[0] if names else None

    def study(self, name: str) -> optuna.Study:
        """Load study `name`; a missing one is a `ConfigError` that lists the studies present."""
        try:
            return optuna.load_study(study_name=name, storage=self.storage)
        except KeyError:
            known = ", ".join(self.study_names()) or "none"
            raise ConfigError(f"storage holds no study named '{name}'; studies: {known}") from None

    def objectives(self, study: optuna.Study) -> Objectives:
        """Objective names from run.json for the run's own study, else from the study's metric names."""
        if self.run_dir is not None and study.study_name == self.default_study():
            info = self.run_dir.info()
            return Objectives(tuple(info["objectives"]), tuple(info["directions"]))
        names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
        directions: tuple[Direction, ...] = tuple(
            "maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize" for d in study.directions
        )
        return Objectives(tuple(names), directions)

    def rows(self, study: optuna.Study) -> list[TrialRow]:
        """The trials as `autopeft show` sees them, front and feasibility included."""
        objectives = self.objectives(study)
        return trial_rows(study, objectives.names, objectives.directions)

    def trial(self, study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
        """Trial `number` of `study`; an unknown number is a `ConfigError` naming the valid range."""
        trials = study.get_trials(deepcopy=False)
        if not 0 <= number < len(trials):
            known = f"0..{len(trials) - 1}" if trials else "none yet"
            raise ConfigError(f"study '{study.study_name}' has no trial {number}; trials: {known}")
        return trials[number]

    def trial_dir(self, study: optuna.Study, number: int) -> Path | None:
        """The trial's folder when this source has the run directory that holds it."""
        if self.run_dir is None or study.study_name != self.default_study():
            return None
        return self.run_dir.trial_dir(number)
