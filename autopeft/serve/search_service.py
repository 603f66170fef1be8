"""SearchService: what the API and the pages ask of the service, each request validated whole before anything
is written: create, resume, stop and delete searches; create and read audits; jobs and their logs.

A new search's YAML is parsed by `SearchSpace` (its messages name the key), checked against the data roots
and the trial limit, and only then staged in the service folder (`spaces/<name>.yaml`) and queued as the
command line `autopeft search <staged> --out <root>/<name> --study <name> --trials N --quiet`.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import optuna

from autopeft.errors import ConfigError
from autopeft.search_space import SearchSpace
from autopeft.serve.api_models import AuditCreate, SearchCreate
from autopeft.serve.auth import Caller
from autopeft.serve.data_roots import DataRoots
from autopeft.serve.job_queue import JobQueue
from autopeft.serve.records import JobRecord
from autopeft.serve.service_error import bad_request, conflict, not_found
from autopeft.serve.settings import ServiceSettings
from autopeft.serve.studies import StudyCatalog, check_name
from autopeft.storage.atomic_files import read_json, write_text_atomic
from autopeft.storage.run_directory import RunDirectory


class SearchService:
    """The operations behind every route; a lock keeps check-then-queue atomic per server."""

    def __init__(self, settings: ServiceSettings, queue: JobQueue, catalog: StudyCatalog) -> None:
        self.settings = settings
        self.queue = queue
        self.store = queue.store
        self.catalog = catalog
        self.data_roots = DataRoots.of(settings.data_roots)
        self._lock = threading.Lock()

    def staged_space(self, name: str) -> Path:
        return self.settings.service_dir / "spaces" / f"{name}.yaml"

    def create_search(self, body: SearchCreate, caller: Caller) -> JobRecord:
        name = check_name(body.name)
        self._refuse_taken(name)
        space = self._parse_space(body.space, f"{name}.yaml")
        trials = self._trials(body.trials, space, f"{name}.yaml")
        backend = self._backend(body.backend)
        with self._lock:
            self._refuse_taken(name)
            run_dir = self.settings.root / name
            staged = self.staged_space(name)
            staged.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(staged, body.space)
            argv = ["search", str(staged), "--out", str(run_dir), "--study", name, "--trials", str(trials)]
            argv += ["--quiet", *(["--seed", str(body.seed)] if body.seed is not None else [])]
            return self._submit_search(name, run_dir, argv, backend, caller, trials)

    def _refuse_taken(self, name: str) -> None:
        run_dir = self.settings.root / name
        if run_dir.exists() or run_dir.is_symlink():
            raise conflict(
                f"name: study '{name}' already exists under the root; resume it "
                f"(POST /api/searches/{name}/resume) or choose another name"
            )
        self._refuse_active(name)

    def resume_search(self, name: str, trials: int | None, caller: Caller) -> JobRecord:
        check_name(name)
        with self._lock:
            self._refuse_active(name)
            previous = self.store.jobs(study=name)
            last = next((r for r in previous if r.kind == "search"), None)
            staged = self.staged_space(name)
            if last is not None and staged.is_file():
                self._backend("ray" if last.backend == "ray" else "optuna")
                space = self._load_space(staged)
                argv = _with_trials(last.argv, self._trials(trials or last.trials, space, str(staged)))
                return self._submit_search(
                    name, Path(last.run_dir), argv, last.backend, caller, int(argv[-1])
                )
            run_dir = self.catalog.run_dir(name)
            space = self._load_space(run_dir.space_file)
            count = self._trials(trials, space, str(run_dir.space_file))
            argv = _resume_argv(run_dir, count)
            return self._submit_search(name, run_dir.root, argv, "local", caller, count)

    def stop_search(self, name: str, caller: Caller) -> JobRecord:
        check_name(name)
        job = self.store.active_for(name)
        if job is None:
            self.catalog.summary(name)  # 404 for an unknown study
            raise conflict(f"study '{name}': no queued or running search to stop")
        return self.queue.stop(job, caller.name)

    def delete_search(self, name: str) -> None:
        """Remove the run directory (and an RDB study); refused while any job of the study is active."""
        check_name(name)
        with self._lock:
            active = self.store.jobs(states=("queued", "running"), study=name)
            if active:
                raise conflict(f"study '{name}': job {active[0].id} is {active[0].state}; stop it first")
            folder = self.settings.root / name
            staged = self.staged_space(name)
            if folder.is_symlink():
                raise bad_request(
                    f"study '{name}': {folder} is a symlink; the service deletes only real folders"
                )
            if not folder.is_dir() and not staged.is_file():
                raise not_found(f"study '{name}': no run directory {folder} under the root")
            if (folder / "run.json").is_file():
                _delete_rdb_study(RunDirectory(folder))
            if folder.is_dir():
                shutil.rmtree(folder)
            staged.unlink(missing_ok=True)
            self.catalog.forget(name)

    def create_audit(self, name: str, body: AuditCreate, caller: Caller) -> JobRecord:
        run_dir = self.catalog.run_dir(name)
        adapter = run_dir.trial_dir(body.trial) / "adapter"
        if not (adapter / "adapter_config.json").is_file():
            raise not_found(
                f"study '{name}': trial {body.trial} has no adapter (unknown or unfinished trial)"
            )
        if body.base is not None:
            self.data_roots.check_model(body.base, "base")
        else:
            self.data_roots.check_model(
                _recorded_base(adapter), f"trial {body.trial}: the adapter's base model"
            )
        with self._lock:
            for job in self.store.jobs(states=("queued", "running"), study=name):
                if job.kind == "audit" and job.trial == body.trial:
                    raise conflict(
                        f"study '{name}': trial {body.trial} is already being audited (job {job.id})"
                    )
            argv = [
                "audit",
                str(run_dir.root),
                "--trial",
                str(body.trial),
                "--quiet",
                "--spectrum",
                body.spectrum,
            ]
            argv += ["--k", str(body.k), "--epsilon", str(body.epsilon)]
            argv += ["--base", body.base] if body.base is not None else []
            return self.queue.submit(
                kind="audit",
                study=name,
                run_dir=str(run_dir.root),
                arguments=json.dumps(argv),
                backend="local",
                owner=caller.name,
                trial=body.trial,
            )

    def audit(self, name: str, trial: int) -> dict[str, Any]:
        """The latest audit job of a trial and, once written, its audit.json (meta and summary)."""
        run_dir = self.catalog.run_dir(name)
        jobs = [r for r in self.store.jobs(study=name) if r.kind == "audit" and r.trial == trial]
        path = run_dir.trial_dir(trial) / "audit.json"
        if not jobs and not path.is_file():
            raise not_found(f"study '{name}': trial {trial} has no audit; create one with POST .../audits")
        report = read_json(path) if path.is_file() else None
        return {
            "study": name,
            "trial": trial,
            "ready": report is not None,
            "job": jobs[0] if jobs else None,
            "meta": report.get("meta") if isinstance(report, dict) else None,
            "summary": report.get("summary") if isinstance(report, dict) else None,
        }

    def job(self, job_id: int) -> JobRecord:
        record = self.store.get(job_id)
        if record is None:
            raise not_found(f"job {job_id}: no such job")
        return record

    def log(self, job_id: int, lines: int) -> tuple[JobRecord, list[str]]:
        record = self.job(job_id)
        return record, self.queue.runner(record).log_tail(record, lines)

    def _parse_space(self, text: str, source: str) -> SearchSpace:
        try:
            space = SearchSpace.from_yaml(text, source)
        except ConfigError as error:
            raise bad_request(str(error)) from None
        self.data_roots.check_space(space)
        return space

    def _load_space(self, path: Path) -> SearchSpace:
        try:
            space = SearchSpace.load(path)
        except ConfigError as error:
            raise bad_request(str(error)) from None
        self.data_roots.check_space(space)
        return space

    def _trials(self, requested: int | None, space: SearchSpace, source: str) -> int:
        trials = requested or space.trials
        if trials > self.settings.max_trials:
            where = "trials" if requested else f"{source}: trials"
            raise bad_request(
                f"{where}: this server runs at most {self.settings.max_trials} trials per search "
                f"(--max-trials), got {trials}"
            )
        return trials

    def _backend(self, backend: str) -> str:
        if backend == "ray" and not self.settings.ray_address:
            raise bad_request("backend: 'ray' needs a server started with --ray-address; expected 'optuna'")
        return "ray" if backend == "ray" else "local"

    def _refuse_active(self, name: str) -> None:
        active = self.store.active_for(name)
        if active is not None:
            raise conflict(f"study '{name}': a search is already {active.state} (job {active.id})")

    def _submit_search(
        self, name: str, run_dir: Path, argv: list[str], backend: str, caller: Caller, trials: int
    ) -> JobRecord:
        return self.queue.submit(
            kind="search",
            study=name,
            run_dir=str(run_dir),
            arguments=json.dumps(argv),
            backend=backend,
            owner=caller.name,
            trials=trials,
        )


def _with_trials(argv: list[str], trials: int) -> list[str]:
    """The same command line with `--trials` set to `trials` (and last, where resume reads it)."""
    kept: list[str] = []
    skip = False
    for part in argv:
        if skip:
            skip = False
            continue
        if part == "--trials":
            skip = True
            continue
        kept.append(part)
    return [*kept, "--trials", str(trials)]


def _resume_argv(run_dir: RunDirectory, trials: int) -> list[str]:
    """The command that resumes a run directory the CLI started: its study, storage and stored space."""
    info = run_dir.info()
    argv = ["search", str(run_dir.space_file), "--out", str(run_dir.root), "--study", str(info["study"])]
    if info["storage"] != "journal":
        argv += ["--storage", str(info["storage"])]
    return [*argv, "--quiet", "--trials", str(trials)]


def _recorded_base(adapter: Path) -> str:
    try:
        recorded = read_json(adapter / "adapter_config.json").get("base_model_name_or_path")
    except (ValueError, AttributeError, ConfigError):
        recorded = None
    if not recorded:
        raise bad_request(f"{adapter}/adapter_config.json: records no base model; pass 'base'")
    return str(recorded)


def _delete_rdb_study(run_dir: RunDirectory) -> None:
    info = run_dir.info()
    if info["storage"] == "journal":
        return
    try:
        optuna.delete_study(study_name=str(info["study"]), storage=str(info["storage"]))
    except KeyError:
        pass
