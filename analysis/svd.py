"""Singular value decompositions: exact, values-only, randomized top-k, and the exact SVD of a low-rank product.

Every decomposition upcasts to fp32 first (no library offers a bf16 SVD; ANALYSIS.md §1). The small core of the
low-rank product (ANALYSIS.md §6.6) is solved in fp64 because it is tiny. The spectrum of a LoRA-merged matrix
comes from the cached base SVD instead (`merged_core.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy.linalg.lapack import dsyevr
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor

from autopeft.analysis.errors import DeviceError

logger = logging.getLogger(__name__)
ACCEPT_TOLERANCE = 1e-3
MAX_POWER_ITERATIONS = 16
LANCZOS_MIN_SIZE = 64
"""Below this size a dense solve is as fast as Lanczos."""
LANCZOS_TOLERANCE = 1e-10
"""ARPACK's relative residual; on MiniLM's flat top spectra the vectors still match a dense solve to 1e-15."""
GRAM_MIN_ASPECT = 2
"""From this aspect ratio on, a CPU matrix's values (and top-k vectors) come from the fp64 Gram of its smaller side."""
DSYEVR_MIN_SIZE = 128
"""Size from which LAPACK's dsyevr beats torch's eigvalsh here (0.83 against 0.87 ms at 128, 40 against 72 at 768)."""


class Svd(NamedTuple):
    """Thin SVD `W = U diag(S) Vᵀ` of an (out, in) matrix: S (p,) descending, U (m, p), V (n, p).

    `U` and `V` are None for a values-only decomposition; a top-k decomposition holds k columns.
    """

    S: Tensor
    U: Tensor | None = None
    V: Tensor | None = None


def set_threads(threads: int | None) -> None:
    """Fix the number of CPU threads torch uses for BLAS/LAPACK; None leaves the current setting alone.

    The OpenBLAS that SciPy runs on (ARPACK, `dsyevr`) reads `OPENBLAS_NUM_THREADS` when it loads; analysis/
    imports nothing to change it later (ARCHITECTURE.md), so `autopeft audit --threads` limits it at the CLI.
    """
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
    """Thin SVD of an (m, n) matrix in fp32 (gesdd on CPU), decomposed in its tall orientation.

    torch hands LAPACK a column-major copy, and gesdd on a wide one runs 1.6–3× slower than on its transpose
    (384×1536: 110 ms against 68 ms; benchmarks/README.md), so a wide matrix is decomposed as `Wᵀ = V S Uᵀ`.
    """
    W = as_fp32(W)
    if W.shape[0] < W.shape[1]:
        U, S, Vh = torch.linalg.svd(W.mT, full_matrices=False)
        return Svd(S, Vh.mT, U)
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return Svd(S, U, Vh.mT)


def singular_values(W: Tensor) -> Tensor:
    """All singular values of `W` in fp32, descending; about 2× cheaper than `full_svd` (ANALYSIS.md §6.1).

    Like `full_svd`, a wide matrix is decomposed as its transpose (384×1536: 86 ms against 32 ms). A long one on
    the CPU (`gram_route`) takes the eigenvalues of its smaller fp64 Gram instead (1536×384: 18 ms against 25 ms).
    """
    W = as_fp32(W)
    if gram_route(W):
        return _gram_spectrum(W.double())[0]
    return torch.linalg.svdvals(W.mT if W.shape[0] < W.shape[1] else W)


def gram_route(W: Tensor) -> bool:
    """Whether `W`'s spectrum is cheaper from the fp64 Gram of its smaller side than from gesdd.

    A Gram costs `p²·q` flops at GEMM speed plus a `p³` symmetric eigensolve, against bidiagonalisation's
    `4p²q` at half BLAS-2 speed; on this CPU that wins from an aspect ratio of 2 (ANALYSIS.md §6.1). Squaring
    loses nothing the audit keeps: fp64 resolves `σ_i` to `eps64·σ_1²/σ_i`, finer than fp32's `eps32·σ_1` for
    every value above the zero threshold `max(m, n)·eps32·σ_1` (`spectra.significant`).
    """
    small, large = sorted(W.shape)
    return W.device.type == "cpu" and small >= LANCZOS_MIN_SIZE and large >= GRAM_MIN_ASPECT * small


def try_gram_svd(W: Tensor, k: int) -> tuple[Tensor, Svd] | None:
    """All singular values and the top-k triplets of `W` from one fp64 Gram matrix of its smaller side, or None
    when a Wedin bound exceeds 1e-3 (ANALYSIS.md §6.4); for `gram_route` matrices.

    1536×384 (values and the top 10): 25 ms, against 42 ms by a values-only SVD and Lanczos.
    """
    W = as_fp32(W)
    S, gram = _gram_spectrum(W.double())
    k = min(k, len(S))
    _, vectors, _, _, info = dsyevr(gram, compute_v=1, range="I", il=len(S) - k + 1, iu=len(S))
    if info != 0:
        return None
    top = _checked_triplets(W, torch.from_numpy(vectors[:, ::-1].copy()).float(), S[:k], S)
    return None if top is None else (S, top)


