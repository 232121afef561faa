"""Confidence intervals for sampled access fractions."""

from __future__ import annotations

import numpy as np

__all__ = ["wilson_interval"]


def wilson_interval(
    accessed: np.ndarray | int, probed: np.ndarray | int, *, z: float = 1.96
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the accessed fraction ``accessed / probed`` (95 % by default).

    Treats the probes of a region as independent draws of its pages; ``probed == 0`` gives
    the uninformative ``(0, 1)``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lower and upper bounds.
    """
    x = np.asarray(accessed, dtype=np.float64)
    n = np.asarray(probed, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, x / n, 0.0)
        denom = 1 + z * z / n
        center = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = np.where(n > 0, np.clip(center - half, 0, 1), 0.0)
    hi = np.where(n > 0, np.clip(center + half, 0, 1), 1.0)
    return lo, hi
