"""The sales job: forecasts for every store × product series at its own frequency, with a scorecard.

Reads the series as of D from the warehouse, infers each one's frequency from its dates (or takes
`frequency` under `[sources.sales]`), fills gaps at that frequency only, and fits one model menu per
series in parallel processes (SARIMA orders re-selected weekly and cached, parameters warm-started
nightly). Each series publishes the member that won its rolling-origin backtest, seasonal naive
included; tonight's forecast is stored so that later nights can score it, and the report gets the
menu's scores side by side.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import polars as pl

from nightshift import cadence
from nightshift.jobs import JobContext, JobResult
from nightshift.jobs.sales import backtest, frequency, history, state
from nightshift.jobs.sales.parallel import make_mapper
from nightshift.jobs.sales.series import build_tasks
from nightshift.jobs.sales.task import SeriesResult, run_task, winner

BACKTEST = "backtest"  # state name: a training night's per-series backtest scores

# What tonight's answer takes from nights run before it (the manifest says so: not point in time).
DEPENDS_ON_EARLIER_NIGHTS = {
    "sarima orders": "each series' order and starting parameters come from the last state saved "
                     "before D (re-selected every sales_reselect_days)",
    "past forecast scores": "only nights that ran stored forecasts to score against their actuals",
    "training cadence": "between training nights ([retrain] sales), each series publishes the member its "
                        "period's training night chose, with that night's backtest scores",
}


def frequency_override(settings) -> str | None:
    """`frequency` under `[sources.sales]`, when the user set one."""
    src = settings.sources.get("sales")
    return None if src is None else src.frequency


def run(ctx: JobContext) -> JobResult:
    """Forecast, backtest and score tonight's sales series."""
    from nightshift.jobs.sales.report import build_context, headline

    t0 = time.perf_counter()
    d = ctx.run_date
    override = frequency_override(ctx.settings)
    table = frequency.configured(ctx.settings.sales_horizon, ctx.settings.sales_history)
    origins = ctx.settings.sales_backtest_origins + frequency.N_SELECT
    history_days, retire_days = frequency.window_days(override, table, origins)
    rows = ctx.sql("series", history_days=history_days, retire_days=retire_days).with_columns(series_key())
    status = ctx.sql("series_status", retire_days=retire_days)
    future = ctx.sql("future_promotions", horizon=table["daily"].horizon)
    freqs, unknown = frequency.assign(rows, override)
    frame = frequency.grid(rows, freqs, d, table, origins)
    cache_date, cache = state.load(ctx.state, d)
    plan, carried = _cadence(ctx)
    tasks = build_tasks(frame, future, cache, run_date=d, reselect_days=ctx.settings.sales_reselect_days,
                        table=table, origins=origins, kept=None if plan.trains else plan.kept["series"])
    t_fit = time.perf_counter()
    with make_mapper(ctx.settings.max_workers, ctx.settings.dask_address) as mapper:
        results: list[SeriesResult] = mapper.map(run_task, tasks)
        workers = getattr(mapper, "workers", 1)
    fit_seconds = time.perf_counter() - t_fit
    state.save(ctx.state, d, next_state(results, cache, d))

    forecast = forecast_frame(results, last_dates(frame), d)
    ctx.write_parquet("forecast", forecast.drop("naive", "scale", "freq"))
    series_scores = backtest.per_series(backtest.long_frame(results))
    if plan.trains:
        _record_choices(ctx, results, series_scores)
    else:  # the training night's scores, for the series that kept its choice
        kept = sorted(t.key for t in tasks if t.member is not None)
        series_scores = pl.concat([carried.filter(pl.col("series").is_in(kept)), series_scores]).sort(
            "series", "method")
    overall = backtest.overall(series_scores)
    scorecard = backtest.wide(series_scores)
    ctx.write_parquet("backtest", series_scores)
    history.record(ctx.warehouse, d, forecast)
    past = history.scores(ctx.warehouse, d)

    kinds = Counter(r.kind for r in results)
    frequencies = dict(Counter(r.freq for r in results))
    warnings = _warnings(results, unknown, d, override)
    by = {row["method"]: row for row in overall.to_dicts()}
    summary = {
        "series": len(results),
        "frequencies": frequencies,
        "frequency_source": "settings" if override else "inferred",
        "models": dict(kinds),
        "baselines": kinds.get("baseline", 0),
        "fallbacks": kinds.get("fallback", 0),
        "unknown_frequency": len(unknown),
        "mase": _get(by, "model", "mase"),
        **{f"mase_{m}": _get(by, m, "mase") for m in backtest.METHODS if m != "model"},
        "coverage_80": _get(by, "model", "coverage_80"),
        "coverage_95": _get(by, "model", "coverage_95"),
        "trained": plan.trains,
    }
    seconds = time.perf_counter() - t0
    context = build_context(
        results=results, forecast=forecast, frame=frame, status=status, overall=overall, scorecard=scorecard,
        past=past, summary=summary, timings={"total_s": seconds, "fit_s": fit_seconds,
                                                         "workers": workers},
        cadence=plan.page(d),
    )
    selected = sum(r.selected for r in results)
    return JobResult(
        summary=summary,
        context=context,
        models={"sarima": f"state {cache_date.isoformat()}" if cache_date else "cold start"},
        warnings=warnings,
        headline=headline(context, summary),
        extra={"device": "cpu", "workers": workers, "fit_seconds": round(fit_seconds, 2),
               "seconds": round(seconds, 2), "orders_selected": selected,
               "fit_cpu_seconds": round(sum(r.cpu_seconds for r in results), 2),
               "warm_starts": sum(r.warm for r in results), "depends_on_earlier_nights": DEPENDS_ON_EARLIER_NIGHTS},
    )


