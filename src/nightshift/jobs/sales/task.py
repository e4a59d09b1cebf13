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

from nightshift.jobs.sales import sarima
from nightshift.jobs.sales.baselines import Forecast, mean_baseline, seasonal_naive
from nightshift.jobs.sales.metrics import SEASON, mase_scale

MIN_DAYS = 8 * SEASON  # a weekly SARIMA needs a couple of months to learn the weekly shape
ZERO_AS_MISSING_MEDIAN = 5.0


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
    backtest_fit: tuple[sarima.Spec, np.ndarray] | None = None  # kept from an earlier night (see state)


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
    cpu_seconds: float = 0.0
    backtest: list[BacktestOrigin] = field(default_factory=list)
    backtest_fit: tuple[sarima.Spec, np.ndarray] | None = None  # the backtest's model, for the state


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


def for_model(y: np.ndarray) -> np.ndarray:
    """The series as SARIMA sees it: in a series that normally sells (median >= 5 a day), a zero day
    is a stock-out or closure, not demand, so it is marked unknown instead of dragging the log scale."""
    y = np.asarray(y, float).copy()
    known = y[np.isfinite(y)]
    if known.size and np.median(known) >= ZERO_AS_MISSING_MEDIAN:
        y[y == 0] = np.nan
    return y


def _for_window(spec: sarima.Spec, x: np.ndarray) -> sarima.Spec:
    """`spec` with promotion as a regressor only where it varies in the fit's window."""
    exog = sarima.has_variation(x)
    return spec if spec.exog == exog else sarima.Spec(spec.order, spec.seasonal_order, exog=exog)


def _fit(y: np.ndarray, x: np.ndarray, spec: sarima.Spec, start: np.ndarray | None) -> sarima.Fit:
    spec = _for_window(spec, x)
    fitted = sarima.fit(for_model(y), x, spec, start)
    if not fitted.converged:
        raise sarima.FitError(f"{spec.label} did not converge in {fitted.iterations} iterations")
    return fitted


def run_task(task: SeriesTask) -> SeriesResult:
    """Model one series for tonight: forecast with intervals plus the rolling-origin backtest."""
    t0, c0 = time.perf_counter(), time.process_time()
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
                best, result.candidates = sarima.select(for_model(y), x)
                spec, start, result.selected = best.spec, best.params, True
            fitted = _fit(y, x, spec, start)
            result.forecast = sarima.forecast(for_model(y), x, task.future_promo, fitted, task.horizon)
            result.kind, result.spec = "sarima", fitted.spec
            result.params, result.aic = fitted.params.tolist(), fitted.aic
            result.warm = start is not None
        except Exception as e:  # noqa: BLE001 - any failure becomes a recorded fallback
            result.kind, result.reason = "fallback", f"{type(e).__name__}: {str(e)[:200]}"
    result.backtest = _backtest(task, y_all, x_all, result)
    result.seconds = time.perf_counter() - t0
    result.cpu_seconds = time.process_time() - c0
    return result


def _backtest(task: SeriesTask, y_all: np.ndarray, x_all: np.ndarray, tonight: SeriesResult) -> list[BacktestOrigin]:
    """Forecasts from each origin with data up to it only, as the nightly run would have made them.

    Parameters are estimated once, at the earliest origin, and kept fixed for the later ones
    (their state is still updated with the data up to each origin): one fit per series instead
    of one per origin, and no parameter ever sees the days it is scored on. Between order
    re-selections the parameters estimated on an earlier night are reused (`task.backtest_fit`):
    they were estimated on even older data, so that still holds.
    """
    cuts = sorted((c for c in task.origins if y_all.size - c >= 1), reverse=True)
    fitted: sarima.Fit | None = None
    failure: str | None = None
    out = []
    for cut in cuts:
        h = min(task.horizon, cut)
        y = y_all[: y_all.size - cut][-task.fit_days:]
        x = x_all[: x_all.size - cut][-task.fit_days:]
        filled = _filled(y)
        naive = seasonal_naive(filled, h)
        origin = BacktestOrigin(cut, y_all[y_all.size - cut: y_all.size - cut + h], mase_scale(filled), naive,
                                naive, mean_baseline(filled, h))
        reason = baseline_reason(y)
        out.append(origin)
        if reason is not None or tonight.spec is None:
            origin.fallback = reason or tonight.reason or "no model tonight"
            continue
        try:
            if fitted is None and failure is None:
                start = np.asarray(tonight.params) if tonight.params is not None else None
                fitted = _kept_fit(task.backtest_fit, _for_window(tonight.spec, x)) or _fit(y, x, tonight.spec, start)
            if fitted is None:
                raise sarima.FitError(failure or "no fit")
            # The future promotion calendar is unknown at the origin, exactly as it is tonight.
            origin.model = sarima.forecast(for_model(y), x, np.zeros(h), fitted, h)
        except Exception as e:  # noqa: BLE001
            failure = failure or f"{type(e).__name__}: {str(e)[:200]}"
            origin.fallback = failure
    if fitted is not None and failure is None:  # kept for later nights only when it served every origin
        tonight.backtest_fit = (fitted.spec, fitted.params)
    return out


def _kept_fit(kept: tuple[sarima.Spec, np.ndarray] | None, spec: sarima.Spec) -> sarima.Fit | None:
    """An earlier night's backtest parameters when they belong to the model the backtest fits now."""
    if kept is None or kept[0] != spec:
        return None
    return sarima.Fit(spec, np.asarray(kept[1], float), float("nan"), True, 0, {})
