"""Attribute rates with Wilson score intervals, which stay inside [0, 1] and behave at rates near 0 or 1."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def wilson_interval(positives: np.ndarray | float, n: np.ndarray | float,
                    level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (without continuity correction) for a binomial proportion; NaN where n == 0."""
    pos = np.asarray(positives, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = norm.ppf(0.5 + level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = pos / n
        denom = 1.0 + z * z / n
        center = (p + z * z / (2.0 * n)) / denom
        half = z / denom * np.sqrt(np.clip(p * (1.0 - p) / n + z * z / (4.0 * n * n), 0.0, None))
        low = np.where(n > 0, np.clip(center - half, 0.0, 1.0), np.nan)
        high = np.where(n > 0, np.clip(center + half, 0.0, 1.0), np.nan)
    return low, high
