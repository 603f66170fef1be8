"""The JSON bodies of the API: what a request may send (validated, unknown keys refused) and what it gets."""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autopeft.serve.records import JobRecord
from autopeft.serve.studies import StudySummary

_STRICT = ConfigDict(extra="forbid")


class SearchCreate(BaseModel):
    """A new search: its name (the run directory under --root), the search-space YAML text, and trials."""

    model_config = _STRICT

    name: str = Field(description="Study name and run-directory name under the root.")
    space: str = Field(description="The search-space YAML text (as in search_spaces/*.yaml).")
    trials: int | None = Field(
        default=None, ge=1, description="Finished trials to reach (default: the space's)."
    )
    seed: int | None = Field(default=None, description="Overrides the space's seed.")
    backend: Literal["optuna", "ray"] = Field(default="optuna", description="ray needs --ray-address.")


class SearchResume(BaseModel):
    model_config = _STRICT

    trials: int | None = Field(
        default=None, ge=1, description="Finished trials to reach (default: as before)."
    )


class AuditCreate(BaseModel):
    """`autopeft audit RUN --trial N` as a job; `base` must be a built-in name or inside a data root."""

    model_config = _STRICT

    trial: int = Field(ge=0)
    base: str | None = Field(default=None, description="Base model (default: the one the adapter records).")
    spectrum: Literal["full", "top"] = "full"
    k: int = Field(default=10, ge=1, le=1000)
    epsilon: float = Field(default=0.5, gt=0, lt=1)


class Message(BaseModel):
    """Every error answer: one line naming the field and what was expected."""

    message: str


def _time(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc).isoformat(timespec="seconds")


class JobOut(BaseModel):
    id: int
    kind: str
    study: str
    run_dir: str
    command: str
    backend: str
    state: str
    owner: str
    trials: int | None
    trial: int | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    reason: str
    pid: int | None
    exit_code: int | None
    stopping: bool
    restarts: int
    ray_submission_id: str | None = Field(default=None, description="The Ray job's id (--ray-address).")

    @classmethod
    def of(cls, record: JobRecord) -> JobOut:
        return cls(
            id=record.id,
            kind=record.kind,
            study=record.study,
            run_dir=record.run_dir,
            command="autopeft " + " ".join(record.argv),
            backend=record.backend,
            state=record.state,
            owner=record.owner,
            trials=record.trials,
            trial=record.trial,
            created_at=_time(record.created_at),
            started_at=_time(record.started_at),
            finished_at=_time(record.finished_at),
            reason=record.reason or "",
            pid=record.pid,
            exit_code=record.exit_code,
            stopping=record.stop_requested_at is not None and record.state == "running",
            restarts=record.restarts or 0,
            ray_submission_id=record.ray_submission_id,
        )


class StudyOut(BaseModel):
    name: str
    run_dir: str
    state: str
    managed: bool
    backend: str
    trials_done: int
    trials_asked: int | None
    trials_total: int
    objectives: list[str]
    directions: list[str]
    best: dict[str, Any] | None
    hypervolume: float | None
    started_at: str | None
    job: JobOut | None
    error: str

    @classmethod
    def of(cls, summary: StudySummary) -> StudyOut:
        facts = summary.facts
        return cls(
            name=summary.name,
            run_dir=summary.run_dir,
            state=summary.state,
            managed=summary.managed,
            backend=summary.backend,
            trials_done=facts.trials_done,
            trials_asked=summary.trials_asked,
            trials_total=facts.trials_total,
            objectives=list(facts.objectives),
            directions=list(facts.directions),
            best=facts.best,
            hypervolume=facts.hypervolume,
            started_at=_time(facts.started_at),
            job=JobOut.of(summary.job) if summary.job is not None else None,
            error=facts.error,
        )


class StudyDetail(StudyOut):
    rows: list[dict[str, Any]] = Field(description="Every trial as `autopeft show --all --json` gives it.")


class AuditOut(BaseModel):
    study: str
    trial: int
    ready: bool
    job: JobOut | None
    meta: dict[str, Any] | None
    summary: dict[str, Any] | None


class LogOut(BaseModel):
    job: JobOut
    lines: list[str]
