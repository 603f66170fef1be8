"""Intruder dimensions per matrix as a layer x module heatmap (ANALYSIS.md §3).

Counts come from the audit's `ft` rows (`n_intruders` at the audit's k and ε); matrices the adapter did not
touch have no `ft` row and are shown blank rather than as zero, since they were not tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from autopeft.dashboards.audit_file import AuditFile


@dataclass(frozen=True)
class IntruderInfo:
    """Intruder counts per (module, layer); None where the matrix was not fine-tuned."""

    layers: tuple[int, ...]
    modules: tuple[str, ...]
    counts: tuple[tuple[int | None, ...], ...]
    k: int
    epsilon: float
    total: int


def intruder_info(audit: AuditFile) -> IntruderInfo:
    """Lay the `ft` rows' intruder counts on the (module type, layer) grid of every audited matrix."""
    in_blocks = [r for r in audit.rows if r["kind"] == "base" and r.get("layer") is not None]
    layers = tuple(sorted({int(r["layer"]) for r in in_blocks}))
    modules = tuple(dict.fromkeys(str(r["module"]) for r in in_blocks))
    found = {
        (str(r["module"]), int(r["layer"])): int(r["n_intruders"])
        for r in audit.rows
        if r["kind"] == "ft" and r.get("layer") is not None and "n_intruders" in r
    }
    counts = tuple(tuple(found.get((m, layer)) for layer in layers) for m in modules)
    config = audit.meta.get("config", {})
    return IntruderInfo(
        layers,
        modules,
        counts,
        int(config.get("k", 10)),
        float(config.get("epsilon", 0.5)),
        sum(found.values()),
    )


def intruder_figure(info: IntruderInfo) -> go.Figure:
    """Heatmap of counts; blank cells are matrices the adapter left alone."""
    text = [["" if c is None else str(c) for c in row] for row in info.counts]
    figure = go.Figure(
        go.Heatmap(
            z=[list(row) for row in info.counts],
            x=[f"L{layer}" for layer in info.layers],
            y=list(info.modules),
            text=text,
            texttemplate="%{text}",
            colorscale="Reds",
            zmin=0,
            zmax=max(1, info.total),
            xgap=2,
            ygap=2,
            colorbar={"title": "intruders"},
            hovertemplate="%{y} %{x}: %{z} intruders<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"Intruder dimensions (k={info.k}, ε={info.epsilon:g}): {info.total} in the model",
        xaxis_title="layer",
        yaxis_title="module",
        yaxis={"autorange": "reversed"},
        margin={"t": 50},
    )
    return figure
