"""The callbacks of the Dash app: each turns the user's choices into `*_info` then `*_figure`.

Requests carry only a study name (checked against the storage), objective names, trial numbers and a matrix
name (checked against the audit): never a file path. Bad choices show their one-line message in the page.
"""

from __future__ import annotations

import textwrap
from html import escape
from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, html, no_update

from autopeft.analysis.errors import AnalysisError
from autopeft.dashboards.audit_file import AuditFile, compute_audit, load_audit
from autopeft.dashboards.entanglement_plot import entanglement_figure, entanglement_info
from autopeft.dashboards.hypervolume_plot import hypervolume_figure, hypervolume_info
from autopeft.dashboards.intruder_plot import intruder_figure, intruder_info
from autopeft.dashboards.learning_curve import curve_figure, curve_info
from autopeft.dashboards.parallel_plot import parallel_figure, parallel_info
from autopeft.dashboards.pareto_plot import pareto_figure, pareto_info
from autopeft.dashboards.plan_heatmap import plan_heatmap_figure, plan_heatmap_info
from autopeft.dashboards.run_source import RunSource
from autopeft.dashboards.spectra_plot import spectra_figure, spectra_info
from autopeft.dashboards.trial_details import TrialDetails, trial_details
from autopeft.errors import AutopeftError

SHOWN: dict[str, str] = {}
HIDDEN = {"display": "none"}
MONO = {"fontFamily": "monospace", "background": "#f4f4f4", "padding": "6px", "whiteSpace": "pre-wrap"}


def register_callbacks(app: Dash, source: RunSource) -> None:
    """Wire every view of the layout in `app` to `source`."""
    _register_study_views(app, source)
    for side in ("a", "b"):
        _register_trial_view(app, source, side)
    _register_audit_views(app, source)


def _register_study_views(app: Dash, source: RunSource) -> None:
    @app.callback(
        Output("x-objective", "options"),
        Output("x-objective", "value"),
        Output("y-objective", "options"),
        Output("y-objective", "value"),
        Input("study", "value"),
    )
    def objective_choices(study_name: str) -> tuple[list[str], str, list[str], str]:
        names = list(source.objectives(source.study(study_name)).names)
        return names, names[0], names, names[min(1, len(names) - 1)]

    @app.callback(
        Output("pareto", "figure"),
        Output("hypervolume", "figure"),
        Output("parallel", "figure"),
        Output("parallel-box", "style"),
        Output("study-summary", "children"),
        Output("trial-a", "options"),
        Output("trial-b", "options"),
        Input("study", "value"),
        Input("x-objective", "value"),
        Input("y-objective", "value"),
        Input("refresh", "n_intervals"),
    )
    def study_views(
        study_name: str, x_name: str | None, y_name: str | None, _: int | None
    ) -> tuple[Any, ...]:
        study = source.study(study_name)
        objectives = source.objectives(study)
        rows = source.rows(study)
        names, directions = objectives.names, objectives.directions
        pareto = pareto_figure(
            pareto_info(rows, names, directions, x_name or names[0], y_name or names[min(1, len(names) - 1)])
        )
        many = len(names) >= 3
        parallel = parallel_figure(parallel_info(rows, names, directions)) if many else go.Figure()
        complete = sum(1 for r in rows if r.values)
        summary = (
            f"{study_name}: {len(rows)} trials, {complete} complete, "
            f"{sum(r.on_front for r in rows)} on the Pareto front; objectives "
            + ", ".join(f"{n} ({d})" for n, d in zip(names, directions, strict=True))
        )
        options = [{"label": f"trial {r.number} ({r.state}) {r.summary}", "value": r.number} for r in rows]
        return (
            pareto,
            hypervolume_figure(hypervolume_info(rows, names, directions)),
            parallel,
            SHOWN if many else HIDDEN,
            summary,
            options,
            options,
        )

    @app.callback(Output("trial-a", "value"), Input("pareto", "clickData"), prevent_initial_call=True)
    def select_clicked(click: dict[str, Any] | None) -> Any:
        points = (click or {}).get("points") or []
        return points[0].get("customdata", no_update) if points else no_update


def _register_trial_view(app: Dash, source: RunSource, side: str) -> None:
    @app.callback(
        Output(f"details-{side}", "children"),
        Output(f"plan-{side}", "figure"),
        Output(f"curve-{side}", "figure"),
        Output(f"graphs-{side}", "style"),
        Input(f"trial-{side}", "value"),
        Input("refresh", "n_intervals"),
        State("study", "value"),
    )
    def trial_view(number: int | None, _: int | None, study_name: str) -> tuple[Any, ...]:
        if number is None:
            return "", go.Figure(), go.Figure(), HIDDEN
        try:
            details = trial_details(source, source.study(study_name), int(number))
        except AutopeftError as error:
            return html.Div(str(error), className="error"), go.Figure(), go.Figure(), HIDDEN
        title = f"trial {details.number}"
        plan = (
            plan_heatmap_figure(plan_heatmap_info(details.plan, details.adapter_config, title))
            if details.plan
            else go.Figure()
        )
        curve = curve_figure(curve_info(details.curve, f"{title} learning curve"))
        return _details_block(details), plan, curve, SHOWN


