"""audit(): compare a fine-tuned model (or a base plus an adapter) with its base, matrix by matrix.

Composes the I/O layer (checkpoint, naming, adapter, pairing) with the pure metrics: `JobReader` reads each
job's tensors on a background thread, one job ahead, while `MatrixAudit` computes the current one (each
decomposition once, ANALYSIS.md §6.10) and `AuditRows` turns its spectra into table rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from autopeft.analysis.adapter import Adapter, read_adapter
from autopeft.analysis.audit_rows import AuditRows
from autopeft.analysis.cache import SvdCache
from autopeft.analysis.checkpoint import Checkpoint, Source, open_checkpoint
from autopeft.analysis.entanglement import ORDERINGS
from autopeft.analysis.errors import AuditConfigError
from autopeft.analysis.job_reader import JobReader, LoadedJob
from autopeft.analysis.matrix_audit import MatrixAudit
from autopeft.analysis.naming import Skipped
from autopeft.analysis.pairing import MatrixJob, Scope, adapter_jobs, dense_jobs
from autopeft.analysis.report import AuditReport
from autopeft.analysis.svd import resolve_device, set_threads

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
        assert finetuned is not None  # exactly one of finetuned= and adapter= (checked above)
        other = open_checkpoint(finetuned, config.allow_pickle)
        jobs, excluded = dense_jobs(base_checkpoint, other, scope)
    cache = SvdCache(config.cache_dir) if config.use_cache else None
    reader = JobReader(base_checkpoint, other, cache)
    matrix_audit = MatrixAudit(config, device, base_checkpoint, cache, AuditRows(config, other))
    report = _audit_jobs(jobs, reader, matrix_audit, on_progress)
    if cache is not None:
        cache.save_keys()
    report.excluded = [_skipped_entry(skipped) for skipped in excluded]
    report.meta = {
        **_sources(base, finetuned, adapter),
        "tied_weights": {skipped.tensor: skipped.tied_to for skipped in excluded if skipped.tied_to},
        **_run_meta(config, device, reader, time.perf_counter() - started),
    }
    return report


def _audit_jobs(
    jobs: list[MatrixJob], reader: JobReader, matrix_audit: MatrixAudit, on_progress: Progress | None
) -> AuditReport:
    """Compute every job in order while the reader thread reads the next one, so I/O overlaps the SVDs."""
    report = AuditReport(rows=[])
    with ThreadPoolExecutor(max_workers=1) as reader_thread:
        pending: Future[LoadedJob] | None = reader_thread.submit(reader.read, jobs[0]) if jobs else None
        for index, job in enumerate(jobs):
            loaded = pending.result() if pending is not None else LoadedJob(job, {}, None)
            pending = reader_thread.submit(reader.read, jobs[index + 1]) if index + 1 < len(jobs) else None
            rows, details = matrix_audit.compute(loaded)
            report.rows += rows
            report.details.update({job.name: details} if details else {})
            if on_progress is not None:
                on_progress(index + 1, len(jobs))
    return report


def _skipped_entry(skipped: Skipped) -> dict[str, str]:
    """One entry of the report's `excluded` list; a tied head also names the embedding it shares."""
    entry = {"tensor": skipped.tensor, "reason": skipped.reason}
    return {**entry, "tied_to": skipped.tied_to} if skipped.tied_to else entry


def _sources(base: Source, finetuned: Source | None, adapter: str | Path | None) -> dict[str, Any]:
    """The meta entries that say what was compared, readable from any working directory."""
    return {
        "base": _describe(base),
        "finetuned": None if finetuned is None else _describe(finetuned),
        "adapter": None if adapter is None else _describe(Path(adapter)),
    }


def _run_meta(config: AuditConfig, device: torch.device, reader: JobReader, seconds: float) -> dict[str, Any]:
    """The meta entries that say how the audit ran: its config, device, threads, time and cache use."""
    cache = reader.cache
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "cache": None
        if cache is None
        else {
            "directory": str(cache.directory),
            "hits": cache.hits,
            "misses": cache.misses,
            "base_matrices_read": reader.base_reads,
        },
    }


def _describe(source: Source) -> str:
    """A source as meta records it: an existing path made absolute (a relative one would only mean something
    in the directory the audit ran from), a hub id as given, or the type of a module or state dict in memory."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        return str(path.resolve()) if path.exists() else str(source)
    return f"<{type(source).__name__}>"


def _require(condition: bool, name: str, expected: str, got: Any) -> None:
    """Raise the AuditConfigError that names the field, what was expected and what was found."""
    if not condition:
        raise AuditConfigError(f"audit config: {name}: expected {expected}, got {got!r}")
