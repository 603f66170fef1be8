"""MatrixAudit: the rows and details of one matrix job, each decomposition computed once (ANALYSIS.md §6.10).

The base's thin SVD comes from the on-disk cache. A dense fine-tune gets values-only SVDs plus a top-k of Wt
(Lanczos, exact or randomized with q ≥ 4, accepted by the Wedin test, §6.4, §6.7); a LoRA update never forms a
second large SVD: its merged spectrum and intruder scores come from the cached base through the small core
(§6.5, §6.6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from autopeft.analysis.audit_rows import AuditRows, unmatched_row
from autopeft.analysis.cache import SvdCache
from autopeft.analysis.checkpoint import Checkpoint
from autopeft.analysis.entanglement import entanglement_profile, lowrank_entanglement_profile
from autopeft.analysis.intruders import base_overlap, intruder_scores
from autopeft.analysis.job_reader import LoadedJob
from autopeft.analysis.merged_core import merged_spectrum
from autopeft.analysis.metrics import METRICS_VERSION, spectrum_metrics
from autopeft.analysis.naming import read_matrix
from autopeft.analysis.noise_floor import is_low_precision
from autopeft.analysis.pairing import BASE_ONLY, DENSE, UNMATCHED
from autopeft.analysis.svd import (
    Svd,
    as_fp32,
    full_svd,
    gram_route,
    lowrank_svd,
    singular_values,
    truncate,
    try_gram_svd,
    try_lanczos_svd,
    try_randomized_svd,
)

if TYPE_CHECKING:
    from autopeft.analysis.audit import AuditConfig

Rows = list[dict[str, Any]]
Details = dict[str, Any]


class MatrixAudit:
    """Computes one job's spectra on `device` and turns them into rows through `rows`.

    `base` is read again only if a cache entry whose key the reader remembered has gone since; `cache` is None
    when the audit runs without the base-SVD cache.
    """

    def __init__(
        self,
        config: AuditConfig,
        device: torch.device,
        base: Checkpoint,
        cache: SvdCache | None,
        rows: AuditRows,
    ) -> None:
        self.config, self.device, self.base, self.cache, self.rows = config, device, base, cache, rows

    def compute(self, loaded: LoadedJob) -> tuple[Rows, Details]:
        """The job's table rows and, for a compared pair, its details (intruder scores, entanglement)."""
        job = loaded.job
        if job.kind == UNMATCHED:
            return [unmatched_row(job)], {}
        if job.kind == BASE_ONLY:
            return [self._base_row(loaded, lambda: self._base_values(loaded))], {}
        if job.kind == DENSE:
            return self._dense(loaded)
        tensors = loaded.tensors
        return self._lora(loaded, tensors["B"].to(self.device), tensors["A"].to(self.device))

    def _base_values(self, loaded: LoadedJob) -> Tensor:
        """A base-only matrix's singular values: from the cache, else a values-only SVD (no vectors needed)."""
        if self.cache is None:
            return singular_values(as_fp32(loaded.tensors["base"], self.device))
        return self.cache.values(self._base_matrix(loaded), self.device, loaded.cache_key)

    def _base_svd(self, loaded: LoadedJob) -> Svd:
        """The base's thin SVD, whose vectors the intruder test needs: from the cache, else computed here."""
        if self.cache is None:
            return full_svd(as_fp32(loaded.tensors["base"], self.device))
        return self.cache.decomposition(self._base_matrix(loaded), self.device, loaded.cache_key)

    def _base_matrix(self, loaded: LoadedJob) -> Tensor | Callable[[], Tensor]:
        """The base matrix if it was read, else a reader the cache calls only if its entry has gone since."""
        W, entry = loaded.tensors.get("base"), loaded.job.base
        assert entry is not None  # a job with a base row has a base matrix
        return W if W is not None else lambda: read_matrix(self.base, entry)

    def _base_row(self, loaded: LoadedJob, values: Callable[[], Tensor]) -> dict[str, Any]:
        """The base row; its metrics come from the cache beside the base SVD when there is one, and then the
        base's singular values are not even read."""
        job = loaded.job
        assert job.base is not None  # a job with a base row has a base matrix
        shape = job.base.shape
        compute = lambda: spectrum_metrics(values().cpu(), shape)
        if self.cache is None:
            return self.rows.row(job, "base", compute())
        assert loaded.cache_key is not None  # the reader keys every base matrix when there is a cache
        metrics = self.cache.metrics(loaded.cache_key, METRICS_VERSION, compute)
        return self.rows.row(job, "base", metrics)

    def _dense(self, loaded: LoadedJob) -> tuple[Rows, Details]:
        """Dense fine-tune: values-only SVDs of Wt and ΔW, Lanczos (or randomized, or exact) top-k of Wt,
        cached base SVD."""
        job, W0, Wt = loaded.job, loaded.tensors["base"], loaded.tensors["ft"]
        base = self._base_svd(loaded)
        merged = as_fp32(Wt, self.device)
        S_t, top = self._top(merged)
        assert base.U is not None and top.U is not None  # a full SVD and a top-k with vectors
        scores = intruder_scores(base_overlap(base.U, top.U), base.S, S_t)
        frobenius = None if S_t.numel() == min(merged.shape) else float(torch.linalg.matrix_norm(merged))
        delta = merged - as_fp32(W0, self.device)
        S_d = (
            singular_values(delta)
            if bool(delta.any())
            else torch.zeros(min(delta.shape), device=delta.device)
        )
        profile = self._dense_profile(delta, S_d)
        rows = [self._base_row(loaded, lambda: base.S), self.rows.finetuned_row(job, S_t, scores, frobenius)]
        stored_ft = Wt if is_low_precision(Wt.dtype) else None
        rows.append(self.rows.delta_row(job, S_d, base.S, stored_ft, profile))
        return rows, self.rows.details(scores, profile)

    def _top(self, merged: Tensor) -> tuple[Tensor, Svd]:
        """A dense Wt's singular values (all, or the top k under spectrum='top') and its top-k triplets."""
        k = self.config.k
        if self.config.topk == "lanczos" and gram_route(merged):  # long matrices: one Gram gives both
            found = try_gram_svd(merged, k)
            if found is not None:
                return (found[0] if self.config.spectrum == "full" else found[1].S), found[1]
        values = singular_values(merged) if self.config.spectrum == "full" else None
        top = None
        if self.config.topk == "lanczos":
            top = try_lanczos_svd(merged, k, values)
        elif self.config.topk == "randomized":
            top = try_randomized_svd(merged, k, self.config.power_iterations)
        if top is None:
            exact = full_svd(merged)
            return exact.S, truncate(exact, k)
        return (top.S if values is None else values), top

    def _dense_profile(self, delta: Tensor, S_d: Tensor) -> dict[str, Any] | None:
        """The entanglement profile of a dense ΔW; under row_then_col its σ are the centre cut, passed on."""
        if not self.config.entanglement or float(S_d.max()) == 0.0:
            return None
        centre = S_d if self.config.ordering == "row_then_col" else None
        return entanglement_profile(delta, self.config.ordering, centre)._asdict()

    def _lora(self, loaded: LoadedJob, B: Tensor, A: Tensor) -> tuple[Rows, Details]:
        """LoRA update: exact spectra of ΔW from QR cores, of Wt from the cached base SVD (no 2nd big SVD)."""
        job = loaded.job
        base = self._base_svd(loaded)
        merged = merged_spectrum(base, B, A, self.config.k, complete=self.config.spectrum == "full")
        scores = intruder_scores(merged.overlap, base.S, merged.S)
        S_d = lowrank_svd(B, A).S
        profile = self._lora_profile(B, A, S_d)
        frobenius = None if merged.complete else merged.frobenius
        finetuned = self.rows.finetuned_row(job, merged.S, scores, frobenius)
        rows = [self._base_row(loaded, lambda: base.S), finetuned]
        rows.append(self.rows.delta_row(job, S_d, base.S, None, profile))
        return rows, self.rows.details(scores, profile)

    def _lora_profile(self, B: Tensor, A: Tensor, S_d: Tensor) -> dict[str, Any] | None:
        """The entanglement profile of ΔW = B @ A: from the factors under row_then_col, else from B @ A."""
        if not self.config.entanglement or float(S_d.max()) == 0.0:
            return None
        if self.config.ordering == "row_then_col":
            return lowrank_entanglement_profile(B, A)._asdict()
        return entanglement_profile(B @ A, self.config.ordering)._asdict()
