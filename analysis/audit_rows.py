"""AuditRows: the audit table's rows, and the report's per-matrix details, built from computed spectra.

Every job gives a 'base', an 'ft' and a 'delta' row (or one 'base' row for a base-only matrix, one 'unmatched'
row for a tensor without a partner). Kept apart from the decompositions so that the dense and the LoRA route
fill exactly the same columns.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from autopeft.analysis.adapter import Adapter
from autopeft.analysis.checkpoint import Checkpoint
from autopeft.analysis.intruders import IntruderScores, count_intruders, epsilon_sweep
from autopeft.analysis.metrics import spectrum_metrics
from autopeft.analysis.naming import MatrixEntry, layer_index, module_type
from autopeft.analysis.noise_floor import noise_floor
from autopeft.analysis.pairing import DENSE, LORA, UNMATCHED, MatrixJob
from autopeft.analysis.spectra import effective_rank, stable_rank

if TYPE_CHECKING:
    from autopeft.analysis.audit import AuditConfig

FLOOR_COLUMNS = (
    "noise_sigma",
    "noise_tau",
    "n_above_floor",
    "energy_below_floor",
    "effective_rank_above_floor",
    "stable_rank_above_floor",
)


class AuditRows:
    """Builds rows for one comparison: `config` gives the intruder settings, `other` (the fine-tuned
    checkpoint or the adapter) the 'source' column."""

    def __init__(self, config: AuditConfig, other: Checkpoint | Adapter) -> None:
        self.config, self.other = config, other

    def row(self, job: MatrixJob, kind: str, metrics: tuple[dict[str, float], list[str]]) -> dict[str, Any]:
        """One table row from the spectrum metrics (values, reasons) of one of the job's matrices."""
        entry = _base_entry(job)
        shape = entry.shape
        values, reasons = metrics
        update = job.update
        return {
            "matrix": job.name,
            "layer": layer_index(job.name),
            "module": module_type(job.name),
            "kind": kind,
            "rows": shape[0],
            "cols": shape[1],
            "source": _source(job, self.other),
            "tall": shape[0] > shape[1],
            "scale": update.scale if update else math.nan,
            "lora_rank": update.rank if update else math.nan,
            "orientation_assumed": entry.orientation_assumed,
            "flag": entry.flag,
            **values,
            "reason": "; ".join(reasons),
        }

    def finetuned_row(
        self, job: MatrixJob, S: Tensor, scores: IntruderScores, frobenius: float | None
    ) -> dict[str, Any]:
        """The 'ft' row: spectrum metrics of Wt (`frobenius` is ‖Wt‖_F when S holds only the top values) and
        its intruder counts."""
        shape = _base_entry(job).shape
        row = self.row(job, "ft", spectrum_metrics(S.cpu(), shape, frobenius))
        row["n_intruders"] = count_intruders(scores.scores, self.config.epsilon)
        row["min_intruder_score"] = float(scores.scores.min())
        row["n_degenerate_top"] = int(scores.degenerate.sum())
        if self.config.sweep:
            row.update({f"intruders_eps_{eps:.2f}": n for eps, n in epsilon_sweep(scores.scores).items()})
        return row

    def delta_row(
        self,
        job: MatrixJob,
        S_d: Tensor,
        S_base: Tensor,
        stored_ft: Tensor | None,
        profile: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The 'delta' row: spectrum metrics of ΔW, its size relative to W0, its entanglement, and the
        noise-floor columns when the fine-tuned weights were stored in bf16/fp16 (`stored_ft`)."""
        shape = _base_entry(job).shape
        row = self.row(job, "delta", spectrum_metrics(S_d.cpu(), shape))
        base_norm = float(torch.linalg.vector_norm(S_base.double()))
        row["relative_update"] = row["frobenius_norm"] / base_norm if base_norm > 0 else math.nan
        row["entanglement_max"] = max(profile["entropies"]) if profile else math.nan
        row["entanglement_centre"] = row["energy_entropy"]
        row["ln_rank"] = math.log(job.update.rank) if job.update else math.nan
        row.update(_floor_columns(stored_ft, S_d.cpu(), shape))
        return row

    def details(self, scores: IntruderScores, profile: dict[str, Any] | None) -> dict[str, Any]:
        """The report's details for one matrix: every intruder score, and the entanglement profile if any."""
        intruders = {
            "k": self.config.k,
            "epsilon": self.config.epsilon,
            "scores": scores.scores.tolist(),
            "robust_scores": scores.robust.tolist(),
            "degenerate": scores.degenerate.tolist(),
            "singular_values": scores.values.tolist(),
            "epsilon_sweep": epsilon_sweep(scores.scores),
        }
        return {"intruders": intruders, "entanglement": profile}


def unmatched_row(job: MatrixJob) -> dict[str, Any]:
    """The row of a tensor found on one side only (or of mismatched shape): names, shape and reason."""
    entry = job.base or job.finetuned
    shape = entry.shape if entry else (0, 0)
    return {
        "matrix": job.name,
        "layer": layer_index(job.name),
        "module": module_type(job.name),
        "kind": UNMATCHED,
        "rows": shape[0],
        "cols": shape[1],
        "reason": job.reason,
    }


def _base_entry(job: MatrixJob) -> MatrixEntry:
    """The base matrix of a job with rows of its own kind: every job but an unmatched one has it."""
    assert job.base is not None
    return job.base


def _floor_columns(stored_ft: Tensor | None, S_d: Tensor, shape: tuple[int, int]) -> dict[str, float]:
    """bf16/fp16 rounding-noise floor of ΔW and the rank metrics above it (ANALYSIS.md §5); NaN for fp32 input."""
    if stored_ft is None:
        return dict.fromkeys(FLOOR_COLUMNS, math.nan)
    floor = noise_floor(stored_ft.cpu(), S_d)
    above = S_d[S_d > floor.tau]
    return {
        "noise_sigma": floor.sigma,
        "noise_tau": floor.tau,
        "n_above_floor": float(floor.n_above),
        "energy_below_floor": floor.energy_below,
        "effective_rank_above_floor": effective_rank(above, shape),
        "stable_rank_above_floor": stable_rank(above),
    }


def _source(job: MatrixJob, other: Checkpoint | Adapter) -> str:
    """The 'source' column: the adapter's method for a LoRA-style update, else 'dense' or 'base'."""
    if job.kind == LORA and isinstance(other, Adapter):
        return other.method
    return "dense" if job.kind == DENSE else "base"
