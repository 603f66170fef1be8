"""Builders for analysis tests: matrices with known spectra and checkpoint folders (imported by test modules)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def matrix_with_spectrum(
    values: list[float] | torch.Tensor, rows: int, cols: int, seed: int = 0
) -> torch.Tensor:
    """An (rows, cols) fp32 matrix with exactly the given singular values and random singular vectors."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.as_tensor(values, dtype=torch.float64)
    U = torch.linalg.qr(torch.randn(rows, len(values), generator=generator, dtype=torch.float64)).Q
    V = torch.linalg.qr(torch.randn(cols, len(values), generator=generator, dtype=torch.float64)).Q
    return ((U * values) @ V.T).float()


def decaying_matrix(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """A matrix with well-separated, decaying singular values (σ_i = 10·0.93^i)."""
    p = min(rows, cols)
    return matrix_with_spectrum([10.0 * 0.93**i for i in range(p)], rows, cols, seed)


def write_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], config: dict | None = None) -> Path:
    """A model folder with model.safetensors (+ config.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config or {"model_type": "bert"}))
    return folder
