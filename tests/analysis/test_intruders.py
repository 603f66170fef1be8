"""Intruder dimensions on planted cases (ANALYSIS.md §3)."""

from __future__ import annotations

import torch
from matrix_builders import decaying_matrix

from autopeft.analysis import base_overlap, count_intruders, epsilon_sweep, full_svd, intruder_scores


def _scores(W0: torch.Tensor, Wt: torch.Tensor, k: int = 10):  # type: ignore[no-untyped-def]
    base, merged = full_svd(W0), full_svd(Wt)
    return intruder_scores(base_overlap(base.U, merged.U[:, :k]), base.S, merged.S)


def test_planted_rank_one_update_along_a_new_direction_is_one_intruder() -> None:
    W0 = decaying_matrix(256, 256, seed=0)
    generator = torch.Generator().manual_seed(1)
    u = torch.nn.functional.normalize(torch.randn(256, generator=generator), dim=0)
    v = torch.nn.functional.normalize(torch.randn(256, generator=generator), dim=0)
    scores = _scores(W0, W0 + 50.0 * torch.outer(u, v))
    assert count_intruders(scores.scores, 0.5) == 1
    assert float(scores.scores[0]) < 0.5 and bool((scores.scores[1:] >= 0.5).all())
    assert float(scores.values[0]) > 40.0


def test_identical_matrices_have_unit_scores_and_no_intruders() -> None:
    W0 = decaying_matrix(64, 48)
    scores = _scores(W0, W0.clone())
    assert torch.allclose(scores.scores, torch.ones(10), atol=1e-4)
    assert count_intruders(scores.scores) == 0


def test_robust_score_merges_a_degenerate_base_cluster() -> None:
    overlap = torch.zeros(4, 1, dtype=torch.float64)
    overlap[0, 0] = overlap[1, 0] = 0.5**0.5
    base_S = torch.tensor([2.0, 2.0, 1.0, 0.5])
    scores = intruder_scores(overlap, base_S, torch.tensor([3.0, 1.0]))
    assert abs(float(scores.scores[0]) - 0.5**0.5) < 1e-6
    assert abs(float(scores.robust[0]) - 1.0) < 1e-6
    assert bool(scores.degenerate[0])


def test_epsilon_sweep_counts_are_monotone_in_epsilon() -> None:
    counts = epsilon_sweep(torch.tensor([0.1, 0.35, 0.6, 0.95]))
    assert counts[0.05] == 0 and counts[0.15] == 1 and counts[0.5] == 2 and counts[0.95] == 3
    assert list(counts.values()) == sorted(counts.values())
