"""Hypervolume over trials: how much of the objective space the feasible front dominates after each trial.

Objectives are turned into minimisation and scaled to [0, 1] by their range over the study's feasible complete
trials, and the reference point is 1.1 on every axis, so the curve is comparable across objectives with
different units (task metric vs parameter counts). The scaling is redone on each refresh, so values may shift
a little while a search is running; the shape of the curve (where it stops rising) is what matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from autopeft.objectives import Direction
from autopeft.pareto import TrialRow, dominates
from autopeft.pareto.hypervolume import hypervolume

REFERENCE = 1.1

Point = tuple[float, ...]


@dataclass(frozen=True)
class HypervolumeInfo:
    """Hypervolume of the feasible front after each complete trial, by trial number."""

    numbers: tuple[int, ...]
    values: tuple[float, ...]
    objective_count: int


def hypervolume_info(
    rows: Sequence[TrialRow], names: Sequence[str], directions: Sequence[Direction]
) -> HypervolumeInfo:
    """Replay the trials in order, keeping the feasible front, and measure its hypervolume after each one."""
    feasible = [r for r in sorted(rows, key=lambda r: r.number) if r.values and r.feasible]
    scaled = _scaled(feasible, names, directions)
    front: list[Point] = []
    numbers, values = [], []
    for row, point in zip(feasible, scaled, strict=True):
        if not any(dominates(other, point, ["minimize"] * len(names)) for other in front):
            front = [p for p in front if not dominates(point, p, ["minimize"] * len(names))] + [point]
        numbers.append(row.number)
        values.append(hypervolume(front, (REFERENCE,) * len(names)))
    return HypervolumeInfo(tuple(numbers), tuple(values), len(names))


def _scaled(rows: Sequence[TrialRow], names: Sequence[str], directions: Sequence[Direction]) -> list[Point]:
    """Each trial's objectives as minimisation, scaled to [0, 1] over `rows` (a constant objective maps to 0)."""
    signs = [-1.0 if d == "maximize" else 1.0 for d in directions]
    raw = [[s * r.values[name] for s, name in zip(signs, names, strict=True)] for r in rows]
    if not raw:
        return []
    low = [min(column) for column in zip(*raw, strict=True)]
    span = [max(column) - lo or 1.0 for column, lo in zip(zip(*raw, strict=True), low, strict=True)]
    return [tuple((x - lo) / s for x, lo, s in zip(point, low, span, strict=True)) for point in raw]


def hypervolume_figure(info: HypervolumeInfo) -> go.Figure:
    """A step line of hypervolume against trial number."""
    figure = go.Figure(
        go.Scatter(
            x=list(info.numbers),
            y=list(info.values),
            mode="lines+markers",
            line={"shape": "hv"},
            name="hypervolume",
            hovertemplate="after trial %{x}: %{y:.4f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"Hypervolume of the feasible front ({info.objective_count} objectives scaled to [0, 1], "
        f"reference {REFERENCE})",
        xaxis_title="trial",
        yaxis_title="hypervolume",
        margin={"t": 50},
    )
    return figure
