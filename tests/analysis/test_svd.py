"""The exact low-rank paths and the Gram route against SVD references (ANALYSIS.md §6.4–6.6)."""

from __future__ import annotations

import pytest
import torch
from matrix_builders import decaying_matrix

from autopeft.analysis import (
    base_overlap,
    full_svd,
    intruder_scores,
    lowrank_svd,
    merged_spectrum,
    randomized_svd,
    singular_values,
)
from autopeft.analysis.svd import (
    gram_route,
    symmetric_eigenvalues,
    try_gram_svd,
    try_lanczos_svd,
)


@pytest.mark.parametrize("complete", [True, False], ids=["full", "top"])
@pytest.mark.parametrize("shape", [(48, 48), (64, 40), (40, 64), (160, 160), (200, 96), (96, 200)])
def test_lora_fast_path_equals_the_two_svd_reference(shape: tuple[int, int], complete: bool) -> None:
    """Small cores take the dense solve, cores of 64 and more the Lanczos one; both match two full SVDs."""
    m, n = shape
    generator = torch.Generator().manual_seed(3)
    W0 = decaying_matrix(m, n, seed=1)
    B = torch.randn(m, 4, generator=generator) * 2.0
    A = torch.randn(4, n, generator=generator)
    base = full_svd(W0)
    fast = merged_spectrum(base, B, A, k=10, complete=complete)
    reference = full_svd(W0 + B @ A)
    assert fast.complete == complete
    assert fast.S.numel() == (min(m, n) if complete else 11)
    assert torch.allclose(fast.S, reference.S[: fast.S.numel()], atol=1e-5 * float(reference.S[0]))
    assert fast.frobenius == pytest.approx(float(torch.linalg.vector_norm(reference.S.double())), rel=1e-6)
    fast_scores = intruder_scores(fast.overlap, base.S, fast.S).scores
    reference_scores = intruder_scores(base_overlap(base.U, reference.U[:, :10]), base.S, reference.S).scores
    assert torch.allclose(fast_scores, reference_scores, atol=1e-5)


@pytest.mark.parametrize("shape", [(30, 70), (70, 30)])
def test_wide_and_tall_matrices_decompose_to_the_same_factors_layout(shape: tuple[int, int]) -> None:
    W = decaying_matrix(*shape, seed=4)
    svd = full_svd(W)
    p = min(shape)
    assert svd.U.shape == (shape[0], p) and svd.V.shape == (shape[1], p)
    assert torch.allclose((svd.U * svd.S) @ svd.V.T, W, atol=1e-5)
    assert torch.allclose(svd.U.T @ svd.U, torch.eye(p), atol=1e-5)
    assert torch.allclose(singular_values(W), svd.S, atol=1e-6)


def test_lowrank_svd_matches_svd_of_the_product() -> None:
    generator = torch.Generator().manual_seed(0)
    B, A = torch.randn(30, 3, generator=generator), torch.randn(3, 20, generator=generator)
    fast = lowrank_svd(B, A)
    assert torch.allclose(fast.S, torch.linalg.svdvals(B @ A)[:3], rtol=1e-5)
    assert torch.allclose((fast.U * fast.S) @ fast.V.T, B @ A, atol=1e-5)


def test_randomized_top_k_matches_exact_singular_vectors() -> None:
    W = decaying_matrix(120, 100, seed=2)
    top = randomized_svd(W, k=5, power_iterations=4)
    exact = full_svd(W)
    assert torch.allclose(top.S, exact.S[:5], rtol=1e-4)
    cosines = (top.U.T @ exact.U[:, :5]).diagonal().abs()
    assert bool((cosines > 1 - 1e-4).all())


@pytest.mark.parametrize("shape", [(160, 120), (120, 160)])
def test_lanczos_top_k_matches_exact_singular_vectors_and_declines_small_matrices(
    shape: tuple[int, int],
) -> None:
    W = decaying_matrix(*shape, seed=5)
    exact = full_svd(W)
    top = try_lanczos_svd(W, k=10, S_all=exact.S)
    assert top is not None
    assert torch.allclose(top.S, exact.S[:10], rtol=1e-5)
    for mine, reference in ((top.U, exact.U), (top.V, exact.V)):
        assert bool(((mine.T @ reference[:, :10]).diagonal().abs() > 1 - 1e-5).all())
    assert try_lanczos_svd(decaying_matrix(40, 40, seed=5), k=10) is None


@pytest.mark.parametrize("shape", [(320, 96), (96, 320)])
def test_gram_route_gives_the_svd_values_and_top_vectors_of_long_matrices(shape: tuple[int, int]) -> None:
    W = decaying_matrix(*shape, seed=6)
    (W[:, :4] if shape[0] > shape[1] else W[:4]).zero_()  # rank 92: zero values stay below the zero threshold
    U, S_exact, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    assert gram_route(W) and not gram_route(W[:96, :96]) and not gram_route(W[:40, :100])
    values = singular_values(W)
    assert values.dtype == torch.float32 and values.shape == (96,)
    assert torch.allclose(values.double(), S_exact, atol=1e-6 * float(S_exact[0]))
    assert bool((values[-4:] < max(shape) * 1.2e-7 * float(values[0])).all())
    found = try_gram_svd(W, k=10)
    assert found is not None
    S, top = found
    assert torch.equal(S, values)
    assert top.U.shape == (shape[0], 10) and top.V.shape == (shape[1], 10)
    for mine, reference in ((top.U, U), (top.V, Vh.T)):
        assert bool(((mine.double().T @ reference[:, :10]).diagonal().abs() > 1 - 1e-6).all())


def test_symmetric_eigenvalues_agree_on_both_sides_of_the_dsyevr_size() -> None:
    for size in (40, 200):
        X = torch.randn(size, 2 * size, generator=torch.Generator().manual_seed(size), dtype=torch.float64)
        gram = X @ X.T
        values = symmetric_eigenvalues(gram)
        assert torch.allclose(values, torch.linalg.eigvalsh(gram).flip(0), rtol=1e-10)
        assert bool((values[:-1] >= values[1:]).all())


def test_randomized_top_k_refuses_fewer_than_four_power_iterations() -> None:
    with pytest.raises(ValueError, match="power_iterations: expected >= 4"):
        randomized_svd(torch.eye(30), k=3, power_iterations=2)
