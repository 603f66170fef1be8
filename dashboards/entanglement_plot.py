"""The entanglement profile of one update ΔW: entropy at every cut, against the volume-law ceiling and Page value.

Drawn from the audit's `details[matrix]["entanglement"]` (ANALYSIS.md §4). Under the `row_then_col` ordering the
centre cut is ΔW itself, so a rank-r LoRA update must dip to at most ln r there; the ln r line makes that visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import plotly.graph_objects as go

from autopeft.dashboards.audit_file import AuditFile


@dataclass(frozen=True)
class EntanglementInfo:
    """Entropies S(ℓ), ceilings and Page values at cuts ℓ = 1..N−1 of one matrix, or an empty profile."""

    matrix: str
    entropies: tuple[float, ...]
    ceilings: tuple[float, ...]
    page: tuple[float, ...]
    centre: int
    ordering: str
    ln_rank: float


def entanglement_info(audit: AuditFile, matrix: str) -> EntanglementInfo:
    """The stored profile of `matrix`; empty when the audit computed none (untouched matrix or option off)."""
    profile = (audit.details.get(matrix) or {}).get("entanglement") or {}
    delta = audit.row(matrix, "delta") or {}
    ln_rank = delta.get("ln_rank")
    return EntanglementInfo(
        matrix,
        tuple(profile.get("entropies", ())),
        tuple(profile.get("ceilings", ())),
        tuple(profile.get("page", ())),
        int(profile.get("centre", 0)),
        str(profile.get("ordering", "")),
        math.nan if ln_rank is None else float(ln_rank),
    )


def entanglement_figure(info: EntanglementInfo) -> go.Figure:
    """S(ℓ) with the ceiling and the Page value, the centre cut marked and ln r drawn for LoRA updates."""
    figure = go.Figure()
    cuts = list(range(1, len(info.entropies) + 1))
    for name, values, style in (
        ("S(ℓ) of ΔW", info.entropies, {"color": "#ff7f0e", "width": 3}),
        ("volume-law ceiling", info.ceilings, {"color": "#7f7f7f", "dash": "dash"}),
        ("Page value (random)", info.page, {"color": "#2ca02c", "dash": "dot"}),
    ):
        figure.add_trace(go.Scatter(x=cuts, y=list(values), mode="lines+markers", name=name, line=style))
    if info.entropies and info.centre:
        figure.add_vline(x=info.centre, line={"color": "#444", "dash": "dot", "width": 1})
    if info.entropies and math.isfinite(info.ln_rank):
        figure.add_hline(
            y=info.ln_rank,
            line={"color": "#ff7f0e", "dash": "dot", "width": 1},
            annotation_text="ln r",
            annotation_position="top left",
        )
    title = (
        f"Entanglement profile of {info.matrix}<br><sup>{info.ordering}; dotted: centre cut and ln r</sup>"
        if info.entropies
        else f"{info.matrix}: no entanglement profile (matrix not updated)"
    )
    figure.update_layout(
        title=title,
        xaxis_title="cut ℓ",
        yaxis_title="entropy (nats)",
        margin={"t": 50},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure
