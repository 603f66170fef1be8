"""The rounding-noise floor of an update whose fine-tuned weights were stored in 16 bits.

A bf16/fp16 checkpoint re-rounds every entry, so `ΔW_obs = ΔW_true + E` with a dense noise matrix E that inflates
rank-type metrics of ΔW (ANALYSIS.md §5). Modelling each rounding error as uniform on ±ulp/2 gives
`σ_E² = mean(ulp²)/12` and the noise edge `τ = σ_E(√m + √n)`, the top singular value of such an i.i.d. matrix.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

SIGNIFICAND_BITS = {torch.bfloat16: 7, torch.float16: 10}
FP16_MIN_EXPONENT = -14


class NoiseFloor(NamedTuple):
    """Noise level per entry, predicted noise edge, count of update singular values above it, energy below it."""

    sigma: float
    tau: float
    n_above: int
    energy_below: float


def is_low_precision(dtype: torch.dtype) -> bool:
    """True for the 16-bit float formats whose rounding noise this module models."""
    return dtype in SIGNIFICAND_BITS


def unit_in_last_place(W: Tensor) -> Tensor:
    """`ulp(w) = 2^(⌊log2|w|⌋ − t)` per entry of a bf16/fp16 tensor (t = 7 or 10), in fp64; 0 for zeros."""
    bits = SIGNIFICAND_BITS[W.dtype]
    magnitude = W.double().abs()
    exponent = torch.floor(torch.log2(magnitude))
    if W.dtype == torch.float16:
        exponent = exponent.clamp_min(FP16_MIN_EXPONENT)
    return torch.where(magnitude > 0, torch.exp2(exponent - bits), torch.zeros_like(magnitude))


def noise_floor(W_stored: Tensor, delta_S: Tensor) -> NoiseFloor:
    """Floor of the update from the stored 16-bit fine-tuned matrix (m, n) and the update's singular values."""
    m, n = W_stored.shape
    sigma = math.sqrt(float((unit_in_last_place(W_stored) ** 2).mean()) / 12.0)
    tau = sigma * (math.sqrt(m) + math.sqrt(n))
    energy = delta_S.double() ** 2
    total = float(energy.sum())
    below = float(energy[delta_S <= tau].sum()) / total if total > 0 else math.nan
    return NoiseFloor(sigma, tau, int((delta_S > tau).sum()), below)
