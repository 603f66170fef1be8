"""MergedCore: a LoRA-merged matrix `Wt = W0 + B̂ A` held in the cached base's coordinates, never formed.

Brand's low-rank update of a thin SVD ("Fast low-rank modifications of the thin singular value decomposition",
2006; ANALYSIS.md §6.5): with `W0 = U0 S0 V0ᵀ`, `Wt = [U0 Q_B] K [V0 Q_A]ᵀ` where `K = diag(S0, 0) + L Rᵀ` is
(p + r_B) × (p + r_A). So σ(Wt) = σ(K), and the first p entries of K's j-th left singular vector are `U0ᵀ y_j`,
the base coordinates an intruder score needs. K is not formed either: its Gram matrix costs O(p²·r) and a
product with it O(p·r), so the top-k vectors come from a Lanczos solver on a p·r-cost operator, and only the
full spectrum (α and the effective rank of Wt) pays one dense symmetric eigenvalue solve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from autopeft.analysis.svd import LANCZOS_MIN_SIZE, Svd, lanczos_eigenpairs, symmetric_eigenvalues


class MergedSpectrum(NamedTuple):
    """What the audit needs of `Wt`, obtained from the base SVD without a second large SVD.

    `S` holds every singular value of `Wt` when `complete`, else only the top k + 1 (the (k+1)-th enters the
    degeneracy test); `overlap` (p, k) holds `U0ᵀ y_j` for the top-k left singular vectors `y_j` of `Wt`;
    `frobenius` is `‖Wt‖_F = ‖K‖_F`, exact either way.
    """

    S: Tensor
    overlap: Tensor
    frobenius: float
    complete: bool


@dataclass(frozen=True)
class MergedCore:
    """`K = D + L Rᵀ` in fp64, where D is (p + r_B) × (p + r_A) with `S0` on its leading diagonal.

    Dense work stays in torch, so the audit's thread setting governs it; only ARPACK runs through SciPy, on
    products too small for BLAS threads to matter.
    """

    S0: Tensor
    L: Tensor
    R: Tensor

    @classmethod
    def from_base(cls, base: Svd, B: Tensor, A: Tensor) -> MergedCore:
        """The core of `W0 + B A` (B (m, r) already scaled, A (r, n)) from the base's thin SVD (§6.5 steps 1–3)."""
        assert base.U is not None and base.V is not None
        # Row-major fp64 operands: torch's matmul on transposed views is up to 40x slower (2048², fp64).
        P, R_B = _project_and_complete(base.U.contiguous().double(), B.double().contiguous())
        Qm, R_A = _project_and_complete(base.V.contiguous().double(), A.double().mT.contiguous())
        return cls(base.S.double(), torch.cat([P, R_B]), torch.cat([Qm, R_A]))

    @property
    def p(self) -> int:
        return self.S0.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.L.shape[0], self.R.shape[0]

    def frobenius(self) -> float:
        """`‖K‖_F² = ‖S0‖² + 2 Σ_i S0_i ⟨L_i, R_i⟩ + tr(LᵀL · RᵀR)`, without forming K."""
        p = self.p
        cross = float(self.S0 @ (self.L[:p] * self.R[:p]).sum(dim=1))
        lowrank = float(((self.L.mT @ self.L) * (self.R.mT @ self.R)).sum())
        return max(float(self.S0 @ self.S0) + 2 * cross + lowrank, 0.0) ** 0.5

    def spectrum(self, k: int, complete: bool) -> MergedSpectrum:
        """The top-k overlaps and σ(Wt): every value when `complete`, else the top k + 1.

        The Gram matrix of K's smaller side is solved: its eigenvalues are σ², and on the right side the left
        vectors are recovered as `K v / σ`.
        """
        left = self.shape[0] <= self.shape[1]
        near, far = (self.L, self.R) if left else (self.R, self.L)
        gram = _Gram(self._padded(far, near.shape[0]), near, far.mT @ far, self._diagonal(near.shape[0]))
        k = min(k, self.p, gram.size)
        eigenvalues, vectors = gram.top(min(k + 1, gram.size))
        top = eigenvalues.clamp_min(0.0).sqrt()
        vectors = vectors[:, :k] if left else self._left_vectors(vectors[:, :k], top[:k])
        values = gram.values().clamp_min(0.0).sqrt() if complete else top
        return MergedSpectrum(values[: self.p].float(), vectors[: self.p].float(), self.frobenius(), complete)

    def _diagonal(self, size: int) -> Tensor:
        """The diagonal of `DDᵀ` or `DᵀD`: S0² padded with zeros to `size`."""
        return torch.cat([self.S0**2, self.S0.new_zeros(size - self.p)])

    def _padded(self, X: Tensor, size: int) -> Tensor:
        """`S0 ⊙ X` on the first p rows, zero rows below, (size, r): D R or Dᵀ L."""
        return torch.cat([self.S0[:, None] * X[: self.p], X.new_zeros(size - self.p, X.shape[1])])

    def _left_vectors(self, right: Tensor, values: Tensor) -> Tensor:
        """`K v / σ` for right singular vectors v (a zero σ gives a zero column, never a division by zero)."""
        Kv = self._padded(right, self.shape[0]) + self.L @ (self.R.mT @ right)
        return Kv / torch.where(values > 0, values, 1.0) * (values > 0)


