"""Known answers for the spectrum metrics and the power-law fit (ANALYSIS.md §2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autopeft.analysis import effective_rank, energy_entropy, fit_power_law, stable_rank
from autopeft.analysis.metrics import spectrum_metrics


def test_effective_rank_of_r_equal_singular_values_is_r() -> None:
    S = torch.tensor([2.0, 2.0, 2.0, 2.0, 0.0, 0.0])
    assert math.isclose(effective_rank(S, (6, 6)), 4.0, rel_tol=1e-9)


def test_effective_rank_uses_nuclear_not_squared_weights() -> None:
    S = torch.tensor([3.0, 1.0])
    p = np.array([0.75, 0.25])
    assert math.isclose(effective_rank(S, (2, 2)), math.exp(-(p * np.log(p)).sum()), rel_tol=1e-6)


def test_stable_rank_is_frobenius_over_spectral_squared() -> None:
    assert math.isclose(stable_rank(torch.tensor([4.0, 3.0])), 25.0 / 16.0, rel_tol=1e-9)


def test_rank_one_matrix_has_unit_ranks_and_zero_energy_entropy() -> None:
    S = torch.tensor([5.0, 0.0, 0.0])
    assert stable_rank(S) == 1.0
    assert effective_rank(S, (3, 3)) == 1.0
    assert energy_entropy(S, (3, 3)) == 0.0


def test_zero_spectrum_gives_nan_ranks_with_a_reason() -> None:
    values, reasons = spectrum_metrics(torch.zeros(8), (8, 8))
    assert values["spectral_norm"] == 0.0 and values["frobenius_norm"] == 0.0
    assert (
        math.isnan(values["effective_rank"])
        and math.isnan(values["stable_rank"])
        and math.isnan(values["alpha"])
    )
    assert reasons == ["zero matrix: ranks, entropies and alpha are undefined"]


def test_power_law_fit_recovers_a_planted_exponent() -> None:
    rng = np.random.default_rng(0)
    alpha = 2.5
    samples = (1.0 - rng.random(3000)) ** (-1.0 / (alpha - 1.0))
    fit = fit_power_law(samples)
    assert abs(fit.alpha - alpha) < 0.1
    assert fit.tail_size >= 5 and 0 < fit.ks_distance < 0.1


def test_power_law_fit_is_scale_invariant() -> None:
    rng = np.random.default_rng(1)
    samples = (1.0 - rng.random(500)) ** (-1.0 / 2.0)
    assert math.isclose(fit_power_law(samples).alpha, fit_power_law(samples * 1e-4).alpha, rel_tol=1e-9)


def test_power_law_fit_with_too_few_eigenvalues_is_nan_with_reason() -> None:
    fit = fit_power_law(np.arange(1.0, 9.0))
    assert math.isnan(fit.alpha)
    assert "8 positive eigenvalues" in fit.reason


def test_a_top_only_spectrum_keeps_norms_exact_and_leaves_full_spectrum_metrics_nan() -> None:
    S = torch.tensor([4.0, 2.0, 1.0, 1.0])
    complete, _ = spectrum_metrics(S, (4, 4))
    top, reasons = spectrum_metrics(S[:2], (4, 4), frobenius=float(torch.linalg.vector_norm(S)))
    for column in ("spectral_norm", "frobenius_norm", "log_norm", "stable_rank"):
        assert top[column] == pytest.approx(complete[column])
    assert math.isnan(top["alpha"]) and math.isnan(top["effective_rank"])
    assert len(reasons) == 1 and "spectrum='top'" in reasons[0]
