"""Checkpoint: named tensors read lazily, one at a time, from safetensors files, memory or (if allowed) pickles.

Safetensors files are memory-mapped and read tensor by tensor (ANALYSIS.md §6.8); a sharded checkpoint is read
through its `model.safetensors.index.json`. Untrusted files never execute code: pickle files are refused unless the
caller passes `allow_pickle`, and even then are read only with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from autopeft.analysis.errors import CheckpointError

INDEX_FILE = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "BF16": torch.bfloat16,
    "F16": torch.float16,
}
Source = str | os.PathLike[str] | nn.Module | Mapping[str, Tensor]


@dataclass
class Checkpoint:
    """Named tensors of one model, with its `config.json` and the names of GPT-2-style Conv1D modules if known.

    `files` maps each key stored in safetensors to its file; `memory` holds tensors that are already loaded.
    """

    label: str
    config: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    memory: dict[str, Tensor] = field(default_factory=dict)
    conv1d_modules: frozenset[str] | None = None
    _handles: dict[Path, Any] = field(default_factory=dict, repr=False)

    def keys(self) -> list[str]:
        """Every tensor name, in storage order."""
        return list(self.files) + list(self.memory)

    def source(self, key: str) -> str:
        """Where `key` lives, for messages: its file path or the in-memory label."""
        return str(self.files[key]) if key in self.files else self.label

    def shape(self, key: str) -> tuple[int, ...]:
        """The stored shape of `key`, read from the header only."""
        if key in self.memory:
            return tuple(self.memory[key].shape)
        return tuple(self._handle(key).get_slice(key).get_shape())

    def dtype(self, key: str) -> torch.dtype | None:
        """The stored dtype of `key` (None for a type the audit never analyses, e.g. integers)."""
        if key in self.memory:
            return self.memory[key].dtype
        return SAFETENSORS_DTYPES.get(self._handle(key).get_slice(key).get_dtype())

    def tensor(self, key: str) -> Tensor:
        """Materialise one tensor in its stored dtype."""
        if key in self.memory:
            return self.memory[key]
        try:
            return self._handle(key).get_tensor(key)
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"{self.source(key)}: {key}: cannot read the tensor ({error})") from None

    def _handle(self, key: str) -> Any:
        path = self.files[key]
        if path not in self._handles:
            self._handles[path] = _open_safetensors(path)
        return self._handles[path]


def open_checkpoint(source: Source, allow_pickle: bool = False) -> Checkpoint:
    """A checkpoint from a folder, a file, a Hugging Face id in the local cache, a module or a state dict."""
    if isinstance(source, nn.Module):
        return _from_module(source)
    if isinstance(source, Mapping):
        return _from_state_dict(source, "<state dict>")
    path = _existing_path(str(source))
    if path.is_file():
        return _from_files(path.parent, [path], allow_pickle)
    return _from_folder(path, allow_pickle)


def read_config(folder: Path) -> dict[str, Any]:
    """`config.json` of a model folder, or {} when there is none."""
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: expected valid JSON ({error})") from None


def _existing_path(name: str) -> Path:
    path = Path(name).expanduser()
    if path.exists():
        return path
    cached = _hub_cache_snapshot(name)
    if cached is not None:
        return cached
    raise CheckpointError(
        f"{name}: no such file or folder (expected a folder of safetensors, a .safetensors file, "
        "or a Hugging Face id in the local cache)"
    )


def _hub_cache_snapshot(name: str) -> Path | None:
    """The newest local snapshot of a Hugging Face id (`org/name`), found without importing huggingface_hub."""
    if name.count("/") != 1:
        return None
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    snapshots = hub / f"models--{name.replace('/', '--')}" / "snapshots"
    candidates = sorted(snapshots.glob("*"), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    return candidates[-1] if candidates else None


def _from_folder(folder: Path, allow_pickle: bool) -> Checkpoint:
    index = folder / INDEX_FILE
    if index.is_file():
        return _from_index(folder, index)
    files = sorted(p for p in folder.glob("*.safetensors") if p.name != "adapter_model.safetensors")
    if not files:
        files = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not files:
        raise CheckpointError(f"{folder}: expected *.safetensors files or {INDEX_FILE}, found none")
    return _from_files(folder, files, allow_pickle)


def _from_index(folder: Path, index: Path) -> Checkpoint:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{index}: weight_map: expected a JSON object of tensor -> shard ({error!r})"
        ) from None
    files = {key: folder / shard for key, shard in weight_map.items()}
    for shard in sorted(set(files.values())):
        if not shard.is_file():
            raise CheckpointError(f"{index}: shard {shard.name}: file is missing")
        _open_safetensors(shard)
    return Checkpoint(str(folder), read_config(folder), files=files)


def _from_files(folder: Path, paths: list[Path], allow_pickle: bool) -> Checkpoint:
    if paths[0].suffix in PICKLE_SUFFIXES:
        return _from_pickles(folder, paths, allow_pickle)
    files: dict[str, Path] = {}
    checkpoint = Checkpoint(str(folder), read_config(folder), files=files)
    for path in paths:
        handle = _open_safetensors(path)
        checkpoint._handles[path] = handle
        files.update({key: path for key in handle.keys()})  # noqa: SIM118 - a safe_open handle, not a dict
    return checkpoint


def _from_pickles(folder: Path, paths: list[Path], allow_pickle: bool) -> Checkpoint:
    """Pickle weights, only with explicit permission and only through the weights-only unpickler."""
    if not allow_pickle:
        raise CheckpointError(
            f"{paths[0]}: pickle checkpoint refused (it could execute code); convert it to safetensors "
            "or pass allow_pickle=True (--allow-pickle) to read it with torch.load(weights_only=True)"
        )
    tensors: dict[str, Tensor] = {}
    for path in paths:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - the unpickler raises many types for a bad file
            raise CheckpointError(f"{path}: not a readable weights-only torch checkpoint ({error})") from None
        tensors.update(_state_dict_tensors(loaded, str(path)))
    return Checkpoint(str(folder), read_config(folder), memory=tensors)


def _from_module(module: nn.Module) -> Checkpoint:
    """A module's state dict; its Conv1D submodules (by class name, GPT-2 style) are recorded for orientation."""
    config = getattr(module, "config", None)
    config_dict = config.to_dict() if config is not None and hasattr(config, "to_dict") else {}
    conv1d = frozenset(name for name, child in module.named_modules() if type(child).__name__ == "Conv1D")
    checkpoint = _from_state_dict(module.state_dict(), f"<{type(module).__name__}>")
    checkpoint.config, checkpoint.conv1d_modules = config_dict, conv1d
    return checkpoint


def _from_state_dict(state: Mapping[str, Any], label: str) -> Checkpoint:
    return Checkpoint(label, memory=_state_dict_tensors(state, label))


def _state_dict_tensors(state: Any, label: str) -> dict[str, Tensor]:
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{label}: expected a mapping of tensor names to tensors, got {type(state).__name__}"
        )
    return {str(key): value.detach() for key, value in state.items() if isinstance(value, Tensor)}


def _open_safetensors(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a valid safetensors file ({error})") from None
