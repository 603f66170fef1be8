"""Adapter: a PEFT LoRA or AdaLoRA adapter folder read as per-module low-rank updates `ΔW = B̂ A` (out, in).

The scale follows peft exactly (ANALYSIS.md §1): LoRA `s = α/r`, or `α/√r` with `use_rslora`, with `r` and `α`
per module from `rank_pattern`/`alpha_pattern` (first key, in dict order, for which
`re.match(r"(.*\\.)?(" + key + r")$", module)` succeeds). AdaLoRA: `ΔW = B·(A ⊙ E)·α/(ranknum + 1e-5)`, where peft
sets `ranknum` to the stored rank. peft may not be imported here, so the rules are re-implemented and tested
against peft's `merge_and_unload`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from autopeft.analysis.checkpoint import Checkpoint, open_checkpoint
from autopeft.analysis.errors import AnalysisError, CheckpointError
from autopeft.analysis.naming import Skipped, canonical_name

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>A|B|E)(?:\.weight)?$")
WRAPPER = "base_model.model."
ADALORA_EPSILON = 1e-5
SUPPORTED = ("LORA", "ADALORA")


@dataclass(frozen=True)
class LoraUpdate:
    """One adapted module: its name as peft sees it (`bert.encoder.layer.0.attention.self.query`), its factors' keys,
    the rank and alpha that apply to it, and the resulting scale `s`."""

    module: str
    key_A: str
    key_B: str
    key_E: str | None
    rank: int
    alpha: float
    scale: float

    @property
    def name(self) -> str:
        """The canonical name used to pair the update with a base matrix."""
        return canonical_name(self.module)


@dataclass
class Adapter:
    """A read adapter: its folder, config, tensors, updates and the keys that are not LoRA factors."""

    folder: Path
    method: str
    config: dict[str, Any]
    checkpoint: Checkpoint
    updates: list[LoraUpdate]
    excluded: list[Skipped]

    @property
    def base_model(self) -> str | None:
        """`base_model_name_or_path` from the adapter config, if recorded."""
        value = self.config.get("base_model_name_or_path")
        return str(value) if value else None


def read_adapter(folder: str | Path, allow_pickle: bool = False) -> Adapter:
    """Read `adapter_config.json` and the adapter weights of a PEFT adapter folder."""
    folder = Path(folder).expanduser()
    config = _read_config(folder)
    method = str(config.get("peft_type", "")).upper()
    _check_method(folder, config, method)
    checkpoint = open_checkpoint(_weights_file(folder), allow_pickle=allow_pickle)
    factors, excluded = _group_factors(checkpoint)
    updates = [_update(folder, checkpoint, config, method, module, keys) for module, keys in factors.items()]
    return Adapter(folder, method.lower(), config, checkpoint, updates, excluded)


def pattern_value(pattern: dict[str, Any], module: str, default: Any) -> Any:
    """peft's rule: the value of the first key (dict order) that matches the end of `module` at a dot boundary."""
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def update_factors(adapter: Adapter, update: LoraUpdate) -> tuple[Tensor, Tensor]:
    """`(B̂, A)` in fp32 with `ΔW = B̂ A` (out, in): B̂ = s·B (m, r); for AdaLoRA A carries the E diagonal."""
    A = adapter.checkpoint.tensor(update.key_A).float()
    B = adapter.checkpoint.tensor(update.key_B).float()
    if update.key_E is not None:
        A = A * adapter.checkpoint.tensor(update.key_E).float().reshape(-1, 1)
    return B * update.scale, A


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (expected a PEFT adapter folder)")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: expected a JSON object ({error})") from None


def _check_method(folder: Path, config: dict[str, Any], method: str) -> None:
    if method not in SUPPORTED:
        raise AnalysisError(
            f"{folder / CONFIG_FILE}: peft_type: expected one of {list(SUPPORTED)}, got {method or None!r}; "
            "audit a merged checkpoint with --finetuned instead"
        )
    if config.get("use_dora"):
        raise AnalysisError(
            f"{folder / CONFIG_FILE}: use_dora: DoRA updates are not low-rank; audit a merged checkpoint with --finetuned"
        )


def _weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder}: expected {WEIGHT_FILES[0]} beside {CONFIG_FILE}, found none")


def _group_factors(checkpoint: Checkpoint) -> tuple[dict[str, dict[str, str]], list[Skipped]]:
    """Factor keys per module, and every other key with the reason it is not analysed."""
    factors: dict[str, dict[str, str]] = {}
    excluded: list[Skipped] = []
    for key in checkpoint.keys():  # noqa: SIM118 - a Checkpoint is not a dict
        match = LORA_KEY.match(key)
        if match is None:
            excluded.append(Skipped(key, _non_lora_reason(key)))
            continue
        module = match.group("module").removeprefix(WRAPPER)
        factors.setdefault(module, {})[match.group("part")] = key
    return factors, excluded


def _non_lora_reason(key: str) -> str:
    if ".lora_" in key:
        return "unsupported LoRA tensor (embedding or bias adapter)"
    return "not a LoRA factor (modules_to_save head or other full replacement, not a low-rank update)"


def _update(
    folder: Path,
    checkpoint: Checkpoint,
    config: dict[str, Any],
    method: str,
    module: str,
    keys: dict[str, str],
) -> LoraUpdate:
    if "A" not in keys or "B" not in keys:
        missing = "lora_A" if "A" not in keys else "lora_B"
        raise CheckpointError(
            f"{checkpoint.source(next(iter(keys.values())))}: {module}: {missing} is missing"
        )
    stored_rank = checkpoint.shape(keys["A"])[0]
    if method == "ADALORA":
        alpha = float(config.get("lora_alpha") or stored_rank)
        return LoraUpdate(
            module,
            keys["A"],
            keys["B"],
            keys.get("E"),
            stored_rank,
            alpha,
            alpha / (stored_rank + ADALORA_EPSILON),
        )
    rank = int(pattern_value(config.get("rank_pattern") or {}, module, config.get("r", 8)))
    alpha = float(pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", 8)))
    if rank != stored_rank:
        raise CheckpointError(
            f"{checkpoint.source(keys['A'])}: {keys['A']}: expected rank {rank} from {CONFIG_FILE} "
            f"(r / rank_pattern), got {stored_rank} rows"
        )
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return LoraUpdate(module, keys["A"], keys["B"], None, rank, alpha, scale)
