"""audit(): compare a fine-tuned model (or a base plus an adapter) with its base, matrix by matrix.

Composes the I/O layer (checkpoint, naming, adapter, pairing) with the pure metrics. Per matrix, each
decomposition is computed once (ANALYSIS.md §6.10): the base's thin SVD comes from the on-disk cache; a dense
fine-tune gets values-only SVDs plus a randomized top-k (q ≥ 4, accepted by the Wedin test); a LoRA update never
forms a second large SVD, its merged spectrum and intruder scores come from the cached base through the small core.
The next matrix is read on a background thread while the current one is computed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from autopeft.analysis.adapter import Adapter, read_adapter, update_factors
from autopeft.analysis.cache import SvdCache, file_identity
from autopeft.analysis.checkpoint import Checkpoint, Source, open_checkpoint
from autopeft.analysis.entanglement import ORDERINGS, entanglement_profile, lowrank_entanglement_profile
from autopeft.analysis.errors import AuditConfigError
from autopeft.analysis.intruders import (
    IntruderScores,
    base_overlap,
    count_intruders,
    epsilon_sweep,
    intruder_scores,
)
from autopeft.analysis.merged_core import merged_spectrum
from autopeft.analysis.metrics import METRICS_VERSION, spectrum_metrics
from autopeft.analysis.naming import MatrixEntry, layer_index, module_type, read_matrix
from autopeft.analysis.noise_floor import is_low_precision, noise_floor
from autopeft.analysis.pairing import (
    BASE_ONLY,
    DENSE,
    LORA,
    UNMATCHED,
    MatrixJob,
    Scope,
    adapter_jobs,
    dense_jobs,
)
from autopeft.analysis.report import AuditReport
from autopeft.analysis.spectra import effective_rank, stable_rank
from autopeft.analysis.svd import (
    Svd,
    as_fp32,
    full_svd,
    gram_route,
    lowrank_svd,
    resolve_device,
    set_threads,
    singular_values,
    truncate,
    try_gram_svd,
    try_lanczos_svd,
    try_randomized_svd,
)

Progress = Callable[[int, int], None]
TOPK_METHODS = ("lanczos", "exact", "randomized")
SPECTRA = ("full", "top")


@dataclass(frozen=True)
class AuditConfig:
    """Options of one audit, validated on construction.

    k, epsilon: intruder test (top-k fine-tuned left vectors, |cos| < ε); sweep: add counts for ε = 0.05…0.95.
    device: 'cpu' or 'cuda'; threads: torch.set_num_threads for the run (None keeps the current setting).
    topk: top-k vectors of a dense Wt by 'lanczos' (ARPACK on its Gram operator beside a values-only SVD;
    on CPU, and up to half the cost of a thin SVD's vectors; a CPU matrix of aspect ratio ≥ 2 takes values and
    vectors from one dense eigensolve of its fp64 Gram instead, `svd.try_gram_svd`), 'exact' (one thin SVD,
    which also gives all values) or 'randomized' (subspace iteration, q ≥ power_iterations, for huge
    matrices); the first and last are accepted only when every Wedin bound is ≤ 1e-3, else the exact SVD.
    spectrum: the fine-tuned matrix's spectrum, 'full' (every singular value: its α, effective rank and entropy)
    or 'top' (only σ_1..σ_k+1 and the exact ‖Wt‖_F: norms, stable rank and intruders, several times faster for
    adapters, whose ΔW rows stay complete either way; a dense Wt then skips its values-only SVD unless its
    top-k falls back to the exact SVD).
    entanglement, ordering: the entanglement profile of ΔW and its site ordering.
    include_embeddings, split_fused: scope; cache_dir / use_cache: the base-SVD cache; allow_pickle: read
    pickle weights with torch.load(weights_only=True); report_mismatches: shape mismatches become rows, not errors.
    """

    k: int = 10
    epsilon: float = 0.5
    sweep: bool = False
    device: str = "cpu"
    threads: int | None = None
    topk: str = "lanczos"
    power_iterations: int = 4
    spectrum: str = "full"
    entanglement: bool = True
    ordering: str = "row_then_col"
    include_embeddings: bool = False
    split_fused: bool = True
    cache_dir: str | Path | None = None
    use_cache: bool = True
    allow_pickle: bool = False
    report_mismatches: bool = False

    def __post_init__(self) -> None:
        _require(self.k >= 1, "k", "an integer >= 1", self.k)
        _require(0.0 < self.epsilon <= 1.0, "epsilon", "a value in (0, 1]", self.epsilon)
        _require(self.topk in TOPK_METHODS, "topk", f"one of {TOPK_METHODS}", self.topk)
        _require(self.spectrum in SPECTRA, "spectrum", f"one of {SPECTRA}", self.spectrum)
        _require(
            self.power_iterations >= 4,
            "power_iterations",
            ">= 4 (fewer manufactures false intruders)",
            self.power_iterations,
        )
        _require(self.ordering in ORDERINGS, "ordering", f"one of {ORDERINGS}", self.ordering)
        _require(
            self.threads is None or self.threads >= 1, "threads", "None or an integer >= 1", self.threads
        )


def audit(
    base: Source,
    finetuned: Source | None = None,
    *,
    adapter: str | Path | None = None,
    config: AuditConfig | None = None,
    on_progress: Progress | None = None,
) -> AuditReport:
    """Audit `finetuned` (folder, file, HF id, module or state dict) or a PEFT `adapter` folder against `base`.

    Exactly one of `finetuned` and `adapter` is given. Bad input raises an `AnalysisError` subclass before any
    heavy computation; `on_progress(done, total)` is called after each matrix.
    """
    config = config or AuditConfig()
    if (finetuned is None) == (adapter is None):
        raise AuditConfigError("audit: expected exactly one of finetuned= or adapter=")
    set_threads(config.threads)
    device = resolve_device(config.device)
    started = time.perf_counter()
    base_checkpoint = open_checkpoint(base, config.allow_pickle)
    scope = Scope(config.include_embeddings, config.split_fused, config.report_mismatches)
    if adapter is not None:
        loaded = read_adapter(adapter, config.allow_pickle)
        jobs, excluded = adapter_jobs(base_checkpoint, loaded, scope)
        other: Checkpoint | Adapter = loaded
    else:
        other = open_checkpoint(finetuned, config.allow_pickle)  # type: ignore[arg-type]
        jobs, excluded = dense_jobs(base_checkpoint, other, scope)
    runner = _Runner(config, device, base_checkpoint, other)
    report = runner.run(jobs, on_progress)
    report.excluded = [{"tensor": key, "reason": reason} for key, reason in excluded]
    report.meta = _meta(base, finetuned, adapter, config, runner, time.perf_counter() - started)
    return report


class _Runner:
    """Runs jobs with a prefetching reader; holds the cache and the two sides being compared."""

    def __init__(
        self, config: AuditConfig, device: torch.device, base: Checkpoint, other: Checkpoint | Adapter
    ) -> None:
        self.config, self.device, self.base, self.other = config, device, base, other
        self.cache = SvdCache(config.cache_dir) if config.use_cache else None
        self.keys: dict[str, str] = {}
        self.identities: dict[Path, str] = {}
        self.base_reads = 0

    def run(self, jobs: list[MatrixJob], on_progress: Progress | None) -> AuditReport:
        report = AuditReport(rows=[])
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending: Future[dict[str, Tensor]] | None = reader.submit(self._load, jobs[0]) if jobs else None
            for index, job in enumerate(jobs):
                tensors = pending.result() if pending is not None else {}
                pending = reader.submit(self._load, jobs[index + 1]) if index + 1 < len(jobs) else None
                rows, details = self._compute(job, tensors)
                report.rows += rows
                report.details.update({job.name: details} if details else {})
                if on_progress is not None:
                    on_progress(index + 1, len(jobs))
        if self.cache is not None:
            self.cache.save_keys()
        return report

    def _load(self, job: MatrixJob) -> dict[str, Tensor]:
        """Read the stored tensors a job needs (on the reader thread)."""
        tensors: dict[str, Tensor] = {}
        if job.kind == UNMATCHED:
            return tensors
        origin = self._origin(job.base) if self.cache is not None else None  # type: ignore[arg-type]
        key = self._stored_key(origin)
        if key is None or job.kind == DENSE:
            tensors["base"] = read_matrix(self.base, job.base)  # type: ignore[arg-type]
            self.base_reads += 1
        if self.cache is not None:
            # Hashing releases the GIL, so on this reader thread it overlaps the compute.
            self.keys[job.name] = key or self.cache.key(tensors["base"], origin)
        if job.kind == DENSE:
            tensors["ft"] = read_matrix(self.other, job.finetuned)  # type: ignore[arg-type]
        if job.kind == LORA:
            B, A = update_factors(self.other, job.update)  # type: ignore[arg-type]
            rows = job.base.rows  # type: ignore[union-attr]
            tensors["B"], tensors["A"] = (B[rows[0] : rows[1]] if rows else B), A
        return tensors

    def _stored_key(self, origin: str | None) -> str | None:
        """The remembered key of a base matrix whose cache entry is stored: its weights need not be read."""
        if origin is None:
            return None
        key = self.cache.remembered_key(origin)  # type: ignore[union-attr]
        return key if key is not None and self.cache.has(key) else None  # type: ignore[union-attr]

    def _origin(self, entry: MatrixEntry) -> str | None:
        """The file identity of a base matrix read from a file (None for one held in memory)."""
        path = self.base.files.get(entry.key)
        if path is None:
            return None
        if path not in self.identities:
            self.identities[path] = file_identity(path)
        return f"{self.identities[path]}|{entry.key}|{entry.transpose}|{entry.rows}"

    def _compute(
        self, job: MatrixJob, tensors: dict[str, Tensor]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if job.kind == UNMATCHED:
            return [_unmatched_row(job)], {}
        if job.kind == BASE_ONLY:
            return [self._base_row(job, lambda: self._base_values(job, tensors))], {}
        if job.kind == DENSE:
            return self._dense(job, tensors)
        return self._lora(job, tensors, tensors["B"].to(self.device), tensors["A"].to(self.device))

    def _base_values(self, job: MatrixJob, tensors: dict[str, Tensor]) -> Tensor:
        if self.cache is None:
            return singular_values(as_fp32(tensors["base"], self.device))
        return self.cache.values(self._base_matrix(job, tensors), self.device, self.keys[job.name])

    def _base_svd(self, job: MatrixJob, tensors: dict[str, Tensor]) -> Svd:
        if self.cache is None:
            return full_svd(as_fp32(tensors["base"], self.device))
        return self.cache.decomposition(self._base_matrix(job, tensors), self.device, self.keys[job.name])

    def _base_matrix(self, job: MatrixJob, tensors: dict[str, Tensor]) -> Tensor | Callable[[], Tensor]:
        """The base matrix if it was read, else a reader the cache calls only if its entry has gone since."""
        W = tensors.get("base")
        return W if W is not None else lambda: read_matrix(self.base, job.base)  # type: ignore[arg-type]

    def _base_row(self, job: MatrixJob, values: Callable[[], Tensor]) -> dict[str, Any]:
        """The base row; its metrics come from the cache beside the base SVD when there is one, and then the
        base's singular values are not even read."""
        shape = job.base.shape  # type: ignore[union-attr]
        compute = lambda: spectrum_metrics(values().cpu(), shape)  # noqa: E731
        if self.cache is None:
            return self._row(job, "base", compute())
        return self._row(job, "base", self.cache.metrics(self.keys[job.name], METRICS_VERSION, compute))

    def _dense(
        self, job: MatrixJob, tensors: dict[str, Tensor]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Dense fine-tune: values-only SVDs of Wt and ΔW, Lanczos (or randomized, or exact) top-k of Wt, cached
        base SVD."""
        W0, Wt = tensors["base"], tensors["ft"]
        base = self._base_svd(job, tensors)
        merged = as_fp32(Wt, self.device)
        S_t, top = self._top(merged)
        scores = intruder_scores(base_overlap(base.U, top.U), base.S, S_t)  # type: ignore[arg-type]
        frobenius = None if S_t.numel() == min(merged.shape) else float(torch.linalg.matrix_norm(merged))
        delta = merged - as_fp32(W0, self.device)
        S_d = (
            singular_values(delta)
            if bool(delta.any())
            else torch.zeros(min(delta.shape), device=delta.device)
        )
        profile = self._dense_profile(delta, S_d)
        rows = [self._base_row(job, lambda: base.S), self._ft_row(job, S_t, scores, frobenius)]
        rows.append(self._delta_row(job, S_d, base.S, Wt if is_low_precision(Wt.dtype) else None, profile))
        return rows, self._details(scores, profile)

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
        if not self.config.entanglement or float(S_d.max()) == 0.0:
            return None
        centre = S_d if self.config.ordering == "row_then_col" else None
        return entanglement_profile(delta, self.config.ordering, centre)._asdict()

    def _lora(
        self, job: MatrixJob, tensors: dict[str, Tensor], B: Tensor, A: Tensor
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """LoRA update: exact spectra of ΔW from QR cores, of Wt from the cached base SVD (no second large SVD)."""
        base = self._base_svd(job, tensors)
        merged = merged_spectrum(base, B, A, self.config.k, complete=self.config.spectrum == "full")
        scores = intruder_scores(merged.overlap, base.S, merged.S)
        S_d = lowrank_svd(B, A).S
        profile = self._lora_profile(B, A, S_d)
        frobenius = None if merged.complete else merged.frobenius
        rows = [self._base_row(job, lambda: base.S), self._ft_row(job, merged.S, scores, frobenius)]
        rows.append(self._delta_row(job, S_d, base.S, None, profile))
        return rows, self._details(scores, profile)

    def _lora_profile(self, B: Tensor, A: Tensor, S_d: Tensor) -> dict[str, Any] | None:
        if not self.config.entanglement or float(S_d.max()) == 0.0:
            return None
        if self.config.ordering == "row_then_col":
            return lowrank_entanglement_profile(B, A)._asdict()
        return entanglement_profile(B @ A, self.config.ordering)._asdict()

    def _row(self, job: MatrixJob, kind: str, metrics: tuple[dict[str, float], list[str]]) -> dict[str, Any]:
        """One table row from the spectrum metrics (values, reasons) of one of the job's matrices."""
        entry = job.base
        shape = entry.shape  # type: ignore[union-attr]
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
            "flag": entry.flag,  # type: ignore[union-attr]
            **values,
            "reason": "; ".join(reasons),
        }

    def _ft_row(
        self, job: MatrixJob, S: Tensor, scores: IntruderScores, frobenius: float | None
    ) -> dict[str, Any]:
        row = self._row(job, "ft", spectrum_metrics(S.cpu(), job.base.shape, frobenius))  # type: ignore[union-attr]
        row["n_intruders"] = count_intruders(scores.scores, self.config.epsilon)
        row["min_intruder_score"] = float(scores.scores.min())
        row["n_degenerate_top"] = int(scores.degenerate.sum())
        if self.config.sweep:
            row.update({f"intruders_eps_{eps:.2f}": n for eps, n in epsilon_sweep(scores.scores).items()})
        return row

    def _delta_row(
        self,
        job: MatrixJob,
        S_d: Tensor,
        S_base: Tensor,
        stored_ft: Tensor | None,
        profile: dict[str, Any] | None,
    ) -> dict[str, Any]:
        row = self._row(job, "delta", spectrum_metrics(S_d.cpu(), job.base.shape))  # type: ignore[union-attr]
        base_norm = float(torch.linalg.vector_norm(S_base.double()))
        row["relative_update"] = row["frobenius_norm"] / base_norm if base_norm > 0 else math.nan
        row["entanglement_max"] = max(profile["entropies"]) if profile else math.nan
        row["entanglement_centre"] = row["energy_entropy"]
        row["ln_rank"] = math.log(job.update.rank) if job.update else math.nan
        row.update(_floor_columns(stored_ft, S_d.cpu(), job.base.shape))  # type: ignore[union-attr]
        return row

    def _details(self, scores: IntruderScores, profile: dict[str, Any] | None) -> dict[str, Any]:
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


