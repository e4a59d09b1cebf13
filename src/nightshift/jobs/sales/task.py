"""One series, one unit of parallel work: backtest the model menu, choose, and forecast.

`run_task` is a pure, top-level function of a picklable `SeriesTask`, so any mapper (a process
pool, a Dask cluster, a plain loop) can run it. It never raises: a series that can't be modelled
gets a baseline with the reason recorded (too short, no sales, constant), and a chosen model that
fails tonight falls back to seasonal naive with the reason recorded.

The menu (SARIMA, exponential smoothing, Theta, their combination, seasonal naive) forecasts
from every backtest origin. Tonight's model is the one with the lowest MASE over the most recent
`N_SELECT` origins; the scorecard's "model" at each scored origin is the member chosen the same
way on the `N_SELECT` origins before it, whose forecasts ended by that origin: the choice never
sees the days it is scored on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nightshift.jobs.sales import menu, sarima
from nightshift.jobs.sales.baselines import Forecast, mean_baseline, seasonal_naive
from nightshift.jobs.sales.frequency import FREQUENCIES, N_SELECT, Frequency
from nightshift.jobs.sales.metrics import mase_scale

DEFAULT_MEMBER = "sarima"  # published when no origin could score the menu (too little history)
NEEDS_ORDER = ("sarima", "combination")  # the members that forecast with a SARIMA order


@dataclass
class SeriesTask:
    """Everything needed to model one series; `y` ends on its last period (NaN = unknown period)."""

    key: str  # "store_id/product_id"
    y: np.ndarray
    promo: np.ndarray
    future_promo: np.ndarray  # promotions known in advance over the horizon (else zeros)
    horizon: int
    fit_periods: int  # history one fit sees (the most recent periods before its origin)
    spec: sarima.Spec | None = None  # cached SARIMA order; None means select now
    start_params: np.ndarray | None = None  # last night's parameters, for a warm start
    origins: tuple[int, ...] = ()  # backtest cut points, in periods before the last one
    backtest_fit: tuple[sarima.Spec, np.ndarray] | None = None  # kept from an earlier night (see state)
    freq: str = "daily"
    # Between training nights (nightshift.cadence): the member the training night chose, and its
    # backtest scores; the backtest is not run again and the member is refitted on tonight's data.
    member: str | None = None
    kept_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class BacktestOrigin:
    """One rolling origin: actuals, every member's forecast, baselines, and the model chosen for it."""

    cut: int
    actual: np.ndarray
    scale: float
    members: dict[str, Forecast]  # the menu members that forecast from this origin
    mean: Forecast
    model: Forecast  # what the nightly pipeline would have published (the choice, or its fallback)
    scored: bool = False  # one of the most recent origins, scored on the page (the N_SELECT older only select)
    modelled: bool = False  # the menu ran here (not a series or window too short for models)
    chosen: str | None = None
    fallback: str | None = None


@dataclass
class SeriesResult:
    """The night's outcome for one series."""

    key: str
    forecast: Forecast
    naive: Forecast  # tonight's seasonal naive forecast, stored for scoring later
    kind: str  # the member published ("sarima", "ets", ...), "baseline" (by design) or "fallback" (it failed)
    reason: str | None
    scale: float
    freq: str = "daily"
    spec: sarima.Spec | None = None
    params: list[float] | None = None
    aic: float | None = None
    selected: bool = False
    candidates: list[dict] = field(default_factory=list)
    warm: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    backtest: list[BacktestOrigin] = field(default_factory=list)
    backtest_fit: tuple[sarima.Spec, np.ndarray] | None = None  # the backtest's SARIMA, for the state
    scores: dict[str, float] = field(default_factory=dict)  # tonight's selection MASE per member
    failures: dict[str, str] = field(default_factory=dict)  # members that failed in the backtest, why


