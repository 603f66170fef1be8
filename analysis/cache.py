"""SvdCache: the base model's thin SVDs on disk, keyed by a hash of each weight matrix.

The base SVD is the one decomposition that every checkpoint of a base needs (ANALYSIS.md §6.5, §6.9). It is
computed once, stored as one safetensors file per matrix (S, U, V in fp32) and memory-mapped on reuse, so every
trial of a search audits its adapter without redoing it. The base row's metrics (the α fit is O(p²)) are kept
beside it as JSON. The key hashes the stored bytes, shape and dtype, so a changed weight can never be served a
stale decomposition. Hashing costs about 1 s per GB, so the key of a matrix read from a file is remembered under
the file's identity (resolved path, size, modification time in ns), as build tools and git do: an audit of a
new adapter against a known base then hashes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from autopeft.analysis.svd import Svd, full_svd

logger = logging.getLogger(__name__)
CACHE_ENV = "AUTOPEFT_CACHE_DIR"
POLICY = "fp32-thin-v1"
KEYS_FILE = "known-keys.json"
Metrics = tuple[dict[str, float], list[str]]
Matrix = Tensor | Callable[[], Tensor]
"""A base matrix, or a function that reads it: a cache hit with a known key never reads the weights."""


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
        self._known_keys: dict[str, str] | None = None
        self._new_keys: dict[str, str] = {}

    def has(self, key: str) -> bool:
        """Whether an entry for `key` is stored."""
        return self.path(key).is_file()

    def remembered_key(self, origin: str) -> str | None:
        """The key remembered for `origin` (see `key`), if any, without reading the matrix."""
        if self._known_keys is None:
            self._known_keys = _read_known_keys(self.directory / KEYS_FILE)
        return self._known_keys.get(origin) or self._new_keys.get(origin)

    def key(self, W: Tensor, origin: str | None = None) -> str:
        """`weight_key(W)`; with `origin` (the `file_identity` of the file W was read from, its tensor name and
        how W was cut from it), remembered across runs so it is hashed once."""
        if origin is None:
            return weight_key(W)
        key = self.remembered_key(origin)
        if key is None:
            key = self._new_keys[origin] = weight_key(W)
        return key

    def save_keys(self) -> None:
        """Add the keys hashed in this run to the remembered ones (atomically; a concurrent writer may win)."""
        if not self._new_keys:
            return
        merged = {**_read_known_keys(self.directory / KEYS_FILE), **self._new_keys}
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.directory / KEYS_FILE, json.dumps(merged))
        self._new_keys = {}

    def path(self, key: str) -> Path:
        """Where the entry for `key` lives."""
        return self.directory / key[:2] / f"{key}.safetensors"

    def decomposition(self, W: Matrix, device: torch.device | None = None, key: str | None = None) -> Svd:
        """The thin SVD of `W` (stored dtype, (out, in)), from disk when cached, else computed and stored.

        `key`, when given, is `weight_key(W)` computed or remembered earlier (the audit hashes on its reader
        thread, and then passes a reader function as W, called only on a miss).
        """
        if key is None:
            W = _matrix(W)
            key = weight_key(W)
        cached = self._load(key, ("S", "U", "V"), device)
        if cached is not None:
            self.hits += 1
            return Svd(*cached)
        self.misses += 1
        W = _matrix(W)
        result = full_svd(W.to(device) if device else W)
        self._store(key, result)
        return result

    def values(self, W: Matrix, device: torch.device | None = None, key: str | None = None) -> Tensor:
        """Only the singular values of `W`; reads just `S` from a cached entry (memory-mapped)."""
        if key is None:
            W = _matrix(W)
            key = weight_key(W)
        cached = self._load(key, ("S",), device)
        if cached is not None:
            self.hits += 1
            return cached[0]
        return self.decomposition(W, device, key).S

    def metrics(self, key: str, version: str, compute: Callable[[], Metrics]) -> Metrics:
        """The base row's spectrum metrics for entry `key`: read if stored under `version`, else computed and
        stored. `version` names the metric table, so a changed table never reads stale columns."""
        path = self.path(key).with_suffix(".metrics.json")
        stored = _stored_metrics(path, version)
        if stored is not None:
            return stored
        values, reasons = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, json.dumps({"version": version, "values": values, "reasons": reasons}))
        return values, reasons

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
        staging = path.with_name(f".{path.name}.{os.getpid()}.partial")  # safetensors writes by file name
        assert decomposition.U is not None and decomposition.V is not None  # only full SVDs are stored
        tensors = {"S": decomposition.S, "U": decomposition.U, "V": decomposition.V}
        save_file({name: value.detach().cpu().contiguous() for name, value in tensors.items()}, str(staging))
        os.replace(staging, path)


def _stored_metrics(path: Path, version: str) -> Metrics | None:
    """Metrics stored at `path` under `version`; None when absent, of another version, or unreadable (logged)."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("version") != version:
            return None
        return dict(stored["values"]), list(stored["reasons"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("%s: unreadable cached metrics, recomputing (%s)", path, error)
        return None


def file_identity(path: Path) -> str:
    """A file's identity for remembered keys: resolved path, size and modification time (ns)."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_known_keys(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("%s: unreadable, hashing the weights again (%s)", path, error)
        return {}
    return {str(k): str(v) for k, v in known.items()} if isinstance(known, dict) else {}


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}.partial")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def _matrix(W: Matrix) -> Tensor:
    return W if isinstance(W, Tensor) else W()