def _floor_columns(stored_ft: Tensor | None, S_d: Tensor, shape: tuple[int, int]) -> dict[str, float]:
    """bf16/fp16 rounding-noise floor of ΔW and the rank metrics above it (ANALYSIS.md §5); NaN for fp32 input."""
    if stored_ft is None:
        return dict.fromkeys(
            (
                "noise_sigma",
                "noise_tau",
                "n_above_floor",
                "energy_below_floor",
                "effective_rank_above_floor",
                "stable_rank_above_floor",
            ),
            math.nan,
        )
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


def _unmatched_row(job: MatrixJob) -> dict[str, Any]:
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


def _source(job: MatrixJob, other: Checkpoint | Adapter) -> str:
    if job.kind == LORA and isinstance(other, Adapter):
        return other.method
    return "dense" if job.kind == DENSE else "base"


def _meta(
    base: Source,
    finetuned: Source | None,
    adapter: str | Path | None,
    config: AuditConfig,
    runner: _Runner,
    seconds: float,
) -> dict[str, Any]:
    cache = runner.cache
    return {
        "base": _describe(base),
        "finetuned": None if finetuned is None else _describe(finetuned),
        "adapter": None if adapter is None else str(adapter),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "device": str(runner.device),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "cache": None
        if cache is None
        else {
            "directory": str(cache.directory),
            "hits": cache.hits,
            "misses": cache.misses,
            "base_matrices_read": runner.base_reads,
        },
    }


def _describe(source: Source) -> str:
    return (
        source
        if isinstance(source, str)
        else str(source)
        if isinstance(source, Path)
        else f"<{type(source).__name__}>"
    )


def _require(condition: bool, name: str, expected: str, got: Any) -> None:
    if not condition:
        raise AuditConfigError(f"audit config: {name}: expected {expected}, got {got!r}")
