"""One series, one unit of parallel work: choose a model, forecast, and backtest it.

`run_task` is a pure, top-level function of a picklable `SeriesTask`, so any mapper (a process
pool, a Dask cluster, a plain loop) can run it. It never raises: a series that can't be modelled
gets a baseline with the reason recorded (too short, no sales, constant), and a SARIMA fit that
fails or does not converge falls back to seasonal naive with the reason recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nightshift.forecasting import sarima
from nightshift.forecasting.baselines import Forecast, mean_baseline, seasonal_naive
from nightshift.forecasting.metrics import SEASON, mase_scale

MIN_DAYS = 8 * SEASON  # a weekly SARIMA needs a couple of months to learn the weekly shape


@dataclass
class SeriesTask:
    """Everything needed to model one series; `y` ends on the run date (NaN = unknown day)."""

    key: str  # "store_id/product_id"
    y: np.ndarray
    promo: np.ndarray
    future_promo: np.ndarray  # promotions known in advance over the horizon (else zeros)
    horizon: int
    fit_days: int  # history used by one fit (the most recent days before its origin)
    spec: sarima.Spec | None = None  # cached order; None means select now
    start_params: np.ndarray | None = None  # last night's parameters, for a warm start
    origins: tuple[int, ...] = ()  # backtest cut points, in days before the run date


@dataclass
class BacktestOrigin:
    """One rolling origin: actuals and the three competing forecasts over the horizon after it."""

    cut: int
    actual: np.ndarray
    scale: float
    model: Forecast  # what the nightly pipeline would have published (SARIMA or its fallback)
    naive: Forecast
    mean: Forecast
    fallback: str | None = None


@dataclass
class SeriesResult:
    """The night's outcome for one series."""

    key: str
    forecast: Forecast
    naive: Forecast  # tonight's seasonal naive forecast, stored for scoring later
    kind: str  # "sarima", "baseline" (by design) or "fallback" (a fit failed)
    reason: str | None
    scale: float
    spec: sarima.Spec | None = None
    params: list[float] | None = None
    aic: float | None = None
    selected: bool = False
    candidates: list[dict] = field(default_factory=list)
    warm: bool = False
    seconds: float = 0.0
    backtest: list[BacktestOrigin] = field(default_factory=list)


def baseline_reason(y: np.ndarray) -> str | None:
    """Why a series should get a baseline instead of SARIMA, or None when it can be modelled."""
    known = y[np.isfinite(y)]
    if known.size < MIN_DAYS:
        return f"too short: {known.size} days of history (< {MIN_DAYS})"
    if not np.any(known > 0):
        return "no sales in the history window"
    if np.all(known == known[0]):
        return "constant series"
    return None


def _filled(y: np.ndarray) -> np.ndarray:
    """Unknown days carried forward for the baselines (SARIMA takes NaN as missing directly)."""
    y = np.asarray(y, float)
    idx = np.where(np.isfinite(y), np.arange(y.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = y[idx]
    return out[np.isfinite(out)]


def _fit_and_forecast(y: np.ndarray, x: np.ndarray, fx: np.ndarray, spec: sarima.Spec,
                      start: np.ndarray | None, horizon: int) -> tuple[sarima.Fit, Forecast]:
    if spec.exog and not sarima.has_variation(x):
        spec = sarima.Spec(spec.order, spec.seasonal_order, exog=False)
    elif not spec.exog and sarima.has_variation(x):
        spec = sarima.Spec(spec.order, spec.seasonal_order, exog=True)
    fitted = sarima.fit(y, x, spec, start)
    if not fitted.converged:
        raise sarima.FitError(f"{spec.label} did not converge in {fitted.iterations} iterations")
    return fitted, sarima.forecast(y, x, fx, fitted, horizon)


def run_task(task: SeriesTask) -> SeriesResult:
    """Model one series for tonight: forecast with intervals plus the rolling-origin backtest."""
    t0 = time.perf_counter()
    y_all = np.asarray(task.y, float)
    x_all = np.asarray(task.promo, float)
    y, x = y_all[-task.fit_days:], x_all[-task.fit_days:]
    filled = _filled(y)
    naive = seasonal_naive(filled, task.horizon)
    result = SeriesResult(task.key, naive, naive, "baseline", baseline_reason(y), mase_scale(filled))
    if result.reason is None:
        try:
            spec, start = task.spec, task.start_params
            if spec is None:
                best, result.candidates = sarima.select(y, x)
                spec, start, result.selected = best.spec, best.params, True
            fitted, fc = _fit_and_forecast(y, x, task.future_promo, spec, start, task.horizon)
            result.forecast, result.kind, result.spec = fc, "sarima", fitted.spec
            result.params, result.aic = fitted.params.tolist(), fitted.aic
            result.warm = start is not None
        except Exception as e:  # noqa: BLE001 - any failure becomes a recorded fallback
            result.kind, result.reason = "fallback", f"{type(e).__name__}: {str(e)[:200]}"
    result.backtest = [_backtest_origin(task, y_all, x_all, cut, result) for cut in task.origins
                       if y_all.size - cut >= 1]
    result.seconds = time.perf_counter() - t0
    return result


def _backtest_origin(task: SeriesTask, y_all: np.ndarray, x_all: np.ndarray, cut: int,
                     tonight: SeriesResult) -> BacktestOrigin:
    """Forecast from `cut` days ago with data up to then only, as the nightly run would have."""
    h = min(task.horizon, cut)
    y = y_all[: y_all.size - cut][-task.fit_days:]
    x = x_all[: x_all.size - cut][-task.fit_days:]
    actual = y_all[y_all.size - cut: y_all.size - cut + h]
    filled = _filled(y)
    naive = seasonal_naive(filled, h)
    mean = mean_baseline(filled, h)
    origin = BacktestOrigin(cut, actual, mase_scale(filled), naive, naive, mean)
    reason = baseline_reason(y)
    if reason is not None or tonight.spec is None:
        origin.fallback = reason or tonight.reason or "no model tonight"
        return origin
    try:
        # The future promotion calendar is unknown at the origin, exactly as it is tonight.
        start = np.asarray(tonight.params) if tonight.params is not None else None
        _, origin.model = _fit_and_forecast(y, x, np.zeros(h), tonight.spec, start, h)
    except Exception as e:  # noqa: BLE001
        origin.fallback = f"{type(e).__name__}: {str(e)[:200]}"
    return origin
