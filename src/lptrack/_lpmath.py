"""Vectorised learning-progress formulas shared by the pure engine, the scorers and the stats.

Written operand for operand as SPEC.md gives them: the golden traces compare at
1e-12, and ``a*(s*s)`` and ``(a*s)*s`` round differently.
"""

from __future__ import annotations

import numpy as np

#: Reweighting is skipped when theta is this close to 0.5 (where R(p) == p).
REWEIGHT_EPSILON = 1e-6
#: Below this |denominator| R(p) snaps to 0.0 or 1.0.
REWEIGHT_DENOMINATOR_FLOOR = 1e-10


def reweight(p: np.ndarray, theta: float) -> np.ndarray:
    """R(p) = p*(1-θ) / (p + θ*(1-2p)) on p clipped to [0, 1] (SPEC.md)."""
    p = np.clip(p, 0.0, 1.0)
    numerator = p * (1.0 - theta)
    denominator = p + theta * (1.0 - 2.0 * p)
    degenerate = np.abs(denominator) < REWEIGHT_DENOMINATOR_FLOOR
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = numerator / denominator
    return np.where(degenerate, np.where(p < 0.5, 0.0, 1.0), ratio)


def learning_progress(p_fast: np.ndarray, p_slow: np.ndarray, theta: float) -> np.ndarray:
    """lp = |R(p_fast) - R(p_slow)|, or |p_fast - p_slow| when θ is (almost) 0.5."""
    if abs(theta - 0.5) > REWEIGHT_EPSILON:
        return np.abs(reweight(p_fast, theta) - reweight(p_slow, theta))
    return np.abs(p_fast - p_slow)


def ordered_sum(values: np.ndarray) -> float:
    """Sum accumulated strictly left to right.

    ``np.sum`` adds pairwise; a running sum in the given (active-list) order is
    what the C core does, so both engines round the same way.
    """
    if values.size == 0:
        return 0.0
    return float(np.cumsum(values)[-1])


def gini(values: np.ndarray) -> float:
    """Gini coefficient as the original computes it (SPEC.md): 0.0 for no values, a
    zero total or any NaN/inf; else 2 * sum(i * v_i) / (n * total) - (n + 1) / n over
    the values sorted ascending (i from 1)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    if n == 0 or not np.isfinite(ordered).all():
        return 0.0
    total = ordered.sum()
    if total == 0.0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    result = float(2.0 * np.dot(ranks, ordered) / (n * total) - (n + 1) / n)
    return result if np.isfinite(result) else 0.0
