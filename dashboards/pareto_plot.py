"""The Pareto front of two objectives: one marker per complete trial, the front bright, the rest dimmed.

The front comes from `autopeft.pareto.trial_rows` (non-dominated over *all* objectives among feasible trials),
so with three or more objectives a front point may look dominated in a two-objective projection; the legend
says so. A dotted staircase traces the edge of the region the front dominates in the plane (a straight line
between two corners would claim points that neither corner dominates). Each marker carries its trial number
in `customdata`, which the web app reads on click and the static report uses to jump to the trial's section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from autopeft.errors import ConfigError
from autopeft.objectives import Direction
from autopeft.pareto import TrialRow

FRONT_COLOUR = "#1f77b4"
DOMINATED_COLOUR = "#9aa5b1"
INFEASIBLE_COLOUR = "#d62728"


@dataclass(frozen=True)
class ParetoPoint:
    """One complete trial in the plane of the two chosen objectives."""

    number: int
    x: float
    y: float
    on_front: bool
    feasible: bool
    summary: str


@dataclass(frozen=True)
class ParetoInfo:
    """What `pareto_figure` draws: the axes, their directions and the points."""

    x_name: str
    y_name: str
    x_direction: Direction
    y_direction: Direction
    points: tuple[ParetoPoint, ...]
    objective_count: int

    @property
    def staircase(self) -> list[ParetoPoint]:
        """The front points that no other front point dominates in this plane, sorted along x: the corners of
        the region the front dominates here. With three or more objectives the others lie inside that region."""
        front = [p for p in self.points if p.on_front]
        return sorted((p for p in front if not any(self._dominates(q, p) for q in front)), key=lambda p: p.x)

    @property
    def staircase_shape(self) -> str:
        """plotly's `line_shape` that traces the dominated region's edge between two corners sorted along x.

        When x is maximised, the point with the larger x is what dominates the stretch between two corners, so
        the edge rises (or falls) at the left corner first and then runs across at the right corner's height
        ('vh'); when x is minimised, the left corner dominates it and the edge runs across first ('hv').
        """
        return "vh" if self.x_direction == "maximize" else "hv"

    def _dominates(self, a: ParetoPoint, b: ParetoPoint) -> bool:
        """True when `a` is at least as good as `b` on both axes and better on one."""
        x_sign = 1 if self.x_direction == "maximize" else -1
        y_sign = 1 if self.y_direction == "maximize" else -1
        not_worse = x_sign * (a.x - b.x) >= 0 and y_sign * (a.y - b.y) >= 0
        return not_worse and (a.x, a.y) != (b.x, b.y)


def pareto_info(
    rows: Sequence[TrialRow], names: Sequence[str], directions: Sequence[Direction], x_name: str, y_name: str
) -> ParetoInfo:
    """Project the complete trials onto (`x_name`, `y_name`); an unknown name is a `ConfigError`."""
    for name in (x_name, y_name):
        if name not in names:
            raise ConfigError(f"objective '{name}' is not in this study; expected one of {list(names)}")
    direction = dict(zip(names, directions, strict=True))
    points = tuple(
        ParetoPoint(r.number, r.values[x_name], r.values[y_name], r.on_front, r.feasible, r.summary)
        for r in rows
        if r.values
    )
    return ParetoInfo(x_name, y_name, direction[x_name], direction[y_name], points, len(names))


def pareto_figure(info: ParetoInfo) -> go.Figure:
    """Scatter of front, dominated and infeasible trials, with the edge of the region the front dominates."""
    figure = go.Figure()
    corners = info.staircase
    if len(corners) > 1:
        figure.add_trace(
            go.Scatter(
                x=[p.x for p in corners],
                y=[p.y for p in corners],
                mode="lines",
                line={"color": FRONT_COLOUR, "width": 1, "dash": "dot", "shape": info.staircase_shape},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    groups = (
        (
            "Pareto front" + (" (all objectives)" if info.objective_count > 2 else ""),
            [p for p in info.points if p.on_front],
            {"color": FRONT_COLOUR, "size": 11, "opacity": 1.0},
        ),
        (
            "dominated",
            [p for p in info.points if p.feasible and not p.on_front],
            {"color": DOMINATED_COLOUR, "size": 8, "opacity": 0.4},
        ),
        (
            "violates a constraint",
            [p for p in info.points if not p.feasible],
            {"color": INFEASIBLE_COLOUR, "size": 9, "opacity": 0.8, "symbol": "x"},
        ),
    )
    for label, points, marker in groups:
        figure.add_trace(_marker_trace(label, points, marker, info))
    figure.update_layout(
        title=f"Pareto front: {info.x_name} ({info.x_direction}) vs {info.y_name} ({info.y_direction})",
        xaxis_title=info.x_name,
        yaxis_title=info.y_name,
        uirevision=f"{info.x_name}/{info.y_name}",
        clickmode="event",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50, "b": 40},
    )
    return figure


def _marker_trace(
    label: str, points: list[ParetoPoint], marker: dict[str, object], info: ParetoInfo
) -> go.Scatter:
    return go.Scatter(
        x=[p.x for p in points],
        y=[p.y for p in points],
        mode="markers",
        name=f"{label} ({len(points)})",
        marker=marker,
        customdata=[p.number for p in points],
        text=[f"trial {p.number}<br>{p.summary}" for p in points],
        hovertemplate=f"%{{text}}<br>{info.x_name}=%{{x:.4g}}<br>{info.y_name}=%{{y:.4g}}<extra></extra>",
    )
