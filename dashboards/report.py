"""The static report: one self-contained HTML file with the dashboard's figures, readable with no network.

plotly.js is embedded once in the page head; every figure comes from the same `*_info`/`*_figure` pairs as the
web app, is stored as JSON beside its div, and is drawn by one script at the end of the page, once every row it
shares has its final layout. A trial whose files cannot be read shows its problem in its own section. Clicking a
point of the Pareto plot jumps to that trial's section. `autopeft search` writes RUN_DIR/report.html at the end
of every study through `write_report`.
"""

from __future__ import annotations

import html
from pathlib import Path

import optuna
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from autopeft.analysis.errors import AnalysisError
from autopeft.dashboards.audit_file import AuditFile, load_audit
from autopeft.dashboards.entanglement_plot import entanglement_figure, entanglement_info
from autopeft.dashboards.hypervolume_plot import hypervolume_figure, hypervolume_info
from autopeft.dashboards.intruder_plot import intruder_figure, intruder_info
from autopeft.dashboards.learning_curve import curve_figure, curve_info
from autopeft.dashboards.parallel_plot import parallel_figure, parallel_info
from autopeft.dashboards.pareto_plot import pareto_figure, pareto_info
from autopeft.dashboards.plan_heatmap import plan_heatmap_figure, plan_heatmap_info
from autopeft.dashboards.run_source import RunSource
from autopeft.dashboards.spectra_plot import spectra_figure, spectra_info
from autopeft.dashboards.trial_details import trial_details
from autopeft.errors import AutopeftError
from autopeft.pareto import TrialRow
from autopeft.storage.atomic_files import write_text_atomic
from autopeft.storage.run_directory import RunDirectory

STYLE = """body{font-family:sans-serif;margin:16px;max-width:1400px}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}.row{display:flex;flex-wrap:wrap;gap:12px}
.row>div{flex:1 1 560px;min-width:0}section.trial{border-top:2px solid #ccc;margin-top:24px}
section.trial:target{background:#fffbe6}.problem{color:#a00}
code{background:#f4f4f4;padding:4px;display:block;white-space:pre-wrap}"""
DRAW_FIGURES = """<script>document.querySelectorAll('script.figure').forEach(function(s){
var f=JSON.parse(s.textContent);Plotly.newPlot(s.dataset.div,f.data,f.layout,{displaylogo:false,responsive:true});
});</script>"""
CLICK_TO_TRIAL = """<script>document.getElementById('pareto').on('plotly_click',function(e){
var n=e.points[0].customdata;if(n!==undefined){location.hash='trial-'+n;}});</script>"""


def write_report(run_dir: RunDirectory, out: Path) -> Path:
    """Write the report of `run_dir`'s study to `out` (atomically) and return `out`."""
    source = RunSource.open(run_dir.root)
    study = source.study(str(source.default_study()))
    write_text_atomic(Path(out), report_html(source, study))
    return Path(out)


def report_html(source: RunSource, study: optuna.Study) -> str:
    """The whole page: study views, a trial table, then one section per trial with a plan.

    A trial whose files cannot be read shows that one-line problem in its own section; the rest is written.
    """
    objectives = source.objectives(study)
    names, directions = objectives.names, objectives.directions
    rows = source.rows(study)
    figures = [
        _figure(
            pareto_figure(pareto_info(rows, names, directions, names[0], names[min(1, len(names) - 1)])),
            "pareto",
        ),
        _figure(hypervolume_figure(hypervolume_info(rows, names, directions)), "hypervolume"),
    ]
    if len(names) >= 3:
        figures.append(_figure(parallel_figure(parallel_info(rows, names, directions)), "parallel"))
    body = [
        f"<h1>autopeft report: {html.escape(study.study_name)}</h1>",
        (
            f"<p>{len(rows)} trials, {sum(1 for r in rows if r.values)} complete, "
            f"{sum(r.on_front for r in rows)} on the Pareto front.</p>"
        ),
        '<div class="row">' + "".join(f"<div>{f}</div>" for f in figures) + "</div>",
        _trial_table(rows, names),
        *(_trial_section(source, study, r.number) for r in sorted(rows, key=lambda r: r.number)),
    ]
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>autopeft report: "
        f"{html.escape(study.study_name)}</title><style>{STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>{''.join(body)}{DRAW_FIGURES}{CLICK_TO_TRIAL}"
        "</body></html>"
    )


