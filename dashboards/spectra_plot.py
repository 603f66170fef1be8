"""Singular value spectra of one audited matrix: base, fine-tuned and the update, on a log scale.

The audit JSON keeps metrics, not whole spectra (they would dominate its size on large models), so the spectra
of the one matrix a user picks are recomputed here from exactly the base (pruned by the recorded plan for a
Light-PEFT trial) and adapter recorded in the audit's `meta`, with the analysis package's own readers (same
pairing, orientation and LoRA scale). The audit's spectral norms are drawn as reference lines, so a
disagreement would be visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from autopeft.dashboards.audit_file import AuditedSources, AuditFile
from autopeft.errors import ConfigError

if TYPE_CHECKING:
    from autopeft.analysis.checkpoint import Checkpoint

KIND_COLOURS = {"base": "#7f7f7f", "ft": "#1f77b4", "delta": "#ff7f0e"}


@dataclass(frozen=True)
class SpectraInfo:
    """Singular values (descending) per kind for one matrix, and the audit's spectral norm per kind."""

    matrix: str
    spectra: dict[str, tuple[float, ...]]
    audited_norms: dict[str, float]


def spectra_info(audit: AuditFile, matrix: str) -> SpectraInfo:
    """Spectra of `matrix` recomputed from the audited base (pruned as it was for a Light-PEFT trial) and
    adapter; an unknown matrix, or sources that cannot be read back, is a `ConfigError`."""
    if audit.row(matrix, "base") is None:
        raise ConfigError(f"{audit.path}: no matrix named '{matrix}'")
    if not audit.meta.get("adapter"):
        raise ConfigError(f"{audit.path}: spectra need an adapter audit; this one compared full checkpoints")
    sources = audit.sources()
    config = audit.meta.get("config", {})
    spectra = _spectra(
        sources,
        matrix,
        bool(config.get("include_embeddings", False)),
        bool(config.get("split_fused", True)),
    )
    norms = {
        kind: float(row["spectral_norm"])
        for kind in spectra
        if (row := audit.row(matrix, kind)) is not None and row.get("spectral_norm") is not None
    }
    return SpectraInfo(matrix, spectra, norms)


@lru_cache(maxsize=32)
def _spectra(
    sources: AuditedSources, matrix: str, include_embeddings: bool, split_fused: bool
) -> dict[str, tuple[float, ...]]:
    """σ(W0), σ(W0 + s·BA) and σ(s·BA) in fp32; only the base for a matrix the adapter left alone.

    A base that lacks the matrix or does not fit the update (the files changed since the audit) is a
    `ConfigError` naming the matrix, not a shape error from torch.
    """
    from autopeft.analysis import read_adapter, singular_values
    from autopeft.analysis.adapter import update_factors
    from autopeft.analysis.naming import matrix_entries, read_matrix

    checkpoint = _base_checkpoint(sources)
    entry = matrix_entries(checkpoint, include_embeddings, split_fused)[0].get(matrix)
    if entry is None:
        raise ConfigError(f"{sources.base}: no matrix named '{matrix}'; re-run the audit")
    W0 = read_matrix(checkpoint, entry).float()
    spectra = {"base": tuple(singular_values(W0).tolist())}
    loaded = read_adapter(sources.adapter)
    update = next((u for u in loaded.updates if u.name == entry.module), None)
    if update is None:
        return spectra
    B, A = update_factors(loaded, update)
    B = B[entry.rows[0] : entry.rows[1]] if entry.rows else B
    delta = B.float() @ A.float()
    if delta.shape != W0.shape:
        raise ConfigError(
            f"{sources.adapter}: {matrix}: the update has shape {tuple(delta.shape)} but the base matrix "
            f"{tuple(W0.shape)}; re-run the audit"
        )
    spectra["ft"] = tuple(singular_values(W0 + delta).tolist())
    S_delta = singular_values(delta)
    spectra["delta"] = tuple(
        S_delta[S_delta > 1e-6 * S_delta.max()].tolist()
    )  # drop the exact zeros past rank r
    return spectra


@lru_cache(maxsize=2)
def _base_checkpoint(sources: AuditedSources) -> Checkpoint:
    """The audited base, opened once per audit: a Light-PEFT base is a whole model loaded and pruned, which a
    user clicking through matrices should not pay for on every click."""
    from autopeft.analysis import open_checkpoint

    return open_checkpoint(sources.load_base())


def spectra_figure(info: SpectraInfo) -> go.Figure:
    """One line per kind (index vs σ, log y), with the audited spectral norm of each kind dashed."""
    figure = go.Figure()
    labels = {"base": "base W0", "ft": "fine-tuned Wt", "delta": "update ΔW"}
    for kind, values in info.spectra.items():
        figure.add_trace(
            go.Scatter(
                x=list(range(1, len(values) + 1)),
                y=list(values),
                mode="lines",
                name=labels[kind],
                line={"color": KIND_COLOURS[kind]},
            )
        )
    for kind, norm in info.audited_norms.items():
        figure.add_hline(y=norm, line={"color": KIND_COLOURS[kind], "dash": "dot", "width": 1})
    figure.update_layout(
        title=f"Singular values of {info.matrix}<br><sup>dotted: the audit's spectral norms</sup>",
        xaxis_title="index i",
        yaxis_title="σ_i",
        yaxis_type="log",
        margin={"t": 50},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure
