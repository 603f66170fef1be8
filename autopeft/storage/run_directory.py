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

from autopeft.errors import ConfigError
from autopeft.storage.atomic_files import read_json
from autopeft.storage.study_storage import check_journal_appendable, check_storage_url, open_journal

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

    @property
    def journal_file(self) -> Path:
        return self.root / JOURNAL_FILE

    def info(self) -> dict[str, Any]:
        """The contents of run.json: study, storage, objectives, directions (a storage URL is checked)."""
        info = read_json(self.run_file)
        if not isinstance(info, dict):
            raise ConfigError(f"{self.run_file}: expected a JSON object, got {type(info).__name__}")
        for key in ("study", "storage", "objectives", "directions"):
            if key not in info:
                raise ConfigError(f"{self.run_file}: {key}: required key is missing")
        if info["storage"] != "journal":
            check_storage_url(str(info["storage"]), f"{self.run_file}: storage:")
        return info

    def storage(self, url: str | None = None) -> optuna.storages.BaseStorage | str:
        """The study's storage: an RDB URL as given, else the journal file in this directory.

        A missing journal is created, unless trials are stored: their records would be lost, and a resumed
        search would number its trials from 0 again over their folders."""
        url = url if url is not None else self.info()["storage"] if self.run_file.is_file() else "journal"
        if url != "journal":
            return url
        self._require_journal_of_stored_trials()
        return open_journal(self.journal_file)

    def check_resumable_journal(self) -> None:
        """Refuse a journal a resumed search cannot append to: missing while trials are stored, or damaged
        (reads only; called before a search writes anything)."""
        self._require_journal_of_stored_trials()
        check_journal_appendable(self.journal_file)

    def _require_journal_of_stored_trials(self) -> None:
        if not self.journal_file.exists() and self.trial_numbers():
            raise ConfigError(
                f"{self.journal_file}: file not found; expected the journal that records the trials in "
                f"{self.root / TRIALS_FOLDER}; restore it or start a new run directory"
            )

    def load_study(self) -> optuna.Study:
        """The Optuna study this directory records."""
        info = self.info()
        try:
            return optuna.load_study(study_name=info["study"], storage=self.storage(info["storage"]))
        except KeyError:
            raise ConfigError(f"{self.root}: storage holds no study named '{info['study']}'") from None
