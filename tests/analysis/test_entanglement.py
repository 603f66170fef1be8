"""Entanglement profiles: product states, the rank bound at the centre cut, the exact LoRA fast path, and the
partial-trace route against one SVD per matricisation (§4)."""

from __future__ import annotations

import math

import torch

from autopeft.analysis import entanglement_profile, lowrank_entanglement_profile
from autopeft.analysis.entanglement import _interleave, prime_factors, schmidt_entropy


def _kron_vector(sizes: list[int], generator: torch.Generator) -> torch.Tensor:
    vector = torch.ones(1)
    for size in sizes:
        vector = torch.kron(vector, torch.randn(size, generator=generator))
    return vector


def test_prime_factors_follow_ascending_order() -> None:
    assert prime_factors(384) == [2] * 7 + [3]
    assert prime_factors(14336) == [2] * 11 + [7]
    assert prime_factors(1) == []


def test_product_state_matrix_has_zero_entanglement_at_every_cut() -> None:
    generator = torch.Generator().manual_seed(0)
    M = torch.outer(_kron_vector([2, 2, 2, 3], generator), _kron_vector([2, 2, 2, 2], generator))
    profile = entanglement_profile(M)
    assert len(profile.entropies) == 7
    assert max(abs(value) for value in profile.entropies) < 1e-6
    assert profile.bond_dimensions == [1] * 7


def test_rank_r_update_centre_cut_is_bounded_by_ln_r() -> None:
    generator = torch.Generator().manual_seed(1)
    B, A = torch.randn(64, 4, generator=generator), torch.randn(4, 64, generator=generator)
    profile = entanglement_profile(B @ A)
    centre = profile.entropies[profile.centre - 1]
    assert centre <= math.log(4) + 1e-6
    assert max(profile.entropies) > centre


def test_lora_fast_path_profile_equals_the_dense_profile() -> None:
    generator = torch.Generator().manual_seed(2)
    B, A = torch.randn(48, 3, generator=generator), torch.randn(3, 32, generator=generator)
    fast = lowrank_entanglement_profile(B, A)
    dense = entanglement_profile(B @ A)
    assert fast.sites == dense.sites
    assert all(abs(a - b) < 1e-4 for a, b in zip(fast.entropies, dense.entropies))


def test_dense_gaussian_matrix_stays_below_the_volume_law_ceiling() -> None:
    M = torch.randn(64, 64, generator=torch.Generator().manual_seed(3))
    profile = entanglement_profile(M, ordering="interleaved")
    assert all(entropy <= ceiling + 1e-6 for entropy, ceiling in zip(profile.entropies, profile.ceilings))
    assert profile.ordering == "interleaved" and len(profile.entropies) == 11


def _entropies_by_svd(M: torch.Tensor, ordering: str) -> list[float]:
    """The definition, literally: one fp64 SVD per matricisation."""
    row_sites, col_sites = prime_factors(M.shape[0]), prime_factors(M.shape[1])
    psi, sites = (
        _interleave(M.double(), row_sites, col_sites)
        if ordering == "interleaved"
        else (M.double(), row_sites + col_sites)
    )
    return [
        schmidt_entropy(torch.linalg.svdvals(psi.reshape(math.prod(sites[:cut]), -1)))
        for cut in range(1, len(sites))
    ]


def test_partial_trace_profile_equals_one_svd_per_cut() -> None:
    generator = torch.Generator().manual_seed(4)
    for shape in [(96, 384), (384, 96), (90, 12), (7, 5), (30, 1)]:
        M = torch.randn(shape, generator=generator) * torch.linspace(0.1, 3.0, shape[1])  # no flat spectrum
        for ordering in ("row_then_col", "interleaved"):
            profile = entanglement_profile(M, ordering)
            reference = _entropies_by_svd(M, ordering)
            assert len(profile.entropies) == len(reference)
            assert all(abs(a - b) < 1e-10 for a, b in zip(profile.entropies, reference)), (shape, ordering)
