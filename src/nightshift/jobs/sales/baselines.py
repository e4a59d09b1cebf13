"""Baseline forecasts with prediction intervals: seasonal naive and the recent mean.

They are the yardsticks in the scorecard and the fallback when a model fails; seasonal naive is
on the model menu too. Intervals
come from the in-sample residuals of the same rule (Hyndman & Athanasopoulos, FPP3 §5.5) and are
clipped at zero, since units sold cannot be negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z80, Z95 = 1.2815515655446004, 1.959963984540054


@dataclass
class Forecast:
    """A point forecast with 80% and 95% intervals over `horizon` periods, all non-negative."""

    mean: np.ndarray
    lower_80: np.ndarray
    upper_80: np.ndarray
    lower_95: np.ndarray
    upper_95: np.ndarray
    model: str

    @classmethod
    def from_sd(cls, mean: np.ndarray, sd: np.ndarray, model: str) -> Forecast:
        """Gaussian intervals around `mean` with per-step standard deviation `sd`, clipped at zero."""
        mean = np.asarray(mean, float)
        sd = np.nan_to_num(np.asarray(sd, float), nan=0.0)
        clip = lambda a: np.clip(a, 0.0, None)  # noqa: E731
        return cls(clip(mean), clip(mean - Z80 * sd), clip(mean + Z80 * sd), clip(mean - Z95 * sd),
                   clip(mean + Z95 * sd), model)


def seasonal_naive(y: np.ndarray, horizon: int, m: int) -> Forecast:
    """Repeat the last full season; with less than one season of history repeat the last value."""
    y = np.asarray(y, float)
    if y.size == 0:
        return Forecast.from_sd(np.zeros(horizon), np.zeros(horizon), "empty")
    if y.size < m:
        return _naive(y, horizon)
    steps = np.arange(horizon)
    mean = y[-m:][steps % m]
    resid = y[m:] - y[:-m]
    sigma = float(np.sqrt(np.mean(resid**2))) if resid.size else 0.0
    # k-th season ahead: the error of k independent seasonal steps adds up.
    sd = sigma * np.sqrt(steps // m + 1)
    return Forecast.from_sd(mean, sd, "seasonal_naive")


def _naive(y: np.ndarray, horizon: int) -> Forecast:
    resid = np.diff(y)
    sigma = float(np.sqrt(np.mean(resid**2))) if resid.size else 0.0
    return Forecast.from_sd(np.full(horizon, y[-1]), sigma * np.sqrt(np.arange(1, horizon + 1)), "naive")


def mean_baseline(y: np.ndarray, horizon: int, window: int) -> Forecast:
    """The mean of the last `window` periods, with intervals from their spread."""
    y = np.asarray(y, float)[-window:]
    if y.size == 0:
        return Forecast.from_sd(np.zeros(horizon), np.zeros(horizon), "empty")
    sd = float(np.std(y, ddof=1)) * np.sqrt(1 + 1 / y.size) if y.size > 1 else 0.0
    return Forecast.from_sd(np.full(horizon, y.mean()), np.full(horizon, sd), "mean")
