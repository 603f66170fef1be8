"""StudyCatalog: every run directory under the root, the service's and the CLI's alike, summarised for the
list and the study pages: state, trials done and asked, best point, hypervolume, backend, start time.

What a summary reads from a study's storage is cached under the journal file's size and modification time,
so polling clients cost one `stat` per study until a trial changes the journal.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from autopeft.dashboards.hypervolume_plot import hypervolume_info
from autopeft.errors import ConfigError
from autopeft.pareto import TrialRow, trial_rows
from autopeft.search.search_setup import INTERRUPTED
from autopeft.serve.records import JobRecord, JobStore
from autopeft.serve.service_error import bad_request, not_found
from autopeft.storage.run_directory import JOURNAL_FILE, RunDirectory

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
RDB_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class StudyFacts:
    """What the study's storage says: objectives, trial counts, the front's best point and hypervolume."""

    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    rows: tuple[TrialRow, ...]
    trials_done: int
    trials_total: int
    best: dict[str, Any] | None
    hypervolume: float | None
    started_at: float | None
    error: str = ""


@dataclass(frozen=True)
class StudySummary:
    """One line of the studies list."""

    name: str
    run_dir: str
    state: str
    managed: bool
    backend: str
    trials_asked: int | None
    facts: StudyFacts
    job: JobRecord | None = field(default=None, compare=False)


def check_name(name: str) -> str:
    """A study name is one plain folder name: letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not NAME_PATTERN.match(name):
        raise bad_request(
            f"name: expected 1-100 letters, digits, '.', '_' or '-' starting with a letter or digit, got {name!r}"
        )
    return name


class StudyCatalog:
    """The studies under `root`, read through a small cache."""

    def __init__(self, root: Path, store: JobStore) -> None:
        self.root = root
        self.store = store
        self._cache: dict[str, tuple[tuple[Any, ...], StudyFacts]] = {}
        self._reading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every run directory directly under the root (folders with run.json), by name."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if not p.name.startswith(".") and NAME_PATTERN.match(p.name) and (p / "run.json").is_file()
        )

    def run_dir(self, name: str) -> RunDirectory:
        """The run directory of study `name`, or 404."""
        check_name(name)
        folder = self.root / name
        if not (folder / "run.json").is_file():
            raise not_found(f"study '{name}': no run directory {folder} with run.json under the root")
        return RunDirectory(folder)

    def summaries(self) -> list[StudySummary]:
        latest = self.store.latest_searches()
        names = self.names()
        waiting = sorted(n for n, r in latest.items() if n not in names and r.active)
        return [self._summary(name, latest.get(name)) for name in [*names, *waiting]]

    def summary(self, name: str) -> StudySummary:
        check_name(name)
        job = self.store.latest_searches().get(name)
        if job is None or not job.active:
            self.run_dir(name)
        return self._summary(name, job)

    def _summary(self, name: str, job: JobRecord | None) -> StudySummary:
        folder = self.root / name
        facts = self.facts(name) if (folder / "run.json").is_file() else _no_facts()
        backend = job.backend if job is not None else ("ray" if (folder / "ray").is_dir() else "optuna")
        return StudySummary(
            name=name,
            run_dir=str(folder),
            state=job.state if job is not None else "external",
            managed=job is not None,
            backend="ray" if backend == "ray" else "optuna",
            trials_asked=job.trials if job is not None and job.trials else _space_trials(folder),
            facts=facts,
            job=job,
        )

    def facts(self, name: str) -> StudyFacts:
        """The study's facts, read again only when its storage changed; one reader per study at a time, so a
        burst of clients on a changed study costs one read, not one each."""
        run_dir = RunDirectory(self.root / name)
        with self._lock:
            reading = self._reading.setdefault(name, threading.Lock())
        with reading:
            key = _freshness(run_dir)
            cached = self._cache.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
            facts = _read_facts(run_dir)
            self._cache[name] = (key, facts)
            return facts

    def forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)
            self._reading.pop(name, None)


def _freshness(run_dir: RunDirectory) -> tuple[Any, ...]:
    """What must change for cached facts to be stale: the journal's stat, or a clock tick for an RDB."""
    journal = run_dir.root / JOURNAL_FILE
    try:
        stat = journal.stat()
        run_stat = run_dir.run_file.stat()
        return (stat.st_size, stat.st_mtime_ns, run_stat.st_mtime_ns)
    except FileNotFoundError:
        return ("rdb", int(time.monotonic() / RDB_CACHE_SECONDS))


def _read_facts(run_dir: RunDirectory) -> StudyFacts:
    try:
        info = run_dir.info()
        study = optuna.load_study(study_name=info["study"], storage=run_dir.storage(info["storage"]))
    except (ConfigError, KeyError, ValueError, OSError) as error:
        return _no_facts(f"cannot read the study: {error}")
    names, directions = tuple(info["objectives"]), tuple(info["directions"])
    trials = study.get_trials(deepcopy=False)
    rows = tuple(trial_rows(study, names, directions))
    front = [r for r in rows if r.on_front]
    sign = 1.0 if directions[0] == "maximize" else -1.0
    best = max(front, key=lambda r: sign * r.values[names[0]]) if front else None
    curve = hypervolume_info(rows, names, directions).values
    starts = [t.datetime_start.timestamp() for t in trials if t.datetime_start is not None]
    return StudyFacts(
        objectives=names,
        directions=directions,
        rows=rows,
        trials_done=sum(
            1 for t in trials if t.state in FINISHED and t.user_attrs.get("reason") != INTERRUPTED
        ),
        trials_total=len(trials),
        best={"trial": best.number, "values": best.values} if best is not None else None,
        hypervolume=curve[-1] if curve else None,
        started_at=min(starts) if starts else None,
    )


def _no_facts(error: str = "") -> StudyFacts:
    return StudyFacts((), (), (), 0, 0, None, None, None, error)


def _space_trials(folder: Path) -> int | None:
    try:
        trials = yaml.safe_load((folder / "space.yaml").read_text(encoding="utf-8")).get("trials")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return int(trials) if isinstance(trials, int) else None
