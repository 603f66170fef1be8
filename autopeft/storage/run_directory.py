"""RunDirectory: the on-disk layout of one search, shared by every driver, `show`, `export`, audits and dashboards.

    runs/<study>/
      run.json            study name, storage (journal file or RDB URL), objectives and directions
      space.yaml          the search space the study was started with (resume refuses a different one)
      study.journal       the Optuna journal storage (default; SQLite locks while a dashboard reads)
      trials/<number>/    plan.json, metrics.json, predictions.json, adapter/ (a standard PEFT adapter)

Every file is written to a temporary name first and swapped in with `os.replace`, so an interrupted write
never corrupts what was stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from autopeft.errors import ConfigError
from autopeft.storage.atomic_files import read_json

RUN_FILE = "run.json"
JOURNAL_FILE = "study.journal"
TRIALS_FOLDER = "trials"


@dataclass(frozen=True)
class RunDirectory:
    """Paths and storage of one search's run directory."""

    root: Path

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def space_file(self) -> Path:
        return self.root / "space.yaml"

    def trial_dir(self, number: int) -> Path:
        """Where trial `number` keeps its files; the one place the `trials/<n>` layout is spelled."""
        return self.root / TRIALS_FOLDER / str(number)

    def trial_numbers(self) -> list[int]:
        """The numbers of the trials that have a folder, in order."""
        folder = self.root / TRIALS_FOLDER
        return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())

    @classmethod
    def existing(cls, path: str | Path) -> RunDirectory:
        """Open a run directory made by `autopeft search`; anything else is a `ConfigError`."""
        root = Path(path)
        if not root.is_dir():
            raise ConfigError(
                f"{root}: run directory not found; expected the --out folder of `autopeft search`"
            )
        if not (root / RUN_FILE).is_file():
            raise ConfigError(
                f"{root}: not a run directory; expected {RUN_FILE} written by `autopeft search`"
            )
        return cls(root)

    def info(self) -> dict[str, Any]:
        """The contents of run.json: study, storage, objectives, directions."""
        info = read_json(self.run_file)
        for key in ("study", "storage", "objectives", "directions"):
            if key not in info:
                raise ConfigError(f"{self.run_file}: {key}: required key is missing")
        return info

    def storage(self, url: str | None = None) -> optuna.storages.BaseStorage | str:
        """The study's storage: an RDB URL as given, else the journal file in this directory."""
        url = url if url is not None else self.info()["storage"] if self.run_file.is_file() else "journal"
        if url != "journal":
            return url
        return JournalStorage(JournalFileBackend(str(self.root / JOURNAL_FILE)))

    def load_study(self) -> optuna.Study:
        """The Optuna study this directory records."""
        info = self.info()
        try:
            return optuna.load_study(study_name=info["study"], storage=self.storage(info["storage"]))
        except KeyError:
            raise ConfigError(f"{self.root}: storage holds no study named '{info['study']}'") from None
