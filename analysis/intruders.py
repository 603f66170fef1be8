"""Intruder dimensions: top fine-tuned singular directions that no base direction explains.

Source: Shuttleworth et al., "LoRA vs Full Fine-tuning: An Illusion of Equivalence" (NeurIPS 2025), Definition 3.1
and Algorithm 1; ANALYSIS.md §3. The score of the j-th left singular vector `y_j` of the merged matrix is
`c_j = max_i |⟨y_j, x_i⟩|` over all base left singular vectors `x_i`; `y_j` is an intruder iff `c_j < ε`.

Every function here starts from the overlap matrix `G = U0ᵀ Ut[:, :k]` (p, k). The dense path forms it by one
GEMM; the LoRA path reads it off the core SVD without any m-dimensional vector (ANALYSIS.md §6.5).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

DEFAULT_EPSILON = 0.5
EPSILON_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
DEGENERACY = 1e-3


class IntruderScores(NamedTuple):
    """Per top-k direction: the score `c_j`, the cluster-robust score, a degeneracy flag and `σ_j(Wt)`."""

    scores: Tensor
    robust: Tensor
    degenerate: Tensor
    values: Tensor


def base_overlap(U_base: Tensor, U_merged_top: Tensor) -> Tensor:
    """`G = U0ᵀ Ut[:, :k]` (p, k) for all p base left vectors U0 (m, p) and the top-k merged ones (m, k)."""
    return U_base.double().mT @ U_merged_top.double()


def intruder_scores(overlap: Tensor, base_S: Tensor, merged_S: Tensor) -> IntruderScores:
    """Scores, robust scores and degeneracy flags from the overlap G (p, k) and both spectra (descending).

    `merged_S` may hold more than k values; the (k+1)-th value then enters the boundary degeneracy test.
    """
    magnitude = overlap.abs()
    scores, best = magnitude.max(dim=0)
    clusters = _clusters(base_S)
    robust = _robust_scores(magnitude, clusters)
    k = overlap.shape[1]
    degenerate = _near_neighbours(merged_S, k) | _near_neighbours(base_S, base_S.numel())[best]
    return IntruderScores(scores.float(), robust.float(), degenerate, merged_S[:k].float())


def count_intruders(scores: Tensor, epsilon: float = DEFAULT_EPSILON) -> int:
    """`n_int = #{j : c_j < ε}`."""
    return int((scores < epsilon).sum())


def epsilon_sweep(scores: Tensor, epsilons: tuple[float, ...] = EPSILON_GRID) -> dict[float, int]:
    """Intruder counts for each ε; free because the scores are computed once."""
    return {epsilon: count_intruders(scores, epsilon) for epsilon in epsilons}


def _clusters(S: Tensor) -> Tensor:
    """Cluster id of each singular value: consecutive values closer than 1e-3·σ_1 share a cluster."""
    if S.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    tolerance = DEGENERACY * float(S[0])
    breaks = (S[:-1] - S[1:]).abs() >= tolerance
    return torch.cat([torch.zeros(1, dtype=torch.long), breaks.long().cumsum(0)])


def _robust_scores(magnitude: Tensor, clusters: Tensor) -> Tensor:
    """`c_j^rob = max_C ‖U0[:, C]ᵀ y_j‖₂` over clusters C of near-equal base singular values."""
    count = int(clusters.max()) + 1 if clusters.numel() else 0
    energy = torch.zeros(count, magnitude.shape[1], dtype=magnitude.dtype)
    energy.index_add_(0, clusters.to(magnitude.device), magnitude**2)
    return energy.sqrt().max(dim=0).values


def _near_neighbours(S: Tensor, k: int) -> Tensor:
    """For the first k values: is a neighbour (j−1 or j+1, where it exists) within 1e-3·σ_1?"""
    tolerance = DEGENERACY * float(S[0]) if S.numel() else 0.0
    gaps = (S[:-1] - S[1:]).abs().double()
    inf = torch.full((1,), float("inf"), dtype=torch.float64)
    left = torch.cat([inf, gaps])[:k]
    right = torch.cat([gaps, inf])[:k]
    return torch.minimum(left, right) < tolerance