@dataclass(frozen=True)
class _Gram:
    """`G = X Nᵀ + N Xᵀ + N M Nᵀ + diag(d)`: K Kᵀ (N = L, X = D R, M = RᵀR) or KᵀK (the mirror image)."""

    X: Tensor
    N: Tensor
    M: Tensor
    d: Tensor

    @property
    def size(self) -> int:
        return self.N.shape[0]

    def dense(self) -> Tensor:
        cross = self.X @ self.N.mT
        return cross + cross.mT + self.N @ self.M @ self.N.mT + torch.diag(self.d)

    def values(self) -> Tensor:
        """Every eigenvalue, descending (one dense fp64 solve: the cost of a complete merged spectrum)."""
        return symmetric_eigenvalues(self.dense())

    def top(self, count: int) -> tuple[Tensor, Tensor]:
        """The `count` largest eigenpairs, descending: Lanczos on the cheap product, a dense solve for small
        cores or when ARPACK does not converge."""
        if self.size >= LANCZOS_MIN_SIZE and count < self.size // 2:
            found = lanczos_eigenpairs(self._product(), self.size, count)
            if found is not None:
                return found[0].to(self.d.device), found[1].to(self.d.device)
        values, vectors = torch.linalg.eigh(self.dense())
        return values.flip(0)[:count], vectors.flip(1)[:, :count]

    def _product(self) -> Callable[[np.ndarray], np.ndarray]:
        """`v ↦ G v` in O(size·r) per column, in NumPy: ARPACK calls it about 70 times per core."""
        X, N, M, d = (t.cpu().numpy() for t in (self.X, self.N, self.M, self.d[:, None]))

        def apply(v: np.ndarray) -> np.ndarray:
            v = v.reshape(d.shape[0], -1)
            Nv = N.T @ v
            return d * v + X @ Nv + N @ (X.T @ v) + N @ (M @ Nv)

        return apply


def merged_spectrum(base: Svd, B: Tensor, A: Tensor, k: int, complete: bool = True) -> MergedSpectrum:
    """Spectrum and intruder overlaps of `Wt = W0 + B A` from the cached base SVD (ANALYSIS.md §6.5)."""
    return MergedCore.from_base(base, B, A).spectrum(k, complete)


def _project_and_complete(Q0: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates `Q0ᵀ X` and the triangular factor of X's residual off span(Q0) (empty when Q0 is square)."""
    P = _coordinates(Q0, X)
    if Q0.shape[0] <= Q0.shape[1]:
        return P, X.new_zeros(0, X.shape[1])
    residual = X - Q0 @ P
    residual = residual - Q0 @ _coordinates(Q0, residual)
    return P, torch.linalg.qr(residual).R


def _coordinates(Q0: Tensor, X: Tensor) -> Tensor:
    """`Q0ᵀ X` (p, r), row-major, computed as `(Xᵀ Q0)ᵀ`: `Q0.mT @ X` runs 5x slower on row-major operands."""
    return (X.mT @ Q0).mT.contiguous()
