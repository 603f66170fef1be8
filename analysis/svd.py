"""Singular value decompositions: exact, values-only, randomized top-k, and exact low-rank updates.

Every decomposition upcasts to fp32 first (no library offers a bf16 SVD; ANALYSIS.md §1). The small cores of the
low-rank paths (ANALYSIS.md §6.5, §6.6) are solved in fp64 because they are tiny and the intruder scores read
single coordinates of their singular vectors.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from autopeft.analysis.errors import DeviceError

ACCEPT_TOLERANCE = 1e-3
MAX_POWER_ITERATIONS = 16


class Svd(NamedTuple):
    """Thin SVD `W = U diag(S) Vᵀ` of an (out, in) matrix: S (p,) descending, U (m, p), V (n, p).

    `U` and `V` are None for a values-only decomposition; a top-k decomposition holds k columns.
    """

    S: Tensor
    U: Tensor | None = None
    V: Tensor | None = None


class MergedSpectrum(NamedTuple):
    """What the audit needs of `Wt = W0 + ΔW`, obtained from the base SVD without a second large SVD.

    `S` holds every singular value of `Wt` (or only the top k when the full spectrum was not requested);
    `overlap` (p, k) holds `U0ᵀ y_j`, the base coordinates of the top-k left singular vectors of `Wt`;
    `frobenius` is `‖Wt‖_F = ‖K‖_F`, exact even when only the top of the spectrum was computed.
    """

    S: Tensor
    overlap: Tensor
    frobenius: float


def set_threads(threads: int | None) -> None:
    """Fix the number of CPU threads torch uses for BLAS/LAPACK; None leaves the current setting alone."""
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_device(name: str) -> torch.device:
    """The compute device for `name` ('cpu' or 'cuda'); asking for CUDA without one is an error, not a fallback."""
    if name not in ("cpu", "cuda"):
        raise DeviceError(f"device: expected 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "device: 'cuda' was requested but torch.cuda.is_available() is False; use --device cpu"
        )
    return torch.device(name)


def as_fp32(W: Tensor, device: torch.device | None = None) -> Tensor:
    """A detached fp32 copy-or-view of `W` on `device` (default: where it is)."""
    return W.detach().to(device=device or W.device, dtype=torch.float32)


def full_svd(W: Tensor) -> Svd:
    """Thin SVD of an (m, n) matrix in fp32 (gesdd on CPU)."""
    U, S, Vh = torch.linalg.svd(as_fp32(W), full_matrices=False)
    return Svd(S, U, Vh.mT)


def singular_values(W: Tensor) -> Tensor:
    """All singular values of `W` in fp32, descending; about 2× cheaper than `full_svd` (ANALYSIS.md §6.1)."""
    return torch.linalg.svdvals(as_fp32(W))


def wedin_bounds(W: Tensor, top: Svd, S_all: Tensor | None = None) -> Tensor:
    """Angle-error bound `‖W v_j − σ_j u_j‖ / gap_j` of each computed singular pair (ANALYSIS.md §6.4).

    The gap is measured to the other computed values and to the next value beyond the last one.
    """
    assert top.U is not None and top.V is not None
    residual = torch.linalg.vector_norm(W @ top.V - top.U * top.S, dim=0)
    values = top.S if S_all is None else S_all
    gaps = (top.S[:, None] - values[None, :]).abs()
    own = torch.arange(len(top.S), device=gaps.device)
    gaps[own, own] = torch.inf
    return residual / gaps.min(dim=1).values.clamp_min(torch.finfo(W.dtype).tiny)


def randomized_svd(W: Tensor, k: int, power_iterations: int = 4, oversample: int = 10, seed: int = 0) -> Svd:
    """Top-k SVD by subspace iteration (Halko, Martinsson & Tropp 2011), accepted only when exact enough.

    At `q ≤ 1` power iterations the method manufactures false intruders (ANALYSIS.md §6.4), so `q < 4` is
    refused. A result is accepted when every Wedin bound is ≤ 1e-3; otherwise `q` doubles up to 16, and
    then the exact SVD is used.
    """
    accepted = try_randomized_svd(W, k, power_iterations, oversample, seed)
    return accepted if accepted is not None else truncate(full_svd(W), k)


def try_randomized_svd(
    W: Tensor, k: int, power_iterations: int = 4, oversample: int = 10, seed: int = 0
) -> Svd | None:
    """`randomized_svd` without the exact fallback: None when no `q ≤ 16` passes the acceptance test.

    Callers that need the full spectrum anyway use this, so a fallback costs one thin SVD instead of two.
    """
    if power_iterations < 4:
        raise ValueError(
            f"power_iterations: expected >= 4 (fewer manufactures false intruders), got {power_iterations}"
        )
    W = as_fp32(W)
    k = min(k, *W.shape)
    width = min(k + oversample, *W.shape)
    if width >= min(W.shape):
        return truncate(full_svd(W), k)
    generator = torch.Generator(device=W.device).manual_seed(seed)
    omega = torch.randn(W.shape[1], width, generator=generator, device=W.device)
    q = power_iterations
    while q <= MAX_POWER_ITERATIONS:
        sketch = _subspace_iteration(W, omega, q)
        bounds = wedin_bounds(W, Svd(sketch.S[:k], sketch.U[:, :k], sketch.V[:, :k]), sketch.S)
        if bool((bounds <= ACCEPT_TOLERANCE).all()):
            return truncate(sketch, k)
        q *= 2
    return None


def _subspace_iteration(W: Tensor, omega: Tensor, q: int) -> Svd:
    """Range finder with `q` re-orthonormalised power iterations, then the SVD of the small projection."""
    Q = torch.linalg.qr(W @ omega).Q
    for _ in range(q):
        Q = torch.linalg.qr(W @ torch.linalg.qr(W.mT @ Q).Q).Q
    Ub, S, Vh = torch.linalg.svd(Q.mT @ W, full_matrices=False)
    return Svd(S, Q @ Ub, Vh.mT)


def truncate(decomposition: Svd, k: int) -> Svd:
    """The leading k triplets of a decomposition."""
    U, V = decomposition.U, decomposition.V
    return Svd(decomposition.S[:k], None if U is None else U[:, :k], None if V is None else V[:, :k])


def lowrank_svd(B: Tensor, A: Tensor) -> Svd:
    """Exact thin SVD of `ΔW = B A` (B (m, r), A (r, n)) through QR cores, never forming ΔW (ANALYSIS.md §6.6).

    Returns r singular triplets in fp32: `ΔW = (Q1 Z) Σ (Q2 H)ᵀ` with `B = Q1 R1`, `Aᵀ = Q2 R2`, `R1 R2ᵀ = Z Σ Hᵀ`.
    """
    Q1, R1 = torch.linalg.qr(B.double())
    Q2, R2 = torch.linalg.qr(A.double().mT)
    Z, S, Hh = torch.linalg.svd(R1 @ R2.mT)
    return Svd(S.float(), (Q1 @ Z).float(), (Q2 @ Hh.mT).float())


def merged_spectrum(base: Svd, B: Tensor, A: Tensor, k: int) -> MergedSpectrum:
    """Spectrum and intruder overlaps of `Wt = W0 + B A` from the cached base SVD (Brand 2006; ANALYSIS.md §6.5).

    B (m, r) already carries the LoRA scale; A is (r, n). `Wt = [U0 Q_B] K [V0 Q_A]ᵀ` with a small core `K`,
    so σ(Wt) = σ(K) and `U0ᵀ y_j` is the first p entries of K's j-th left singular vector.
    """
    assert base.U is not None and base.V is not None
    K = _merged_core(base, B.double(), A.double().mT)
    p = base.S.shape[0]
    S, left = _core_decomposition(K, min(k, p))
    return MergedSpectrum(S[:p].float(), left[:p].float(), float(torch.linalg.matrix_norm(K)))


def _merged_core(base: Svd, B_hat: Tensor, A_hat: Tensor) -> Tensor:
    """The core `K = diag(S0, 0) + L Rᵀ` (fp64) of ANALYSIS.md §6.5, steps 1–3."""
    U0, V0, S0 = base.U.double(), base.V.double(), base.S.double()  # type: ignore[union-attr]
    P, R_B = _project_and_complete(U0, B_hat)
    Qm, R_A = _project_and_complete(V0, A_hat)
    L = torch.cat([P, R_B])
    R = torch.cat([Qm, R_A])
    K = L @ R.mT
    p = S0.shape[0]
    K[:p, :p] += torch.diag(S0)
    return K


def _project_and_complete(Q0: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates `Q0ᵀ X` and the triangular factor of X's residual off span(Q0) (empty when Q0 is square)."""
    P = Q0.mT @ X
    if Q0.shape[0] <= Q0.shape[1]:
        return P, X.new_zeros(0, X.shape[1])
    residual = X - Q0 @ P
    residual = residual - Q0 @ (Q0.mT @ residual)
    return P, torch.linalg.qr(residual).R


def _core_decomposition(K: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """All singular values and the top-k left singular vectors of the small fp64 core, from one `eigh`.

    The Gram matrix of the smaller side is decomposed; with `KᵀK = V Λ Vᵀ` the left vectors are `K v_j / σ_j`.
    fp64 keeps the squared spectrum exact far below the fp32 working precision of the audit.
    """
    if K.shape[0] <= K.shape[1]:
        eigenvalues, vectors = torch.linalg.eigh(K @ K.mT)
        S = eigenvalues.flip(0).clamp_min(0.0).sqrt()
        return S, vectors.flip(1)[:, :k]
    eigenvalues, vectors = torch.linalg.eigh(K.mT @ K)
    S = eigenvalues.flip(0).clamp_min(0.0).sqrt()
    right = vectors.flip(1)[:, :k]
    nonzero = S[:k] > 0
    left = (K @ right) / torch.where(nonzero, S[:k], torch.ones_like(S[:k]))
    return S, left * nonzero
