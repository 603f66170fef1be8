"""The Dash app: study, Pareto front, hypervolume, two trials side by side, and the audit of the first.

Layout only; the callbacks that fill it live in `app_callbacks`. Every figure comes from the same
`*_info`/`*_figure` pairs as the static report, so the web app and report.html always agree.
"""

from __future__ import annotations

from dash import Dash, dcc, html
from dash.development.base_component import Component

from autopeft.dashboards.app_callbacks import register_callbacks
from autopeft.dashboards.run_source import RunSource

HIDDEN = {"display": "none"}
ROW = {"display": "flex", "gap": "12px", "flexWrap": "wrap"}
HALF = {"flex": "1 1 480px", "minWidth": "420px"}


def create_app(source: RunSource, refresh_seconds: float = 5.0) -> Dash:
    """A Dash app over `source`; it re-reads the storage every `refresh_seconds` to follow a running search."""
    # Dash documents update_title=None (keep the tab title during callbacks) but annotates it as str
    app = Dash(__name__, title="autopeft dashboard", update_title=None, serve_locally=True)  # type: ignore[arg-type]
    studies = source.study_names()
    app.layout = html.Div(
        style={"fontFamily": "sans-serif", "margin": "12px"},
        children=[
            dcc.Interval(id="refresh", interval=int(refresh_seconds * 1000)),
            html.H2("autopeft: Pareto explorer"),
            _study_bar(studies, source.default_study()),
            html.Div(id="study-summary", style={"margin": "6px 0"}),
            html.Div(
                style=ROW,
                children=[
                    html.Div(style=HALF, children=[dcc.Graph(id="pareto")]),
                    html.Div(style=HALF, children=[dcc.Graph(id="hypervolume")]),
                ],
            ),
            html.Div(id="parallel-box", style=HIDDEN, children=[dcc.Graph(id="parallel")]),
            html.H3("Trials"),
            html.Div(
                style=ROW,
                children=[_trial_column("a", "trial (click a point)"), _trial_column("b", "compare with")],
            ),
            html.H3("Audit of the selected trial"),
            _audit_section(),
        ],
    )
    register_callbacks(app, source)
    return app


def _study_bar(studies: list[str], default: str | None) -> html.Div:
    def labelled(label: str, component: Component) -> html.Div:
        return html.Div(style={"minWidth": "220px"}, children=[html.Label(label), component])

    return html.Div(
        style=ROW,
        children=[
            labelled("study", dcc.Dropdown(id="study", options=studies, value=default, clearable=False)),
            labelled("x objective", dcc.Dropdown(id="x-objective", clearable=False)),
            labelled("y objective", dcc.Dropdown(id="y-objective", clearable=False)),
        ],
    )


def _trial_column(side: str, label: str) -> html.Div:
    return html.Div(
        style=HALF,
        children=[
            html.Label(label),
            dcc.Dropdown(id=f"trial-{side}", placeholder="choose a trial"),
            html.Div(id=f"details-{side}"),
            html.Div(
                id=f"graphs-{side}",
                style=HIDDEN,
                children=[
                    dcc.Graph(id=f"plan-{side}"),
                    dcc.Graph(id=f"curve-{side}"),
                ],
            ),
        ],
    )


def _audit_section() -> html.Div:
    return html.Div(
        children=[
            html.Div(
                style=ROW,
                children=[
                    html.Div(id="audit-status", style={"flex": "1 1 auto"}),
                    html.Button("Compute audit", id="audit-compute", n_clicks=0, style=HIDDEN),
                ],
            ),
            dcc.Loading(html.Div(id="audit-busy")),
            html.Div(
                id="audit-graphs",
                style=HIDDEN,
                children=[
                    dcc.Graph(id="intruders"),
                    html.Label("matrix"),
                    dcc.Dropdown(id="audit-matrix", clearable=False),
                    html.Div(
                        style=ROW,
                        children=[
                            html.Div(style=HALF, children=[dcc.Graph(id="spectra")]),
                            html.Div(style=HALF, children=[dcc.Graph(id="entanglement")]),
                        ],
                    ),
                ],
            ),
        ]
    )
