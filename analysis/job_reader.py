"""JobReader: reads the stored tensors each `MatrixJob` needs, and its base matrix's cache key.

The audit runs the reader on a background thread, one job ahead of the computation, so reading and hashing the
next matrix overlap the SVDs of the current one (ANALYSIS.md §6.8). A base matrix whose SVD is already cached
under a remembered key is not read at all (§6.9).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from torch import Tensor

from autopeft.analysis.adapter import Adapter, update_factors
from autopeft.analysis.cache import SvdCache, file_identity
from autopeft.analysis.checkpoint import Checkpoint
from autopeft.analysis.naming import MatrixEntry, read_matrix
from autopeft.analysis.pairing import DENSE, LORA, UNMATCHED, MatrixJob


class LoadedJob(NamedTuple):
    """A job with what was read for it: `tensors` ('base', 'ft', or LoRA factors 'B', 'A'; empty for an
    unmatched job) and `cache_key`, the base matrix's key in the SVD cache (None when the audit has none)."""

    job: MatrixJob
    tensors: dict[str, Tensor]
    cache_key: str | None


class JobReader:
    """Reads jobs' tensors from the base and the fine-tuned checkpoint (or adapter); counts base reads.

    It remembers each base file's identity, so a file is fingerprinted once per audit, not once per matrix.
    """

    def __init__(self, base: Checkpoint, other: Checkpoint | Adapter, cache: SvdCache | None) -> None:
        self.base, self.other, self.cache = base, other, cache
        self.identities: dict[Path, str] = {}
        self.base_reads = 0

    def read(self, job: MatrixJob) -> LoadedJob:
        """Read the stored tensors a job needs (on the reader thread)."""
        tensors: dict[str, Tensor] = {}
        if job.kind == UNMATCHED:
            return LoadedJob(job, tensors, None)
        assert job.base is not None  # every job but an unmatched one has a base matrix
        origin = self._origin(job.base) if self.cache is not None else None
        key = self._stored_key(origin)
        if key is None or job.kind == DENSE:
            tensors["base"] = read_matrix(self.base, job.base)
            self.base_reads += 1
        if self.cache is not None:
            # Hashing releases the GIL, so on this reader thread it overlaps the compute.
            key = key or self.cache.key(tensors["base"], origin)
        if job.kind == DENSE:
            assert isinstance(self.other, Checkpoint) and job.finetuned is not None  # a dense pair
            tensors["ft"] = read_matrix(self.other, job.finetuned)
        if job.kind == LORA:
            assert isinstance(self.other, Adapter) and job.update is not None  # an adapter's update
            B, A = update_factors(self.other, job.update)
            rows = job.base.rows
            tensors["B"], tensors["A"] = (B[rows[0] : rows[1]] if rows else B), A
        return LoadedJob(job, tensors, key)

    def _stored_key(self, origin: str | None) -> str | None:
        """The remembered key of a base matrix whose cache entry is stored: its weights need not be read."""
        if origin is None:
            return None
        assert self.cache is not None  # `read` looks origins up only with a cache
        key = self.cache.remembered_key(origin)
        return key if key is not None and self.cache.has(key) else None

    def _origin(self, entry: MatrixEntry) -> str | None:
        """The file identity of a base matrix read from a file (None for one held in memory)."""
        path = self.base.files.get(entry.key)
        if path is None:
            return None
        if path not in self.identities:
            self.identities[path] = file_identity(path)
        return f"{self.identities[path]}|{entry.key}|{entry.transpose}|{entry.rows}"
