"""The JSON API under /api: searches (list, create, read, stop, resume, delete), audits, jobs and their logs.

Every refusal is a JSON body `{"message": ...}` with a 4xx status (see `app.py`); the OpenAPI description is
served at /openapi.json and browsable at /docs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request

from autopeft.serve.api_models import (
    AuditCreate,
    AuditOut,
    JobOut,
    LogOut,
    Message,
    SearchCreate,
    SearchResume,
    StudyDetail,
    StudyOut,
)
from autopeft.serve.auth import Caller
from autopeft.serve.records import JOB_STATES
from autopeft.serve.search_service import SearchService
from autopeft.serve.service_error import bad_request, conflict

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Message} for code in (400, 401, 403, 404, 409, 413, 422)
}
router = APIRouter(prefix="/api", responses=ERRORS)


def service(request: Request) -> SearchService:
    return request.app.state.service


def caller(request: Request) -> Caller:
    return request.state.caller


Service = Annotated[SearchService, Depends(service)]
Who = Annotated[Caller, Depends(caller)]


@router.get("/health")
def health(svc: Service) -> dict[str, int | str]:
    """Liveness, and how many jobs run and wait."""
    return {
        "status": "ok",
        "running": len(svc.store.jobs(states=("running",))),
        "queued": len(svc.store.jobs(states=("queued",))),
    }


@router.get("/searches")
def list_searches(svc: Service) -> list[StudyOut]:
    """Every run directory under the root (also those the CLI started), and searches still queued."""
    return [StudyOut.of(summary) for summary in svc.catalog.summaries()]


@router.post("/searches", status_code=201)
def create_search(body: SearchCreate, svc: Service, who: Who) -> JobOut:
    """Validate the YAML, the paths it names and the trial count, then queue the search."""
    return JobOut.of(svc.create_search(body, who))


@router.get("/searches/{name}")
def get_search(name: str, svc: Service) -> StudyDetail:
    """A study's summary and every trial row (values, state, whether it is on the Pareto front)."""
    summary = svc.catalog.summary(name)
    rows = [row.to_dict() for row in summary.facts.rows]
    return StudyDetail(**StudyOut.of(summary).model_dump(), rows=rows)


@router.post("/searches/{name}/stop", status_code=202)
def stop_search(name: str, svc: Service, who: Who) -> JobOut:
    """Stop the study's queued or running search (the interrupted trial is recorded as such)."""
    return JobOut.of(svc.stop_search(name, who))


@router.post("/searches/{name}/resume", status_code=202)
def resume_search(
    name: str, svc: Service, who: Who, body: Annotated[SearchResume | None, Body()] = None
) -> JobOut:
    """Queue the same search again: it resumes from its storage; `trials` may raise the target."""
    return JobOut.of(svc.resume_search(name, body.trials if body else None, who))


@router.delete("/searches/{name}")
def delete_search(name: str, svc: Service) -> Message:
    """Delete the study's run directory; refused while one of its jobs is queued or running."""
    svc.delete_search(name)
    return Message(message=f"study '{name}' deleted")


@router.post("/searches/{name}/audits", status_code=202)
def create_audit(name: str, body: AuditCreate, svc: Service, who: Who) -> JobOut:
    """Queue `autopeft audit RUN --trial N` for a finished trial."""
    return JobOut.of(svc.create_audit(name, body, who))


@router.get("/searches/{name}/audits/{trial}")
def get_audit(name: str, trial: int, svc: Service) -> AuditOut:
    """The trial's latest audit job and, once written, its audit summary."""
    found = svc.audit(name, trial)
    job = found.pop("job")
    return AuditOut(**found, job=JobOut.of(job) if job is not None else None)


@router.get("/jobs")
def list_jobs(
    svc: Service,
    state: Annotated[str | None, Query(description="only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobOut]:
    """Jobs, newest first."""
    if state is not None and state not in JOB_STATES:
        raise bad_request(f"state: expected one of {list(JOB_STATES)}, got {state!r}")
    states = (state,) if state is not None else None
    return [JobOut.of(record) for record in svc.store.jobs(states=states, limit=limit)]


@router.get("/jobs/{job_id}")
def get_job(job_id: int, svc: Service) -> JobOut:
    return JobOut.of(svc.job(job_id))


@router.get("/jobs/{job_id}/log")
def job_log(job_id: int, svc: Service, lines: Annotated[int, Query(ge=1, le=5000)] = 100) -> LogOut:
    """The last `lines` lines the job's process printed."""
    record, tail = svc.log(job_id, lines)
    return LogOut(job=JobOut.of(record), lines=tail)


@router.post("/jobs/{job_id}/stop", status_code=202)
def stop_job(job_id: int, svc: Service, who: Who) -> JobOut:
    """Stop any queued or running job (a search or an audit)."""
    record = svc.job(job_id)
    if not record.active:
        raise conflict(f"job {job_id}: is {record.state}; only queued or running jobs can be stopped")
    return JobOut.of(svc.queue.stop(record, who.name))
