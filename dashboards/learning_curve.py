"""A trial's learning curve: the task metric and training loss at each dev evaluation.

The points are the intermediate values the trial reported (the `curve` user attribute, also in metrics.json).
Multi-objective Optuna studies cannot hold intermediate values, so the curve is read from there, not from
`trial.intermediate_values`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.subplots import make_subplots

CURVE_SERIES = ("task_metric", "train_loss")


@dataclass(frozen=True)
class CurveInfo:
    """Steps and the series measured at each of them."""

    title: str
    steps: tuple[float, ...]
    series: dict[str, tuple[float, ...]]


def curve_info(curve: Sequence[Mapping[str, float]], title: str = "learning curve") -> CurveInfo:
    """Collect the task metric and the training loss from the reported points, in step order."""
    points = sorted(curve, key=lambda p: p["step"])
    series = {
        name: tuple(float(p[name]) for p in points)
        for name in CURVE_SERIES
        if points and all(name in p for p in points)
    }
    return CurveInfo(title, tuple(float(p["step"]) for p in points), series)


def curve_figure(info: CurveInfo) -> go.Figure:
    """Task metric on the left axis, training loss on the right; an empty curve says so in the title."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    for name, values in info.series.items():
        figure.add_trace(
            go.Scatter(x=list(info.steps), y=list(values), mode="lines+markers", name=name),
            secondary_y=name == "train_loss",
        )
    title = info.title if info.steps else f"{info.title}: no evaluation reported"
    figure.update_layout(
        title=title, xaxis_title="step", margin={"t": 50}, legend={"orientation": "h", "y": -0.25}
    )
    figure.update_yaxes(title_text="task_metric", secondary_y=False)
    figure.update_yaxes(title_text="train_loss", secondary_y=True)
    return figure
