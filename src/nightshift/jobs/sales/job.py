"""The sales job: 28-day SARIMA forecasts for every store × product series, with a scorecard.

Reads the series as of D from the warehouse, fits one model per series in parallel processes
(orders re-selected weekly and cached, parameters warm-started nightly, the backtest's parameters
kept until the order is re-selected), writes the forecast,
backtests against seasonal naive and the mean baseline, stores tonight's forecast so that later
nights can score it, and hands the report its tables and charts.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import date

import numpy as np
import polars as pl

from nightshift.jobs import JobContext, JobResult
from nightshift.jobs.sales import backtest, history, state
from nightshift.jobs.sales.parallel import make_mapper
from nightshift.jobs.sales.series import build_tasks
from nightshift.jobs.sales.task import SeriesResult, run_task

HORIZON = 28
FIT_DAYS = 365  # a year is enough for weekly structure and trend; more only costs fit time
N_ORIGINS = 3
RETIRE_DAYS = 28  # no row for four weeks: the product is no longer listed in that store
HISTORY_DAYS = FIT_DAYS + N_ORIGINS * HORIZON


def run(ctx: JobContext) -> JobResult:
    """Forecast, backtest and score tonight's sales series."""
    from nightshift.jobs.sales.report import build_context

    t0 = time.perf_counter()
    d = ctx.run_date
    frame = ctx.sql("series", history_days=HISTORY_DAYS, retire_days=RETIRE_DAYS)
    status = ctx.sql("series_status", retire_days=RETIRE_DAYS)
    future = ctx.sql("future_promotions", horizon=HORIZON)
    cache_date, cache = state.load(ctx.state, d)
    tasks = build_tasks(frame, future, cache, run_date=d, horizon=HORIZON, fit_days=FIT_DAYS,
                        reselect_days=ctx.settings.sales_reselect_days,
                        origins=backtest.origins(N_ORIGINS, HORIZON))
    t_fit = time.perf_counter()
    with make_mapper(ctx.settings.max_workers, ctx.settings.dask_address) as mapper:
        results: list[SeriesResult] = mapper.map(run_task, tasks)
        workers = getattr(mapper, "workers", 1)
    fit_seconds = time.perf_counter() - t_fit
    state.save(ctx.state, d, next_state(results, cache, d))

    forecast = forecast_frame(results, d)
    ctx.write_parquet("forecast", forecast.drop("naive", "scale"))
    points = backtest.long_frame(results)
    series_scores = backtest.per_series(points)
    overall = backtest.overall(series_scores)
    scorecard = backtest.wide(series_scores)
    ctx.write_parquet("backtest", series_scores)
    history.record(ctx.warehouse, d, forecast)
    past = history.scores(ctx.warehouse, d)

    kinds = Counter(r.kind for r in results)
    fallbacks = [r for r in results if r.kind == "fallback"]
    warnings = []
    if fallbacks:
        warnings.append(f"{len(fallbacks)} of {len(results)} series fell back to seasonal naive because the "
                        "SARIMA fit failed or did not converge (see 'Fallbacks and baselines').")
    if not results:
        warnings.append(f"no active sales series as of {d}: nothing to forecast")
    by = {row["method"]: row for row in overall.to_dicts()}
    summary = {
        "series": len(results),
        "sarima": kinds.get("sarima", 0),
        "baselines": kinds.get("baseline", 0),
        "fallbacks": kinds.get("fallback", 0),
        "mase": _get(by, "sarima", "mase"),
        "mase_seasonal_naive": _get(by, "seasonal_naive", "mase"),
        "mase_mean": _get(by, "mean", "mase"),
        "coverage_80": _get(by, "sarima", "coverage_80"),
        "coverage_95": _get(by, "sarima", "coverage_95"),
    }
    seconds = time.perf_counter() - t0
    context = build_context(
        results=results, forecast=forecast, frame=frame, status=status, overall=overall, scorecard=scorecard,
        past=past, summary=summary, run_date=d, timings={"total_s": seconds, "fit_s": fit_seconds,
                                                         "workers": workers},
    )
    selected = sum(r.selected for r in results)
    return JobResult(
        summary=summary,
        context=context,
        models={"sarima": f"state {cache_date.isoformat()}" if cache_date else "cold start"},
        warnings=warnings,
        extra={"device": "cpu", "workers": workers, "fit_seconds": round(fit_seconds, 2),
               "seconds": round(seconds, 2), "orders_selected": selected,
               "fit_cpu_seconds": round(sum(r.cpu_seconds for r in results), 2),
               "warm_starts": sum(r.warm for r in results)},
    )


def _get(by: dict, method: str, col: str) -> float | None:
    v = by.get(method, {}).get(col)
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def next_state(results: list[SeriesResult], cache: dict[str, state.Cached], d: date) -> dict[str, state.Cached]:
    """Tonight's orders and parameters; a series that fell back keeps its previous entry."""
    out = {}
    for r in results:
        prev = cache.get(r.key)
        if r.kind == "sarima" and r.spec is not None:
            selected_on = d if r.selected or prev is None else prev.selected_on
            out[r.key] = state.Cached(r.spec, selected_on, np.asarray(r.params), r.backtest_fit)
        elif prev is not None and r.kind == "fallback":
            out[r.key] = prev
    return out


def forecast_frame(results: list[SeriesResult], run_date: date) -> pl.DataFrame:
    """The published forecast: one row per series and day, with the model used and any reason."""
    if not results:
        return pl.DataFrame(schema={
            "series": pl.String, "store_id": pl.String, "product_id": pl.String, "date": pl.Date,
            "horizon": pl.Int32, "mean": pl.Float64, "lower_80": pl.Float64, "upper_80": pl.Float64,
            "lower_95": pl.Float64, "upper_95": pl.Float64, "model": pl.String, "kind": pl.String,
            "reason": pl.String, "naive": pl.Float64, "scale": pl.Float64})
    h = results[0].forecast.mean.size
    n = len(results)
    cat = lambda name: np.concatenate([getattr(r.forecast, name) for r in results])  # noqa: E731
    keys = np.repeat(np.array([r.key for r in results], dtype=object), h)
    frame = pl.DataFrame({
        "series": keys,
        "date": np.tile(np.arange(1, h + 1), n),
        "horizon": np.tile(np.arange(1, h + 1), n).astype(np.int32),
        "mean": cat("mean"), "lower_80": cat("lower_80"), "upper_80": cat("upper_80"),
        "lower_95": cat("lower_95"), "upper_95": cat("upper_95"),
        "model": np.repeat(np.array([r.forecast.model for r in results], dtype=object), h),
        "kind": np.repeat(np.array([r.kind for r in results], dtype=object), h),
        "reason": np.repeat(np.array([r.reason or "" for r in results], dtype=object), h),
        "naive": np.concatenate([r.naive.mean for r in results]),
        "scale": np.repeat(np.array([r.scale for r in results], float), h),
    })
    return frame.with_columns(
        (pl.lit(run_date) + pl.duration(days=pl.col("date"))).cast(pl.Date).alias("date"),
        pl.col("series").str.split_exact("/", 1).struct.rename_fields(["store_id", "product_id"]).alias("_k"),
        pl.when(pl.col("reason") == "").then(None).otherwise(pl.col("reason")).alias("reason"),
        pl.col("scale").fill_nan(None),
    ).unnest("_k").select("series", "store_id", "product_id", "date", "horizon", "mean", "lower_80", "upper_80",
                          "lower_95", "upper_95", "model", "kind", "reason", "naive", "scale")