def baseline_reason(y: np.ndarray, freq: Frequency) -> str | None:
    """Why a series should get a baseline instead of a model, or None when it can be modelled."""
    known = y[np.isfinite(y)]
    if known.size < freq.min_periods:
        return f"too short: {known.size} {freq.name} periods of history (< {freq.min_periods})"
    if not np.any(known > 0):
        return "no sales in the history window"
    if np.all(known == known[0]):
        return "constant series"
    return None


def _filled(y: np.ndarray) -> np.ndarray:
    """Unknown periods carried forward for the baselines (the models take NaN as unknown)."""
    y = np.asarray(y, float)
    idx = np.where(np.isfinite(y), np.arange(y.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = y[idx]
    return out[np.isfinite(out)]


def _for_window(spec: sarima.Spec, x: np.ndarray) -> sarima.Spec:
    """`spec` with promotion as a regressor only where it varies in the fit's window."""
    exog = sarima.has_variation(x)
    return spec if spec.exog == exog else sarima.Spec(spec.order, spec.seasonal_order, exog=exog)


def _fit(z: np.ndarray, x: np.ndarray, spec: sarima.Spec, start: np.ndarray | None) -> sarima.Fit:
    z, x = z[-sarima.FIT_PERIODS:], x[-sarima.FIT_PERIODS:]
    spec = _for_window(spec, x)
    fitted = sarima.fit(z, x, spec, start)
    if not fitted.converged:
        raise sarima.FitError(f"{spec.label} did not converge in {fitted.iterations} iterations")
    return fitted


def _reason(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e)[:200]}"


def run_task(task: SeriesTask) -> SeriesResult:
    """Model one series for tonight: the menu's backtest, the winner's forecast with intervals."""
    t0, c0 = time.perf_counter(), time.process_time()
    freq = FREQUENCIES[task.freq]
    y_all, x_all = np.asarray(task.y, float), np.asarray(task.promo, float)
    y, x = y_all[-task.fit_periods:], x_all[-task.fit_periods:]
    filled = _filled(y)
    naive = seasonal_naive(filled, task.horizon, freq.season)
    result = SeriesResult(task.key, naive, naive, "baseline", baseline_reason(y, freq),
                          mase_scale(filled, freq.season), freq=task.freq)
    if result.reason is None:
        s = menu.prepare(y, task.horizon, freq.yearly)
        if task.member is None or task.member in NEEDS_ORDER:
            _select_order(task, s, x, freq, result)
        if task.member is None:
            result.backtest = _backtest(task, y_all, x_all, freq, result)
            result.scores = _scores(result.backtest, task.horizon, None)
        else:
            result.scores = dict(task.kept_scores)
        _publish(task, s, x, freq, result, task.member or winner(result.scores))
    else:
        result.backtest = _backtest(task, y_all, x_all, freq, result)
    result.seconds = time.perf_counter() - t0
    result.cpu_seconds = time.process_time() - c0
    return result


def _select_order(task: SeriesTask, s: menu.LogSeries, x: np.ndarray, freq: Frequency, result: SeriesResult) -> None:
    """Tonight's SARIMA order: the cached one, or selected by AIC (then SARIMA is off the menu if none fits)."""
    if task.spec is not None:
        result.spec = task.spec
        return
    try:
        best, result.candidates = sarima.select(s.z, x, sarima.grid(freq.season))
        result.spec, result.params, result.selected = best.spec, best.params.tolist(), True
    except Exception as e:  # noqa: BLE001 - recorded, and the other members still run
        result.failures["sarima"] = _reason(e)


def _publish(task: SeriesTask, s: menu.LogSeries, x: np.ndarray, freq: Frequency, result: SeriesResult,
             winner: str) -> None:
    """Tonight's forecast from the winner; seasonal naive when it won, or as a fallback when it fails."""
    if winner == "seasonal_naive":
        result.kind = winner
        best = min((v for k, v in result.scores.items() if k != winner), default=float("nan"))
        result.reason = (f"seasonal naive won the backtest (MASE {result.scores[winner]:.3f} vs "
                         f"{best:.3f} for the best model)")
        return
    try:
        fits: dict[str, sarima.Fit] = {}
        if winner in ("sarima", "combination") and result.spec is not None:
            start = task.start_params if not result.selected else np.asarray(result.params)
            fits["sarima"] = _fit(s.z, x, result.spec, start)
            result.warm = start is not None and not result.selected
            result.params, result.aic = fits["sarima"].params.tolist(), fits["sarima"].aic
            result.spec = fits["sarima"].spec
        parts = _members(s, x, task.future_promo, task.horizon, freq, fits.get("sarima"), {winner})
        if winner not in parts:
            raise sarima.FitError(parts.get("_error") or f"{winner} could not forecast")  # type: ignore[arg-type]
        result.forecast, result.kind = parts[winner], winner
    except Exception as e:  # noqa: BLE001 - any failure becomes a recorded fallback
        result.kind, result.reason = "fallback", f"{winner}: {_reason(e)}"


def _members(s: menu.LogSeries, x: np.ndarray, future_x: np.ndarray, h: int, freq: Frequency,
             fitted: sarima.Fit | None, wanted: set[str], failures: dict[str, str] | None = None) -> dict:
    """The `wanted` members' forecasts (all model members when `wanted` has the combination)."""
    need = set(menu.COMBINED) if "combination" in wanted else set(wanted)
    logs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    errors: dict[str, str] = {}
    makers = {"sarima": lambda: _sarima(s, x, future_x, fitted, h),
              "ets": lambda: menu.ets(s, h, freq.season), "theta": lambda: menu.theta(s, h, freq.season)}
    for name in menu.COMBINED:
        if name in need:
            try:
                logs[name] = makers[name]()
            except Exception as e:  # noqa: BLE001 - one member failing leaves the others
                errors[name] = _reason(e)
    if "combination" in wanted:
        try:
            logs["combination"] = menu.combination({k: logs[k] for k in menu.COMBINED if k in logs})
        except Exception as e:  # noqa: BLE001
            errors["combination"] = _reason(e)
    out: dict = {}
    for name, (mu, sd) in logs.items():
        try:
            out[name] = menu.to_units(s, mu, sd, _label(name, fitted))
        except Exception as e:  # noqa: BLE001
            errors[name] = _reason(e)
    if failures is not None:
        failures.update({k: v for k, v in errors.items() if k not in failures})
    if errors:
        out["_error"] = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return {k: v for k, v in out.items() if k in wanted or k == "_error"}


def _sarima(s: menu.LogSeries, x: np.ndarray, future_x: np.ndarray, fitted: sarima.Fit | None, h: int):
    if fitted is None:
        raise sarima.FitError("no SARIMA fit")
    return sarima.forecast(s.z, x, future_x, fitted, h)


def _label(name: str, fitted: sarima.Fit | None) -> str:
    return fitted.spec.label if name == "sarima" and fitted is not None else name


def _backtest(task: SeriesTask, y_all: np.ndarray, x_all: np.ndarray, freq: Frequency,
              tonight: SeriesResult) -> list[BacktestOrigin]:
    """Every member's forecasts from each origin with data up to it only, as a night then would have.

    SARIMA's parameters are estimated once, at the earliest origin, and kept fixed for the later
    ones (their state is still updated with the data up to each origin): no parameter ever sees the
    days it is scored on. Between order re-selections the parameters estimated on an earlier night
    are reused (`task.backtest_fit`): they were estimated on even older data, so that still holds.
    The smoothing members are cheap enough to refit at every origin.
    """
    cuts = sorted((c for c in task.origins if y_all.size - c >= 1), reverse=True)
    scored = set(sorted(cuts)[:max(1, len(task.origins) - N_SELECT)])  # the older N_SELECT only select
    fitted: sarima.Fit | None = None
    out: list[BacktestOrigin] = []
    for cut in cuts:
        h = min(task.horizon, cut)
        y = y_all[: y_all.size - cut][-task.fit_periods:]
        x = x_all[: x_all.size - cut][-task.fit_periods:]
        filled = _filled(y)
        naive = seasonal_naive(filled, h, freq.season)
        origin = BacktestOrigin(cut, y_all[y_all.size - cut: y_all.size - cut + h], mase_scale(filled, freq.season),
                                {"seasonal_naive": naive}, mean_baseline(filled, h, freq.horizon), naive,
                                scored=cut in scored)
        out.append(origin)
        if tonight.reason is not None or baseline_reason(y, freq) is not None:
            origin.fallback = tonight.reason or baseline_reason(y, freq)
            continue
        s = menu.prepare(y, h, freq.yearly)
        if fitted is None and tonight.spec is not None and "sarima" not in tonight.failures:
            fitted = _backtest_fit(task, s, x, tonight)
        origin.members.update(_members(s, x, np.zeros(h), h, freq, fitted, set(menu.COMBINED) | {"combination"},
                                       tonight.failures))
        origin.members.pop("_error", None)
        origin.modelled = True
    for origin in out:
        if origin.modelled:
            _choose(origin, out, task.horizon)
    if fitted is not None:
        tonight.backtest_fit = (fitted.spec, fitted.params)
    return out


def _backtest_fit(task: SeriesTask, s: menu.LogSeries, x: np.ndarray, tonight: SeriesResult) -> sarima.Fit | None:
    spec = _for_window(tonight.spec, x[-sarima.FIT_PERIODS:])  # type: ignore[arg-type]
    kept = task.backtest_fit
    if kept is not None and kept[0] == spec:
        return sarima.Fit(spec, np.asarray(kept[1], float), float("nan"), True, 0, {})
    try:
        start = np.asarray(tonight.params) if tonight.params is not None else task.start_params
        return _fit(s.z, x, spec, start)
    except Exception as e:  # noqa: BLE001
        tonight.failures["sarima"] = _reason(e)
        return None


def _origin_mase(o: BacktestOrigin, f: Forecast) -> float:
    ok = np.isfinite(o.actual)
    err = float(np.mean(np.abs(o.actual[ok] - f.mean[: o.actual.size][ok]))) if ok.any() else float("nan")
    return err / o.scale if np.isfinite(o.scale) and o.scale > 0 else err


def _scores(origins: list[BacktestOrigin], horizon: int, before: int | None) -> dict[str, float]:
    """Each member's mean MASE over the N_SELECT most recent origins whose forecasts ended by the
    origin `before` periods back (None: by tonight); a member missing at one of them scores inf."""
    usable = [o for o in origins if o.modelled and (before is None or o.cut >= before + horizon)]
    chosen = sorted(usable, key=lambda o: o.cut)[:N_SELECT]
    if not chosen:
        return {}
    out = {}
    for name in menu.MEMBERS:
        vals = [_origin_mase(o, o.members[name]) if name in o.members else float("inf") for o in chosen]
        out[name] = float(np.nanmean(vals)) if not all(np.isnan(vals)) else float("inf")
    return out


def winner(scores: dict[str, float]) -> str:
    """The member with the lowest score (the menu's order breaks ties); the default without scores."""
    finite = {k: v for k, v in scores.items() if np.isfinite(v)}
    return min(finite, key=lambda k: (finite[k], menu.MEMBERS.index(k))) if finite else DEFAULT_MEMBER


def _choose(origin: BacktestOrigin, origins: list[BacktestOrigin], horizon: int) -> None:
    """The member the pipeline would have published from this origin, chosen on older origins only."""
    origin.chosen = winner(_scores(origins, horizon, origin.cut))
    if origin.chosen in origin.members:
        origin.model = origin.members[origin.chosen]
    else:
        origin.fallback = f"{origin.chosen} failed at this origin"
