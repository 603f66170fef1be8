"""The bf16 rounding-noise floor reproduces the synthetic check of ANALYSIS.md §5 (at 512² for speed)."""

from __future__ import annotations

import math

import torch
from matrix_builders import matrix_with_spectrum

from autopeft.analysis import effective_rank, noise_floor
from autopeft.analysis.noise_floor import unit_in_last_place


def test_bf16_ulp_matches_the_format() -> None:
    W = torch.tensor([1.0, 1.5, 0.25, 0.0], dtype=torch.bfloat16)
    assert unit_in_last_place(W).tolist() == [2.0**-7, 2.0**-7, 2.0**-9, 0.0]


def test_noise_floor_separates_a_planted_rank_8_update_from_bf16_rounding() -> None:
    generator = torch.Generator().manual_seed(0)
    base16 = (torch.randn(512, 512, generator=generator) * 0.02).bfloat16()
    delta_true = matrix_with_spectrum([0.05] * 8, 512, 512, seed=1)
    ft16 = (base16.float() + delta_true).bfloat16()
    delta_S = torch.linalg.svdvals(ft16.float() - base16.float())
    floor = noise_floor(ft16, delta_S)
    assert floor.n_above == 8
    assert effective_rank(delta_S, (512, 512)) > 8.5
    above = delta_S[delta_S > floor.tau]
    assert math.isclose(effective_rank(above, (512, 512)), 8.0, rel_tol=0.02)
