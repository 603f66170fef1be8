"""SvdCache: the base model's thin SVDs on disk, keyed by a hash of each weight matrix.

The base SVD is the one decomposition that every checkpoint of a base needs (ANALYSIS.md §6.5, §6.9). It is
computed once, stored as one safetensors file per matrix (S, U, V in fp32) and memory-mapped on reuse, so every
trial of a search audits its adapter without redoing it. The key hashes the stored bytes, shape and dtype, so a
changed weight can never be served a stale decomposition.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from autopeft.analysis.svd import Svd, full_svd

logger = logging.getLogger(__name__)
CACHE_ENV = "AUTOPEFT_CACHE_DIR"
POLICY = "fp32-thin-v1"


def default_cache_dir() -> Path:
    """`$AUTOPEFT_CACHE_DIR`, else `~/.cache/autopeft/svd`."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "autopeft" / "svd"


def weight_key(W: Tensor) -> str:
    """A content hash of a stored matrix (bytes, shape, dtype and the decomposition policy)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{POLICY}|{tuple(W.shape)}|{W.dtype}".encode())
    data = W.detach().cpu().contiguous()
    digest.update(data.view(torch.uint8).numpy().data if data.numel() else b"")
    return digest.hexdigest()


class SvdCache:
    """Thin SVDs of base matrices under `directory` (default `default_cache_dir()`); created on first write."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        """Where the entry for `key` lives."""
        return self.directory / key[:2] / f"{key}.safetensors"

    def decomposition(self, W: Tensor, device: torch.device | None = None) -> Svd:
        """The thin SVD of `W` (stored dtype, (out, in)), from disk when cached, else computed and stored."""
        key = weight_key(W)
        cached = self._load(key, ("S", "U", "V"), device)
        if cached is not None:
            self.hits += 1
            return Svd(*cached)
        self.misses += 1
        result = full_svd(W.to(device) if device else W)
        self._store(key, result)
        return result

    def values(self, W: Tensor, device: torch.device | None = None) -> Tensor:
        """Only the singular values of `W`; reads just `S` from a cached entry (memory-mapped)."""
        cached = self._load(weight_key(W), ("S",), device)
        if cached is not None:
            self.hits += 1
            return cached[0]
        return self.decomposition(W, device).S

    def disk_usage(self) -> int:
        """Bytes the cache occupies on disk."""
        if not self.directory.is_dir():
            return 0
        return sum(path.stat().st_size for path in self.directory.rglob("*.safetensors"))

    def _load(self, key: str, names: tuple[str, ...], device: torch.device | None) -> list[Tensor] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                tensors = [handle.get_tensor(name) for name in names]
        except (SafetensorError, OSError) as error:
            logger.warning("%s: unreadable cache entry, recomputing (%s)", path, error)
            return None
        return [tensor.to(device) if device else tensor for tensor in tensors]

    def _store(self, key: str, decomposition: Svd) -> None:
        """Write atomically (temporary file + os.replace), so a crash never leaves a half entry."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.partial")
        tensors = {"S": decomposition.S, "U": decomposition.U, "V": decomposition.V}
        save_file({name: value.detach().cpu().contiguous() for name, value in tensors.items()}, str(staging))
        os.replace(staging, path)