def _figure(figure: go.Figure, div_id: str) -> str:
    """An empty div and the figure's JSON; `DRAW_FIGURES` draws every figure once the page is parsed.

    Plotting inline, as `plotly.io.to_html` does, sizes a figure while its flex row still holds only the figures
    before it, so the first of two figures side by side was laid out at the full row width and then covered
    by its neighbour: half of the Pareto plot was hidden.
    """
    data = pio.to_json(figure, validate=False)  # escapes '<' and '/', so no '</script>' can end the tag early
    return (
        f"<div id='{div_id}' class='plotly-graph-div'></div>"
        f"<script type='application/json' class='figure' data-div='{div_id}'>{data}</script>"
    )


def _trial_table(rows: list[TrialRow], names: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ("trial", "state", *names, "front", "plan"))
    lines = []
    for row in sorted(rows, key=lambda r: r.number):
        values = "".join(f"<td>{row.values[n]:.6g}</td>" if row.values else "<td></td>" for n in names)
        mark = "yes" if row.on_front else ("" if row.feasible else "over budget")
        lines.append(
            f"<tr><td><a href='#trial-{row.number}'>{row.number}</a></td><td>{row.state}</td>{values}"
            f"<td>{mark}</td><td style='text-align:left'>{html.escape(row.summary)}</td></tr>"
        )
    return f"<h2>Trials</h2><table class='trials'><tr>{head}</tr>{''.join(lines)}</table>"


def _trial_section(source: RunSource, study: optuna.Study, number: int) -> str:
    """Trial `number`'s section, or its one-line problem when its files are not what a trial writes."""
    try:
        details = trial_details(source, study, number)
    except AutopeftError as error:
        return _section(number, "files unreadable", f"<p class='problem'>{html.escape(str(error))}</p>")
    if not details.plan:
        return ""
    title = f"trial {number}"
    plan = plan_heatmap_figure(plan_heatmap_info(details.plan, details.adapter_config, title))
    curve = curve_figure(curve_info(details.curve, f"{title} learning curve"))
    measured = {**details.values, **details.metrics}
    metrics = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.6g}</td></tr>" for k, v in measured.items())
    parts = [f"<p>{html.escape(details.summary)}</p><table>{metrics}</table>"]
    if details.export_command:
        parts.append(f"<p>export:</p><code>{html.escape(details.export_command)}</code>")
    parts.append(
        '<div class="row">'
        + f"<div>{_figure(plan, f'plan-{number}')}</div>"
        + f"<div>{_figure(curve, f'curve-{number}')}</div></div>"
    )
    if source.run_dir is not None and details.folder is not None:  # audits live in the trial's folder
        parts.append(_audit_part(source.run_dir, number))
    state = details.state + (f" ({details.reason})" if details.reason else "")
    return _section(number, state, "".join(parts))


def _section(number: int, state: str, content: str) -> str:
    return (
        f"<section class='trial' id='trial-{number}'><h2>Trial {number}: {html.escape(state)}</h2>"
        f"{content}</section>"
    )


def _audit_part(run_dir: RunDirectory, number: int) -> str:
    """Intruder heatmap, and spectra plus entanglement of the adapted matrix with the most intruders; an audit
    that cannot be read, or whose spectra cannot be recomputed, shows its problem in their place."""
    try:
        audit = load_audit(run_dir, number)
    except AutopeftError as error:
        return f"<h3>Audit</h3><p class='problem'>{html.escape(str(error))}</p>"
    if audit is None:
        return (
            f"<p>No audit computed for this trial; run <tt>autopeft audit RUN_DIR --trial {number}</tt>.</p>"
        )
    figures = [_figure(intruder_figure(intruder_info(audit)), f"intruders-{number}")]
    adapted = audit.adapted_matrices
    if adapted:
        matrix = max(
            adapted, key=lambda m: ((audit.row(m, "ft") or {}).get("n_intruders") or 0, -adapted.index(m))
        )
        figures += [
            _spectra(audit, matrix, number),
            _figure(entanglement_figure(entanglement_info(audit, matrix)), f"entanglement-{number}"),
        ]
    return "<h3>Audit</h3><div class='row'>" + "".join(f"<div>{f}</div>" for f in figures) + "</div>"


def _spectra(audit: AuditFile, matrix: str, number: int) -> str:
    try:
        return _figure(spectra_figure(spectra_info(audit, matrix)), f"spectra-{number}")
    except (AutopeftError, AnalysisError) as error:
        return f"<p class='problem'>Spectra of {html.escape(matrix)}: {html.escape(str(error))}</p>"
