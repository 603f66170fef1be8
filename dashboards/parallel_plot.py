"""Parallel coordinates for studies with three or more objectives, where a 2-D Pareto plot shows only a slice.

One line per complete trial, one axis per objective plus the trial number; lines on the front are coloured,
the others grey, so the trade-offs of the front stay readable however many objectives there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from autopeft.objectives import Direction
from autopeft.pareto import TrialRow


@dataclass(frozen=True)
class ParallelInfo:
    """Objective columns of the complete trials, with a front flag per trial."""

    names: tuple[str, ...]
    directions: tuple[Direction, ...]
    numbers: tuple[int, ...]
    columns: tuple[tuple[float, ...], ...]
    on_front: tuple[bool, ...]


def parallel_info(
    rows: Sequence[TrialRow], names: Sequence[str], directions: Sequence[Direction]
) -> ParallelInfo:
    """The complete trials as one column per objective."""
    complete = [r for r in rows if r.values]
    return ParallelInfo(
        names=tuple(names),
        directions=tuple(directions),
        numbers=tuple(r.number for r in complete),
        columns=tuple(tuple(r.values[name] for r in complete) for name in names),
        on_front=tuple(r.on_front for r in complete),
    )


def parallel_figure(info: ParallelInfo) -> go.Figure:
    """Parallel coordinates; each axis is labelled with its direction (↑ maximise, ↓ minimise)."""
    arrows = {"maximize": "↑", "minimize": "↓"}
    dimensions = [{"label": "trial", "values": list(info.numbers)}]
    dimensions += [
        {"label": f"{name} {arrows[direction]}", "values": list(column)}
        for name, direction, column in zip(info.names, info.directions, info.columns, strict=True)
    ]
    line = {
        "color": [1 if front else 0 for front in info.on_front],
        "colorscale": [[0, "#c8ced6"], [1, "#1f77b4"]],
        "cmin": 0,
        "cmax": 1,
    }
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line=line))
    figure.update_layout(title=f"All {len(info.names)} objectives (blue: Pareto front)", margin={"t": 80})
    return figure
