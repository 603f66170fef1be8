"""Power-law fit of an empirical spectral density (Clauset, Shalizi & Newman), vectorised.

Heavy-tailed self-regularisation (Martin & Mahoney) reads the exponent α of the ESD `λ_i = σ_i²`. The fit tries
every eigenvalue as `x_min`, takes the maximum-likelihood α of the tail above it, and keeps the candidate whose
Kolmogorov–Smirnov distance is smallest (ANALYSIS.md §2). WeightWatcher loops over candidates in Python; here the
tail sums come from one reversed cumulative sum and the KS step runs on blocks of candidates at once, each block
reading only the points above its smallest `x_min`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from torch import Tensor

MIN_TAIL = 5
MIN_EVALS = 10
FEW_EVALS = 50
CANDIDATE_BLOCK = 64
"""Candidates per vectorised KS step: small enough that a block reads few points below its own x_min."""


class PowerLawFit(NamedTuple):
    """The fitted exponent and its diagnostics; `reason` says why `alpha` is NaN, `flags` list caveats."""

    alpha: float
    xmin: float
    ks_distance: float
    tail_size: int
    sigma: float
    alpha_weighted: float
    log_alpha_norm: float
    reason: str = ""
    flags: str = ""


def fit_power_law(
    eigenvalues: Tensor | np.ndarray, min_tail: int = MIN_TAIL, min_evals: int = MIN_EVALS
) -> PowerLawFit:
    """Fit `p(λ) ∝ λ^{−α}` for `λ ≥ x_min` to the positive eigenvalues (any order, any scale).

    Returns NaN with a reason when fewer than `min_evals` positive eigenvalues exist.
    """
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    values = values[values > 0]
    if values.size < max(min_evals, min_tail + 1):
        return _failed(f"{values.size} positive eigenvalues (< {min_evals}): too few for a power-law fit")
    alphas, distances = _candidates(values, min_tail)
    if not np.isfinite(distances).any():
        return _failed("all candidate tails are constant: no power law")
    best = int(np.nanargmin(distances))
    return _report(values, best, float(alphas[best]), float(distances[best]))


def _candidates(values: np.ndarray, min_tail: int) -> tuple[np.ndarray, np.ndarray]:
    """MLE α and KS distance for every `x_min = values[j]` that leaves at least `min_tail` points."""
    logs = np.log(values)
    count = values.size - min_tail + 1
    tail_sizes = values.size - np.arange(count)
    tail_log_sums = np.cumsum(logs[::-1])[::-1][:count]
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + tail_sizes / (tail_log_sums - tail_sizes * logs[:count])
    distances = np.full(count, np.inf)
    for start in range(0, count, CANDIDATE_BLOCK):
        stop = min(count, start + CANDIDATE_BLOCK)
        distances[start:stop] = _ks_distances(logs[start:], alphas[start:stop], np.arange(stop - start))
    distances[~np.isfinite(alphas)] = np.inf
    return alphas, distances


def _ks_distances(logs: np.ndarray, alphas: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """KS distance of each candidate's tail to its fitted CDF, with the empirical CDF taken on both sides of each step.

    The larger of the two one-sided gaps `|(i+1)/n − F|` and `|i/n − F|` is `|(i+½)/n − F| + 1/(2n)`, so one
    difference per point suffices. `logs` starts at the block's first candidate, so a block of candidates only
    reads the points at or above its smallest `x_min` (the masked triangle below stays small).
    """
    positions = np.arange(logs.size)[None, :] - starts[:, None]
    tail_sizes = (logs.size - starts)[:, None].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        fitted = -np.expm1((1.0 - alphas[:, None]) * (logs[None, :] - logs[starts][:, None]))
        gap = np.abs((positions + 0.5) / tail_sizes - fitted)
    gap[positions < 0] = 0.0
    return np.nan_to_num(gap, nan=np.inf).max(axis=1) + 0.5 / tail_sizes[:, 0]


def _report(values: np.ndarray, best: int, alpha: float, distance: float) -> PowerLawFit:
    tail = values.size - best
    flags = []
    if values.size < FEW_EVALS:
        flags.append("few_evals")
    if alpha < 2:
        flags.append("over_trained")
    if alpha > 6:
        flags.append("under_trained")
    with np.errstate(over="ignore"):
        log_alpha_norm = float(np.log10(np.sum(values**alpha)))
    return PowerLawFit(
        alpha=alpha,
        xmin=float(values[best]),
        ks_distance=distance,
        tail_size=tail,
        sigma=(alpha - 1) / math.sqrt(tail),
        alpha_weighted=alpha * math.log10(values[-1]),
        log_alpha_norm=log_alpha_norm,
        flags=",".join(flags),
    )


def _failed(reason: str) -> PowerLawFit:
    return PowerLawFit(math.nan, math.nan, math.nan, 0, math.nan, math.nan, math.nan, reason=reason)
