"""Checks shared by the forecast-quality tests: sampling error over blocks, interval coverage and width.

Each check returns a list of failures (empty when it passes), so a test asserts the list is empty for
the job's model and non-empty for a deliberately degraded one: the control proves the check can fail.
"""

from __future__ import annotations

import numpy as np

K_SE = 3.0  # how many standard errors a measured value may stray from what the truth implies


def block_mean_se(values: np.ndarray, blocks: np.ndarray) -> tuple[float, float, int]:
    """Mean of `values` and its standard error when whole blocks, not cells, are the independent units.

    Cells inside a block (one day, one series) share their errors' causes, so the s.e. is taken over
    block means: the mean of block means, their sd / sqrt(blocks), and the number of blocks.
    """
    values, blocks = np.asarray(values, float).ravel(), np.asarray(blocks).ravel()
    keep = np.isfinite(values)
    _, idx = np.unique(blocks[keep], return_inverse=True)
    means = np.bincount(idx, weights=values[keep]) / np.bincount(idx)
    return float(means.mean()), float(means.std(ddof=1) / np.sqrt(means.size)), int(means.size)


def coverage_band(nominal: float, n_eff: int, k: float = K_SE) -> tuple[float, float]:
    """Coverage a calibrated interval shows on `n_eff` independent units: nominal ± k binomial s.e."""
    se = np.sqrt(nominal * (1 - nominal) / n_eff)
    return nominal - k * se, min(1.0, nominal + k * se)


def coverage_failures(label: str, coverage: float, nominal: float, n_eff: int) -> list[str]:
    """Coverage must lie within sampling error of nominal on both sides (too narrow and too wide fail)."""
    lo, hi = coverage_band(nominal, n_eff)
    if lo <= coverage <= hi:
        return []
    return [f"{label}: coverage {coverage:.3f} outside [{lo:.3f}, {hi:.3f}] (nominal {nominal}, n_eff {n_eff})"]


def width_failures(label: str, width: float, floor: float, ceiling: float) -> list[str]:
    """Mean interval width must be at least what the planted noise alone needs and not absurdly wide."""
    if floor <= width <= ceiling:
        return []
    return [f"{label}: mean width {width:.3f} outside [{floor:.3f}, {ceiling:.3f}]"]
