"""The browser pages: studies, a new-search form, a study page (trials, front, stop/resume/delete, log tail)
and jobs. Plain server-rendered HTML; the study page re-reads its live part every two seconds.

The pages call the same `SearchService` as the API, so they validate the same way; a refused form is shown
again with its one-line message and the text the user typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast
from urllib.parse import parse_qs

import plotly
import plotly.io as pio
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from autopeft.dashboards.pareto_plot import pareto_figure, pareto_info
from autopeft.objectives import Direction
from autopeft.serve import page_html
from autopeft.serve.api_models import JobOut, SearchCreate, StudyOut
from autopeft.serve.page_html import esc, layout
from autopeft.serve.search_service import SearchService
from autopeft.serve.service_error import ServiceError, bad_request, not_found, validation_message
from autopeft.serve.studies import StudyFacts, check_name

router = APIRouter(include_in_schema=False)
LOG_LINES = 40
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
REFRESH = (
    "const live=document.getElementById('live');"
    "function draw(){const d=document.getElementById('pareto-data');"
    "if(d&&window.Plotly){Plotly.react('pareto',JSON.parse(d.textContent));}}"
    "draw();setInterval(async()=>{try{const r=await fetch(location.pathname+'/live');"
    "if(r.ok){live.innerHTML=await r.text();draw();}}catch(e){}},2000);"
)


def _service(request: Request) -> SearchService:
    return request.app.state.service


def _error_page(error: ServiceError) -> HTMLResponse:
    body = f"<p class='error' id='error'>{esc(error.message)}</p><p><a href='/'>back to the studies</a></p>"
    return HTMLResponse(layout("refused", body), status_code=error.status)


@router.get("/", response_class=HTMLResponse)
def studies_page(request: Request) -> str:
    studies = [StudyOut.of(s) for s in _service(request).catalog.summaries()]
    return layout("studies", page_html.studies_table(studies))


@router.get("/new", response_class=HTMLResponse)
def new_search_page() -> str:
    return layout("new search", page_html.search_form())


@router.post("/new")
async def launch_search(request: Request) -> Response:
    form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    name, trials, space = form.get("name", "").strip(), form.get("trials", "").strip(), form.get("space", "")
    try:
        if trials and not trials.isdigit():
            raise bad_request(f"trials: expected a whole number >= 1, got {trials!r}")
        body = SearchCreate(name=name, space=space, trials=int(trials) if trials else None)
        await run_in_threadpool(_service(request).create_search, body, request.state.caller)
    except ValidationError as error:
        page = layout(
            "new search", page_html.search_form(name, trials, space, validation_message(error.errors()))
        )
        return HTMLResponse(page, status_code=422)
    except ServiceError as error:
        page = layout("new search", page_html.search_form(name, trials, space, error.message))
        return HTMLResponse(page, status_code=error.status)
    return RedirectResponse(f"/studies/{name}", status_code=303)


@router.get("/studies/{name}", response_class=HTMLResponse)
def study_page(name: str, request: Request) -> Response:
    try:
        live = _live(name, _service(request))
    except ServiceError as error:
        return _error_page(error)
    buttons = (
        page_html.button(f"/studies/{name}/stop", "Stop")
        + page_html.button(f"/studies/{name}/resume", "Resume")
        + page_html.button(f"/studies/{name}/delete", "Delete", f"Delete study {name} and its run directory?")
    )
    links = (
        f"<p><a href='/studies/{esc(name)}/report'>static dashboard (report.html)</a> &middot; live explorer: "
        f"<code>autopeft dashboard {esc(_service(request).settings.root / name)}</code></p>"
    )
    body = f"<p>{buttons}</p>{links}<div id='live'>{live}</div>"
    return HTMLResponse(layout(f"study {name}", body, REFRESH, scripts=("/static/plotly.min.js",)))


@router.get("/studies/{name}/live", response_class=HTMLResponse)
def study_live(name: str, request: Request) -> Response:
    try:
        return HTMLResponse(_live(name, _service(request)))
    except ServiceError as error:
        return HTMLResponse(f"<p class='error'>{esc(error.message)}</p>", status_code=error.status)


def _live(name: str, service: SearchService) -> str:
    """The part of the study page that refreshes: state, figure, trials, log tail."""
    summary = service.catalog.summary(name)
    shown, job = StudyOut.of(summary), summary.job
    state = f"<p>state: <b id='state'>{esc(shown.state)}</b>"
    state += " (stopping)" if shown.job is not None and shown.job.stopping else ""
    state += f" &middot; trials done: <b id='done'>{shown.trials_done}</b> / {esc(shown.trials_asked or '?')}"
    state += f" &middot; hypervolume: {page_html.number(shown.hypervolume)}</p>"
    reason = f"<p class='error'>{esc(job.reason)}</p>" if job is not None and job.reason else ""
    log = ""
    if job is not None:
        _, lines = service.log(job.id, LOG_LINES)
        log = f"<h3>log of job {job.id}</h3><pre id='log'>{esc(chr(10).join(lines))}</pre>"
    rows = [row.to_dict() for row in summary.facts.rows]
    table = page_html.trials_table(rows, shown.objectives)
    return state + reason + _pareto(summary.facts) + table + log


def _pareto(facts: StudyFacts) -> str:
    """The dashboard's Pareto figure of the first two objectives (cost across, quality up), as JSON to draw."""
    names, directions = facts.objectives, cast("tuple[Direction, ...]", facts.directions)
    if len(names) < 2 or not any(row.values for row in facts.rows):
        return ""
    figure = pareto_figure(pareto_info(facts.rows, names, directions, names[1], names[0]))
    data = pio.to_json(figure, validate=False)  # escapes '<' and '/': no early '</script>'
    return f"<div id='pareto'></div><script type='application/json' id='pareto-data'>{data}</script>"


@router.post("/studies/{name}/{action}")
def study_action(name: str, action: str, request: Request) -> Response:
    service, caller = _service(request), request.state.caller
    try:
        if action == "stop":
            service.stop_search(name, caller)
        elif action == "resume":
            service.resume_search(name, None, caller)
        elif action == "delete":
            service.delete_search(name)
            return RedirectResponse("/", status_code=303)
        else:
            raise not_found(f"no action '{action}'; expected stop, resume or delete")
    except ServiceError as error:
        return _error_page(error)
    return RedirectResponse(f"/studies/{name}", status_code=303)


@router.get("/studies/{name}/report")
def study_report(name: str, request: Request) -> Response:
    check_name(name)
    report = _service(request).catalog.run_dir(name).root / "report.html"
    if not report.is_file():
        return _error_page(
            not_found(f"study '{name}': no report.html yet (it is written when a search ends)")
        )
    return FileResponse(report, media_type="text/html")


@router.get("/static/plotly.min.js")
def plotly_script() -> FileResponse:
    """plotly.js from the installed plotly package (never a download), for the study page's figure."""
    return FileResponse(PLOTLY_JS, media_type="text/javascript")


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> str:
    jobs = [JobOut.of(r) for r in _service(request).store.jobs(limit=200)]
    return layout("jobs", page_html.jobs_table(jobs))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: int, request: Request) -> Response:
    try:
        record, lines = _service(request).log(job_id, 400)
    except ServiceError as error:
        return _error_page(error)
    job = JobOut.of(record)
    body = page_html.jobs_table([job]) + f"<p><code>{esc(job.command)}</code></p>"
    body += f"<pre id='log'>{esc(chr(10).join(lines))}</pre>"
    return HTMLResponse(layout(f"job {job_id}", body))