def _details_block(details: TrialDetails) -> html.Div:
    """State, objective values, measurements, constraint status and the export command of one trial."""
    measured = {**details.values, **{k: v for k, v in details.metrics.items() if k not in details.values}}
    rows = [html.Tr([html.Td(name), html.Td(f"{value:.6g}")]) for name, value in measured.items()]
    children: list[Any] = [
        html.Div(
            f"trial {details.number}: {details.state}"
            + (f" ({details.reason})" if details.reason else "")
            + ("" if details.feasible else "; violates the parameter budget"),
            className="trial-state",
        ),
        html.Div(details.summary),
        html.Table(rows, className="trial-metrics"),
    ]
    if details.method_reports:
        children.append(html.Pre(str(details.method_reports), style=MONO))
    if details.export_command:
        children += [
            html.Div("export:"),
            html.Code(details.export_command, className="export-command", style=MONO),
        ]
    return html.Div(children)


def _register_audit_views(app: Dash, source: RunSource) -> None:
    @app.callback(
        Output("audit-status", "children"),
        Output("audit-compute", "style"),
        Output("audit-graphs", "style"),
        Output("intruders", "figure"),
        Output("audit-matrix", "options"),
        Output("audit-matrix", "value"),
        Output("audit-busy", "children"),
        Input("trial-a", "value"),
        Input("audit-compute", "n_clicks"),
        State("study", "value"),
    )
    def audit_view(number: int | None, _: int, study_name: str) -> tuple[Any, ...]:
        empty: tuple[Any, ...] = (HIDDEN, HIDDEN, go.Figure(), [], None, "")
        if number is None:
            return ("Choose a trial to see its audit.", *empty)
        study = source.study(study_name)
        folder = source.trial_dir(study, int(number))
        if folder is None or source.run_dir is None:
            return ("Audits need the run directory: start the dashboard with RUN_DIR.", *empty)
        try:
            if ctx.triggered_id == "audit-compute":
                compute_audit(source.run_dir, int(number))
            audit = load_audit(source.run_dir, int(number))
        except (AutopeftError, AnalysisError) as error:
            return (f"audit failed: {error}", SHOWN, *empty[1:])
        if audit is None:
            return (
                (
                    f"Trial {number} has no audit yet: press the button, or run "
                    f"`autopeft audit {folder.parents[1]} --trial {number}`."
                ),
                {},
                *empty[1:],
            )
        return _audit_outputs(audit, int(number))

    @app.callback(
        Output("spectra", "figure"),
        Output("entanglement", "figure"),
        Input("audit-matrix", "value"),
        State("trial-a", "value"),
        State("study", "value"),
    )
    def matrix_views(matrix: str | None, number: int | None, study_name: str) -> tuple[go.Figure, go.Figure]:
        if matrix is None or number is None or source.run_dir is None:
            return go.Figure(), go.Figure()
        try:
            in_run = source.trial_dir(source.study(study_name), int(number)) is not None
            audit = load_audit(source.run_dir, int(number)) if in_run else None
        except AutopeftError as error:
            return _message_figure(str(error)), _message_figure(str(error))
        if audit is None:
            return go.Figure(), go.Figure()
        try:
            spectra = spectra_figure(spectra_info(audit, matrix))
        except (AutopeftError, AnalysisError) as error:
            spectra = _message_figure(f"Spectra of {matrix}: {error}")
        return spectra, entanglement_figure(entanglement_info(audit, matrix))


def _message_figure(message: str) -> go.Figure:
    """An empty figure whose title is `message`: how a view that cannot be drawn says why, in its place."""
    figure = go.Figure()
    figure.update_layout(
        title={
            "text": "<br>".join(textwrap.wrap(escape(message), 90)),
            "font": {"size": 13, "color": "#a00"},
        },
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return figure


def _audit_outputs(audit: AuditFile, number: int) -> tuple[Any, ...]:
    matrices = audit.adapted_matrices or [r["matrix"] for r in audit.rows if r["kind"] == "base"]
    info = intruder_info(audit)
    status = (
        f"Audit of trial {number}: {len(audit.adapted_matrices)} adapted matrices, "
        f"{info.total} intruder dimensions."
    )
    return (status, HIDDEN, SHOWN, intruder_figure(info), matrices, matrices[0] if matrices else None, "")