def _checked_triplets(W: Tensor, known: Tensor, S: Tensor, gaps: Tensor) -> Svd | None:
    """The top triplets of fp32 `W` from the singular vectors `known` of its smaller side (eigenvectors of its
    smaller Gram) and their values `S`: the other side is `W v / σ` (or `Wᵀ u / σ`). None when a Wedin bound
    against the values `gaps` exceeds 1e-3 (ANALYSIS.md §6.4)."""
    tall = W.shape[0] >= W.shape[1]
    other = (W @ known if tall else W.mT @ known) / torch.where(S > 0, S, 1.0)
    U, V = (other, known) if tall else (known, other)
    top = Svd(S, U, V)
    return top if bool((wedin_bounds(W, top, gaps) <= ACCEPT_TOLERANCE).all()) else None


def _gram_spectrum(X: Tensor) -> tuple[Tensor, np.ndarray]:
    """fp32 singular values of an fp64 matrix from its smaller Gram, and that Gram in the Fortran order of LAPACK."""
    gram = (X.mT @ X if X.shape[0] >= X.shape[1] else X @ X.mT).numpy().T  # symmetric: .T is the same matrix
    return gram_singular_values(torch.from_numpy(gram)).float(), gram


def gram_singular_values(gram: Tensor) -> Tensor:
    """Singular values (descending, fp64) of a matrix whose fp64 Gram matrix is `gram`: √ of its eigenvalues."""
    return symmetric_eigenvalues(gram).clamp_min(0.0).sqrt()


def symmetric_eigenvalues(A: Tensor) -> Tensor:
    """Eigenvalues of a symmetric fp64 matrix, descending.

    From `DSYEVR_MIN_SIZE` on the CPU through LAPACK's `dsyevr` (SciPy's OpenBLAS), values only: 1.6–1.8× faster
    here than torch's `eigvalsh` (MKL `syevd`) at 384–768; below that size torch's call costs less.
    """
    if A.device.type != "cpu" or A.shape[0] < DSYEVR_MIN_SIZE:
        return torch.linalg.eigvalsh(A).flip(0)
    values, _, _, _, info = dsyevr(A.numpy().T, compute_v=0)
    if info != 0:
        raise torch.linalg.LinAlgError(f"dsyevr failed (info={info}) on a {tuple(A.shape)} symmetric matrix")
    return torch.from_numpy(values[::-1].copy())


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
        assert sketch.U is not None and sketch.V is not None  # a subspace iteration returns the vectors
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
    small = full_svd(Q.mT @ W)
    return Svd(small.S, Q @ small.U, small.V)


def try_lanczos_svd(W: Tensor, k: int, S_all: Tensor | None = None) -> Svd | None:
    """Top-k singular triplets by Lanczos (ARPACK) on the smaller Gram operator of W, or None.

    Each product costs 4mn flops and ARPACK needs about 70 on MiniLM's matrices, so the vectors cost O(mn)
    where a thin SVD's cost O(mn²) beyond its values: the same at 384² (11.5 ms), half at 1536×384 (20 ms
    against 38 ms), and less the larger the matrix. `S_all` (the values-only SVD beside it) also gives the
    gaps. None on a GPU (its SVD is the better route there), for small matrices, when ARPACK does not
    converge, or when a Wedin bound exceeds 1e-3 (ANALYSIS.md §6.4): the caller then takes the exact SVD.
    """
    W = as_fp32(W)
    m, n = W.shape
    size, k = min(m, n), min(k, m, n)
    if W.device.type != "cpu" or size < LANCZOS_MIN_SIZE or k + 1 >= size // 2:
        return None
    # Products in torch (the audit's thread setting governs them) and in fp32, which halves their memory
    # traffic; ARPACK's own vectors stay fp64, and the Wedin test below checks the result.
    dense = W.detach()
    tall = m >= n

    def gram_product(v: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(v).float()
        return (dense.mT @ (dense @ x) if tall else dense @ (dense.mT @ x)).double().numpy()

    found = lanczos_eigenpairs(gram_product, size, k + 1)
    if found is None:
        return None
    values, vectors = found
    S = values.clamp_min(0.0).sqrt().float()
    return _checked_triplets(W, vectors[:, :k].float(), S[:k], S if S_all is None else S_all)


def lanczos_eigenpairs(
    apply: Callable[[np.ndarray], np.ndarray], size: int, count: int
) -> tuple[Tensor, Tensor] | None:
    """The `count` largest eigenpairs (fp64, descending) of the symmetric PSD operator `apply`, by ARPACK from a
    fixed start vector (so runs repeat); None, logged, when it does not converge."""
    operator = LinearOperator((size, size), matvec=apply, matmat=apply, dtype=np.float64)
    start = np.linspace(1.0, 2.0, size)
    try:
        values, vectors = eigsh(operator, k=count, which="LA", tol=LANCZOS_TOLERANCE, v0=start)
    except (ArpackNoConvergence, ArpackError) as error:
        logger.info("Lanczos on a %d-sized operator did not converge (%s); dense solve", size, error)
        return None
    order = np.argsort(values)[::-1].copy()
    return torch.from_numpy(values[order]), torch.from_numpy(vectors[:, order])


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
