"""The HTML of the service's pages: one layout and small builders; every value is escaped here."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from autopeft.serve.api_models import JobOut, StudyOut

STYLE = (
    "body{font-family:sans-serif;margin:16px;max-width:1300px}table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f4f4f4}"
    "nav a{margin-right:14px}.error{color:#a00;font-weight:bold;white-space:pre-wrap}"
    "pre{background:#f7f7f7;padding:8px;max-height:360px;overflow:auto}tr.front td{font-weight:bold}"
    "form.inline{display:inline}button{margin-right:6px}textarea{width:100%;font-family:monospace}"
)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def layout(title: str, body: str, script: str = "", scripts: tuple[str, ...] = ()) -> str:
    nav = (
        "<nav><a href='/'>studies</a><a href='/new'>new search</a><a href='/jobs'>jobs</a>"
        "<a href='/docs'>API</a></nav>"
    )
    tail = "".join(f"<script src='{esc(source)}'></script>" for source in scripts)
    tail += f"<script>{script}</script>" if script else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)} - autopeft</title>"
        f"<style>{STYLE}</style></head><body>{nav}<h1>{esc(title)}</h1>{body}{tail}</body></html>"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], row_classes: Sequence[str] = ()) -> str:
    """A table whose cells are already HTML (escape values with `esc` first)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = ""
    for index, row in enumerate(rows):
        css = f" class='{row_classes[index]}'" if index < len(row_classes) and row_classes[index] else ""
        body += f"<tr{css}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def studies_table(studies: Sequence[StudyOut]) -> str:
    if not studies:
        return "<p>No studies yet. <a href='/new'>Start a search</a>.</p>"
    rows = [
        [
            f"<a href='/studies/{esc(s.name)}'>{esc(s.name)}</a>",
            esc(s.state),
            f"{s.trials_done} / {esc(s.trials_asked or '?')}",
            esc(_best(s)),
            number(s.hypervolume),
            esc(s.backend),
            esc(s.started_at or ""),
        ]
        for s in studies
    ]
    return table(["study", "state", "trials done / asked", "best", "hypervolume", "backend", "started"], rows)


def _best(study: StudyOut) -> str:
    if not study.best:
        return ""
    values = ", ".join(f"{k}={number(v)}" for k, v in study.best["values"].items())
    return f"trial {study.best['trial']}: {values}"


def trials_table(rows: Sequence[dict[str, Any]], objectives: Sequence[str]) -> str:
    if not rows:
        return "<p id='no-trials'>No trials yet.</p>"
    cells = [
        [
            esc(r["number"]),
            esc(r["state"]),
            *(number(r["values"].get(name)) for name in objectives),
            esc("yes" if r["on_front"] else ""),
            esc(r["summary"]),
            esc(r["reason"]),
        ]
        for r in rows
    ]
    classes = ["front" if r["on_front"] else "" for r in rows]
    return (
        "<div id='trials'>"
        + table(["trial", "state", *objectives, "on front", "plan", "reason"], cells, classes)
        + "</div>"
    )


def jobs_table(jobs: Sequence[JobOut]) -> str:
    if not jobs:
        return "<p>No jobs yet.</p>"
    rows = [
        [
            f"<a href='/jobs/{j.id}'>{j.id}</a>",
            esc(j.kind),
            f"<a href='/studies/{esc(j.study)}'>{esc(j.study)}</a>",
            esc(j.state + (" (stopping)" if j.stopping else "")),
            esc(j.owner),
            esc(j.created_at),
            esc(j.finished_at or ""),
            esc(j.reason),
        ]
        for j in jobs
    ]
    return table(["job", "kind", "study", "state", "owner", "created", "finished", "reason"], rows)


def button(action: str, label: str, confirm: str = "") -> str:
    check = f" onsubmit=\"return confirm('{esc(confirm)}')\"" if confirm else ""
    return (
        f"<form class='inline' method='post' action='{esc(action)}'{check}>"
        f"<button type='submit' id='{esc(label.lower())}-button'>{esc(label)}</button></form>"
    )


def search_form(name: str = "", trials: str = "", space: str = "", error: str = "") -> str:
    shown = f"<p class='error' id='form-error'>{esc(error)}</p>" if error else ""
    return (
        f"{shown}<form method='post' action='/new'>"
        f"<p><label>name <input name='name' id='name' value='{esc(name)}' required></label> "
        f"<label>trials <input name='trials' id='trials' value='{esc(trials)}' size='5'></label></p>"
        "<p><label>search-space YAML<br><textarea name='space' id='space' rows='24'>"
        f"{esc(space)}</textarea></label></p><button type='submit' id='launch'>launch</button></form>"
    )
