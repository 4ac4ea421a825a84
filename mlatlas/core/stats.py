"""Descriptive statistics for tables and figures. Verdicts are decided in `mlatlas.core.claims`,
never here: bootstrap intervals are for describing many samples (n >= 10), not for deciding."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

MIN_BOOTSTRAP = 10


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[[np.ndarray], float] = np.mean,
    level: float = 0.95,
    n_boot: int = 4000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` over `values` (Efron & Tibshirani 1993).

    Refuses fewer than `MIN_BOOTSTRAP` values: on n <= 3 the "95%" percentile interval is just
    [min, max], and below about 10 it badly under-covers.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < MIN_BOOTSTRAP:
        raise ValueError(
            f"bootstrap_ci needs at least {MIN_BOOTSTRAP} values, got {x.size}; "
            "use a claim's t-interval for a handful of seeds"
        )
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    stats = np.array([stat(x[i]) for i in idx]) if stat is not np.mean else x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (ties get average ranks)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(x), np.asarray(y)).statistic)


def sample_skewness(x: Sequence[float] | np.ndarray) -> float | None:
    """Adjusted Fisher-Pearson skewness G1 = sqrt(n(n-1)) / (n-2) * m3 / m2^(3/2), the one
    `scipy.stats.skew(bias=False)` gives; None for n < 3 or zero spread."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < 3:
        return None
    d = x - x.mean()
    m2, m3 = float(np.mean(d * d)), float(np.mean(d**3))
    if m2 <= 1e-300 or m2 <= 1e-24 * float(np.mean(x * x)):  # zero spread, up to rounding
        return None
    return math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5
