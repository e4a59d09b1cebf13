"""Forecast accuracy measures on numpy arrays: MASE, sMAPE and interval coverage.

MASE is scaled by the in-sample mean absolute error of the seasonal naive forecast, so it is
comparable across series of very different sizes and 1.0 means "as good as the value one season
back" (last week's for days, last year's for months).
"""

from __future__ import annotations

import numpy as np


def mase_scale(y: np.ndarray, m: int) -> float:
    """In-sample MAE of the seasonal naive forecast (lag m; lag 1 if too short or flat); NaN if none."""
    y = np.asarray(y, dtype=float)
    for lag in (m, 1):
        if y.size > lag:
            scale = float(np.mean(np.abs(y[lag:] - y[:-lag])))
            if scale > 0:
                return scale
    return float("nan")


def mase(actual: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    """Mean absolute scaled error against a precomputed scale (NaN when the scale is unusable)."""
    if not np.isfinite(scale) or scale <= 0:
        return float("nan")
    return float(np.mean(np.abs(np.asarray(actual, float) - np.asarray(forecast, float))) / scale)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0–200); days where both are zero count as perfect."""
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    denom = np.abs(a) + np.abs(f)
    ratio = np.divide(2 * np.abs(a - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100 * np.mean(ratio))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside [lower, upper]."""
    a = np.asarray(actual, float)
    return float(np.mean((a >= lower) & (a <= upper)))
