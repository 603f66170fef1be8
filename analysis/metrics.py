"""The metric table: which spectrum metrics become which columns, for which kinds of matrix.

Adding a metric means one entry here (STYLE.md, "Adding a metric"): the columns, the pure function that computes
them from the singular values and shape. The audit computes each
decomposition once per matrix and calls every entry on it. A metric that cannot be computed yields NaN and a
reason, never a sentinel like -1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from autopeft.analysis import spectra
from autopeft.analysis.powerlaw import fit_power_law

Values = dict[str, float]
REASON = "reason"
PARTIAL_REASON = (
    "only the top singular values were computed (spectrum='top'): α and the ranks need all of them"
)


@dataclass(frozen=True)
class Metric:
    """Columns computed together by `compute(S, shape)` from the singular values of an (m, n) matrix.

    `from_top(S_top, frobenius)` computes the same columns from the top singular values and the exact `‖W‖_F`
    (the LoRA fast path's `spectrum='top'`); a metric without it is NaN, with `PARTIAL_REASON`, there.
    """

    columns: tuple[str, ...]
    compute: Callable[[Tensor, tuple[int, int]], Values]
    from_top: Callable[[Tensor, float], Values] | None = None


def _norm_columns(top: float) -> Values:
    return {"spectral_norm": top, "log_spectral_norm": spectra.log10_or_nan(top**2)}


def _norms(S: Tensor, shape: tuple[int, int]) -> Values:
    return _norm_columns(spectra.spectral_norm(S))


def _top_norms(S: Tensor, frobenius: float) -> Values:
    return _norm_columns(spectra.spectral_norm(S))


def _frobenius_columns(frobenius: float, top: float) -> Values:
    return {
        "frobenius_norm": frobenius,
        "log_norm": spectra.log10_or_nan(frobenius**2),
        "stable_rank": spectra.stable_rank_from_norms(frobenius, top),
    }


def _frobenius(S: Tensor, shape: tuple[int, int]) -> Values:
    return _frobenius_columns(spectra.frobenius_norm(S), spectra.spectral_norm(S))


def _top_frobenius(S: Tensor, frobenius: float) -> Values:
    return _frobenius_columns(frobenius, spectra.spectral_norm(S))


def _ranks(S: Tensor, shape: tuple[int, int]) -> Values:
    return {
        "effective_rank": spectra.effective_rank(S, shape),
        "energy_entropy": spectra.energy_entropy(S, shape),
        "numerical_rank": float(spectra.numerical_rank(S, shape)),
    }


def _power_law(S: Tensor, shape: tuple[int, int]) -> Values:
    fit = fit_power_law(spectra.significant(S, shape) ** 2)
    return {
        "alpha": fit.alpha,
        "alpha_xmin": fit.xmin,
        "alpha_ks": fit.ks_distance,
        "alpha_tail": float(fit.tail_size),
        "alpha_sigma": fit.sigma,
        "alpha_weighted": fit.alpha_weighted,
        "log_alpha_norm": fit.log_alpha_norm,
        **({REASON: fit.reason} if fit.reason else {}),  # type: ignore[dict-item]
    }


METRICS: tuple[Metric, ...] = (
    Metric(("spectral_norm", "log_spectral_norm"), _norms, _top_norms),
    Metric(("frobenius_norm", "log_norm", "stable_rank"), _frobenius, _top_frobenius),
    Metric(("effective_rank", "energy_entropy", "numerical_rank"), _ranks),
    Metric(
        ("alpha", "alpha_xmin", "alpha_ks", "alpha_tail", "alpha_sigma", "alpha_weighted", "log_alpha_norm"),
        _power_law,
    ),
)
COLUMNS: tuple[str, ...] = tuple(column for metric in METRICS for column in metric.columns)
METRICS_VERSION = "v1:" + ",".join(COLUMNS)
"""Names the table for cached base metrics; bump the prefix when a metric's definition changes."""


def spectrum_metrics(
    S: Tensor, shape: tuple[int, int], frobenius: float | None = None
) -> tuple[Values, list[str]]:
    """Every table metric of one spectrum, and the reasons for the NaNs among them.

    With `frobenius` (the exact `‖W‖_F`), `S` holds only the top singular values: the Frobenius columns come
    from it and the metrics that need every value are NaN.
    """
    values: Values = {}
    reasons: list[str] = []
    for metric in METRICS:
        if frobenius is None:
            computed = metric.compute(S, shape)
        elif metric.from_top is not None:
            computed = metric.from_top(S, frobenius)
        else:
            computed = {**dict.fromkeys(metric.columns, math.nan), REASON: PARTIAL_REASON}  # type: ignore[dict-item]
        reason = computed.pop(REASON, "")
        reasons += [str(reason)] if reason and str(reason) not in reasons else []
        values.update(computed)
    if values["spectral_norm"] == 0.0:
        reasons = ["zero matrix: ranks, entropies and alpha are undefined"]
    return values, reasons