def _cadence(ctx: JobContext) -> tuple[cadence.Plan, pl.DataFrame | None]:
    """Tonight's part in the training cadence (`[retrain] sales`) and, between training nights, the
    training night's per-series backtest scores (missing: tonight trains)."""
    plan = cadence.plan(ctx.state, ctx.settings.cadence("sales"), ctx.run_date)
    if plan.trains:
        return plan, None
    night = plan.last_trained
    saved = ctx.state.frames(BACKTEST, since=night, before=night + timedelta(days=1)) if night else []
    if not saved or "series" not in (plan.kept or {}):
        return replace(plan, trains=True, kept=None), None
    return plan, saved[0][1]


def _record_choices(ctx: JobContext, results: list[SeriesResult], series_scores: pl.DataFrame) -> None:
    """A training night: each series' chosen member and backtest scores, for the nights until the next."""
    chosen = {r.key: {"member": winner(r.scores), "freq": r.freq,
                      "scores": {k: v for k, v in r.scores.items() if np.isfinite(v)}}
              for r in results if r.scores}
    cadence.record(ctx.state, ctx.run_date, {"series": chosen})
    ctx.state.save_frame(BACKTEST, ctx.run_date, series_scores)


def series_key() -> pl.Expr:
    """The series key, "store_id/product_id"."""
    return pl.concat_str("store_id", pl.lit("/"), "product_id").alias("series")


def _warnings(results: list[SeriesResult], unknown: list[str], d: date, override: str | None) -> list[str]:
    out = []
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        out.append(f"{len(unknown)} sales series were not forecast because their frequency cannot be inferred "
                   f"from their dates (not daily, weekly, monthly or quarterly): {shown}. Add `frequency = "
                   '"monthly"` (or "daily", "weekly", "quarterly") under [sources.sales] in nightshift.toml.')
    fallbacks = [r for r in results if r.kind == "fallback"]
    if fallbacks:
        out.append(f"{len(fallbacks)} of {len(results)} series fell back to seasonal naive because the model "
                   "chosen on the backtest failed tonight (see 'Fallbacks and baselines').")
    if not results and not unknown:
        out.append(f"no active sales series as of {d}: nothing to forecast")
    return out


