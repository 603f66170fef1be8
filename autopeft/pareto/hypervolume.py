"""Hypervolume: how much of the objective space a set of points dominates, the one measure of a front's quality
that the dashboards, the search-quality benchmark and the tests share.

Computed by `moocore` (the maintained C implementation of the exact algorithms), never by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by `points` (every objective minimised) and bounded by `reference`; a point
    that does not dominate the reference on every axis adds nothing."""
    inside = [p for p in points if all(x < r for x, r in zip(p, reference, strict=True))]
    if not inside:
        return 0.0
    return float(moocore.hypervolume(np.asarray(inside, dtype=float), ref=np.asarray(reference, dtype=float)))
