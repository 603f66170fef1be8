"""Expected hypervolume improvement in the (trainable parameters, task metric) plane when the cost is known.

The default sampler costs every candidate exactly (`PlanProbe`), so only the task metric is uncertain: its
improvement over the front's staircase has a closed form, and the acquisition needs no Monte Carlo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm


def expected_improvement_2d(
    costs: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    front: Sequence[tuple[float, float]],
    ref_metric: float,
) -> np.ndarray:
    """Expected hypervolume improvement of points with known normalised cost (reference 1) and a normal task
    metric, against `front` [(cost, metric)], maximising the metric above `ref_metric`.

    A point at cost c adds, for every x in [c, 1), the height its metric M exceeds g(x), the best front metric
    at cost <= x (or the reference); E[max(0, M - g)] is closed-form, and g is a staircase, so the integral is
    a sum.
    """
    steps = sorted(front)
    gains = np.zeros(len(costs))
    for index, (cost, mu, sigma) in enumerate(zip(costs, mean, std, strict=True)):
        edges, levels, level = [cost], [], ref_metric
        for front_cost, front_metric in steps:
            if front_cost <= cost:
                level = max(level, front_metric)
        for front_cost, front_metric in steps:
            if cost < front_cost < 1.0 and front_metric > level:
                levels.append(level)
                edges.append(front_cost)
                level = front_metric
        levels.append(level)
        edges.append(1.0)
        widths = np.diff(edges)
        gains[index] = float(np.sum(widths * _normal_excess(mu, sigma, np.array(levels))))
    return gains


def _normal_excess(mu: float, sigma: float, level: np.ndarray) -> np.ndarray:
    """E[max(0, M - level)] for M ~ N(mu, sigma^2)."""
    z = (mu - level) / sigma
    return (mu - level) * norm.cdf(z) + sigma * norm.pdf(z)
