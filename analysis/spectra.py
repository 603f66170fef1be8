"""Scalar metrics of a singular-value spectrum: norms, stable rank, effective rank, energy entropy.

Every function takes the singular values `S` (descending, fp32) of one matrix, so one decomposition serves all
metrics (ANALYSIS.md §2). Values at or below `max(m, n)·eps_fp32·σ_1` count as zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EPS_FP32 = float(torch.finfo(torch.float32).eps)


def significant(S: Tensor, shape: tuple[int, int]) -> Tensor:
    """The singular values that are not zero to fp32 working precision, in fp64, descending."""
    S = S.double()
    if S.numel() == 0 or float(S[0]) <= 0.0:
        return S[:0]
    return S[S > max(shape) * EPS_FP32 * float(S[0])]


def spectral_norm(S: Tensor) -> float:
    """`‖W‖₂ = σ_1` (0 for an empty or zero spectrum)."""
    return float(S.max()) if S.numel() else 0.0


def frobenius_norm(S: Tensor) -> float:
    """`‖W‖_F = (Σ σ_i²)^{1/2}`."""
    return float(torch.linalg.vector_norm(S.double()))


def stable_rank(S: Tensor) -> float:
    """`Σ σ_i² / σ_1²`, between 1 and rank(W); NaN for a zero matrix."""
    return stable_rank_from_norms(frobenius_norm(S), spectral_norm(S))


def stable_rank_from_norms(frobenius: float, spectral: float) -> float:
    """`‖W‖_F² / ‖W‖₂²`: the stable rank when only the top of the spectrum and the exact `‖W‖_F` are known."""
    return frobenius**2 / spectral**2 if spectral > 0 else math.nan


def effective_rank(S: Tensor, shape: tuple[int, int]) -> float:
    """Roy–Vetterli effective rank `exp(−Σ p_i ln p_i)`, `p_i = σ_i / Σσ_j` (nuclear, not squared); NaN if zero."""
    values = significant(S, shape)
    if values.numel() == 0:
        return math.nan
    return math.exp(_entropy(values / values.sum()))


def energy_entropy(S: Tensor, shape: tuple[int, int]) -> float:
    """`H₂ = −Σ q_i ln q_i`, `q_i = σ_i²/Σσ_j²`: the centre-cut entanglement (ANALYSIS.md §4); NaN if zero."""
    values = significant(S, shape)
    if values.numel() == 0:
        return math.nan
    energy = values**2
    return _entropy(energy / energy.sum())


def numerical_rank(S: Tensor, shape: tuple[int, int]) -> int:
    """The number of singular values that are not zero to fp32 working precision."""
    return int(significant(S, shape).numel())


def log10_or_nan(value: float) -> float:
    """`log10(value)`, NaN for a non-positive value (WeightWatcher's log norms of a zero matrix)."""
    return math.log10(value) if value > 0 else math.nan


def _entropy(probabilities: Tensor) -> float:
    """Shannon entropy in nats with `0·ln 0 = 0`."""
    positive = probabilities[probabilities > 0]
    return float(-(positive * positive.log()).sum())
