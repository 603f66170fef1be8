"""Entanglement profile of a matrix: von Neumann entropy at every cut of its prime-factored tensor train.

Source: "Artificial Entanglement in the Fine-Tuning of Large Language Models" (arXiv 2601.06788); the site ordering
is autopeft's choice and is recorded in every result (ANALYSIS.md §4). Rows and columns are factored into primes
(ascending, C-order mixed radix); cut ℓ matricises `ψ = M/‖M‖_F` as (d_1⋯d_ℓ) × (d_{ℓ+1}⋯d_N).
Under `row_then_col` the centre cut is M itself, so a rank-r update has centre entropy ≤ ln r.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from autopeft.analysis.spectra import EPS_FP32

ORDERINGS = ("row_then_col", "interleaved")


class EntanglementProfile(NamedTuple):
    """Entropy S(ℓ), the volume-law ceiling, the Page value and the bond dimension at every cut ℓ = 1..N−1."""

    entropies: list[float]
    ceilings: list[float]
    page: list[float]
    bond_dimensions: list[int]
    sites: list[int]
    centre: int
    ordering: str


def prime_factors(n: int) -> list[int]:
    """Prime factors of n ≥ 1, ascending with multiplicity (4096 → [2]*12; 1 → [])."""
    factors, divisor = [], 2
    while divisor * divisor <= n:
        while n % divisor == 0:
            factors.append(divisor)
            n //= divisor
        divisor += 1
    return factors + ([n] if n > 1 else [])


def schmidt_entropy(values: Tensor) -> float:
    """Von Neumann entropy `−Σ π ln π` of Schmidt values s, with `π = s²/Σs²` and `0 ln 0 = 0`; NaN if all zero."""
    energy = values.double() ** 2
    total = float(energy.sum())
    if total <= 0:
        return math.nan
    weights = energy[energy > 0] / total
    return float(-(weights * weights.log()).sum())


def schmidt_values(X: Tensor) -> Tensor:
    """Singular values of one matricisation, from `eigvalsh` of its smaller Gram matrix formed in fp64.

    Matricisations are often extremely wide (2 × 73 728); the Gram route costs `D_small² · D_large` and
    squares only values that the entropy weights by `s²` anyway (ANALYSIS.md §4, cost).
    """
    X = X.double()
    gram = X @ X.mT if X.shape[0] <= X.shape[1] else X.mT @ X
    return torch.linalg.eigvalsh(gram).flip(0).clamp_min(0.0).sqrt()


def entanglement_profile(
    M: Tensor, ordering: str = "row_then_col", centre_values: Tensor | None = None
) -> EntanglementProfile:
    """Dense profile of an (m, n) matrix; `centre_values` (σ of M) saves the centre cut under `row_then_col`."""
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering: expected one of {ORDERINGS}, got {ordering!r}")
    row_sites, col_sites = prime_factors(M.shape[0]), prime_factors(M.shape[1])
    psi = M.detach().double()  # once, not per cut: every cut's Gram is formed in fp64
    if ordering == "interleaved":
        psi, sites = _interleave(psi, row_sites, col_sites)
    else:
        sites = row_sites + col_sites
    values = []
    for cut in range(1, len(sites)):
        if ordering == "row_then_col" and cut == len(row_sites) and centre_values is not None:
            values.append(centre_values)
            continue
        values.append(schmidt_values(psi.reshape(math.prod(sites[:cut]), -1)))
    return _profile(values, sites, len(row_sites), ordering)


def lowrank_entanglement_profile(B: Tensor, A: Tensor) -> EntanglementProfile:
    """Exact `row_then_col` profile of `B A` (B (m, r), A (r, n)) without forming it (ANALYSIS.md §4 fast path).

    A cut inside the row block reads the singular values of `B R_aᵀ` reshaped with the rank as the last digit;
    a cut inside the column block those of `R_b A` reshaped with the rank as the first digit.
    """
    row_sites, col_sites = prime_factors(B.shape[0]), prime_factors(A.shape[1])
    B, A = B.double(), A.double()
    B_right = B @ torch.linalg.qr(A.mT).R.mT
    A_left = torch.linalg.qr(B).R @ A
    rank = B.shape[1]
    values = []
    for cut in range(1, len(row_sites) + 1):
        values.append(schmidt_values(B_right.reshape(math.prod(row_sites[:cut]), -1)))
    for cut in range(1, len(col_sites)):
        values.append(schmidt_values(A_left.reshape(rank * math.prod(col_sites[:cut]), -1)))
    return _profile(values, row_sites + col_sites, len(row_sites), "row_then_col")


def _interleave(psi: Tensor, row_sites: list[int], col_sites: list[int]) -> tuple[Tensor, list[int]]:
    """Permute sites to p_1, q_1, p_2, q_2, … (leftovers of the longer side last)."""
    order, count = [], max(len(row_sites), len(col_sites))
    for i in range(count):
        order += [i] if i < len(row_sites) else []
        order += [len(row_sites) + i] if i < len(col_sites) else []
    sites = row_sites + col_sites
    tensor = psi.reshape(*sites).permute(*order) if sites else psi
    return tensor.contiguous(), [sites[i] for i in order]


def _profile(values: list[Tensor], sites: list[int], centre: int, ordering: str) -> EntanglementProfile:
    total = math.prod(sites)
    entropies, ceilings, page, bonds = [], [], [], []
    for cut, schmidt in enumerate(values, start=1):
        left = math.prod(sites[:cut])
        small, large = sorted((left, total // left))
        entropies.append(schmidt_entropy(schmidt))
        ceilings.append(math.log(small))
        page.append(math.log(small) - small / (2 * large))
        bonds.append(_bond_dimension(schmidt, large))
    return EntanglementProfile(entropies, ceilings, page, bonds, sites, centre, ordering)


def _bond_dimension(schmidt: Tensor, large: int) -> int:
    """`χ = #{s_k > tol}` with the fp32 working-precision tolerance relative to the largest Schmidt value."""
    if schmidt.numel() == 0 or float(schmidt.max()) <= 0:
        return 0
    return int((schmidt > large * EPS_FP32 * float(schmidt.max())).sum())