def _get(by: dict, method: str, col: str) -> float | None:
    v = by.get(method, {}).get(col)
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def next_state(results: list[SeriesResult], cache: dict[str, state.Cached], d: date) -> dict[str, state.Cached]:
    """Tonight's SARIMA orders and parameters (kept whichever member was published, for tomorrow's
    backtest and warm start); a series without a SARIMA order tonight keeps its previous entry."""
    out = {}
    for r in results:
        prev = cache.get(r.key)
        if r.spec is not None and "sarima" not in r.failures:
            selected_on = d if r.selected or prev is None else prev.selected_on
            params = np.asarray(r.params) if r.params is not None else (None if prev is None else prev.params)
            kept = prev.backtest if prev is not None and not r.selected else None  # a night without backtest
            out[r.key] = state.Cached(r.spec, selected_on, params, r.backtest_fit or kept)
        elif prev is not None:
            out[r.key] = prev
    return out


def last_dates(frame: pl.DataFrame) -> dict[str, date]:
    """Each series' last period on its grid: forecasts start one period after it."""
    return dict(frame.group_by("series").agg(pl.col("date").max()).iter_rows())


def forecast_frame(results: list[SeriesResult], last: dict[str, date], run_date: date) -> pl.DataFrame:
    """The published forecast: one row per series and period, with the model used and any reason.

    A daily series' forecast starts the day after the run date; any other series' the period after
    its last one (run_date is the fallback for a series missing from `last`).
    """
    if not results:
        return pl.DataFrame(schema={
            "series": pl.String, "store_id": pl.String, "product_id": pl.String, "date": pl.Date,
            "horizon": pl.Int32, "mean": pl.Float64, "lower_80": pl.Float64, "upper_80": pl.Float64,
            "lower_95": pl.Float64, "upper_95": pl.Float64, "model": pl.String, "kind": pl.String,
            "reason": pl.String, "naive": pl.Float64, "scale": pl.Float64, "freq": pl.String})
    sizes = np.array([r.forecast.mean.size for r in results])
    cat = lambda name: np.concatenate([getattr(r.forecast, name) for r in results])  # noqa: E731
    per = lambda values, dtype=object: np.repeat(np.array(values, dtype=dtype), sizes)  # noqa: E731
    frame = pl.DataFrame({
        "series": per([r.key for r in results]),
        "origin": per([last.get(r.key, run_date) for r in results], "datetime64[D]"),
        "step": per([frequency.FREQUENCIES[r.freq].step for r in results]),
        "horizon": np.concatenate([np.arange(1, n + 1) for n in sizes]).astype(np.int32),
        "mean": cat("mean"), "lower_80": cat("lower_80"), "upper_80": cat("upper_80"),
        "lower_95": cat("lower_95"), "upper_95": cat("upper_95"),
        "model": per([r.forecast.model for r in results]),
        "kind": per([r.kind for r in results]),
        "reason": per([r.reason or "" for r in results]),
        "naive": np.concatenate([r.naive.mean for r in results]),
        "scale": per([r.scale for r in results], float),
        "freq": per([r.freq for r in results]),
    }).with_columns(pl.col("origin").cast(pl.Date))
    return frame.with_columns(
        frequency.offset(pl.col("origin"), pl.col("horizon"), pl.col("step")).alias("date"),
        pl.col("series").str.split_exact("/", 1).struct.rename_fields(["store_id", "product_id"]).alias("_k"),
        pl.when(pl.col("reason") == "").then(None).otherwise(pl.col("reason")).alias("reason"),
        pl.col("scale").fill_nan(None),
    ).unnest("_k").select("series", "store_id", "product_id", "date", "horizon", "mean", "lower_80", "upper_80",
                          "lower_95", "upper_95", "model", "kind", "reason", "naive", "scale", "freq")
