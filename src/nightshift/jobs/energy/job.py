"""The energy job: next week's hourly load per region from the best of a Keras network and its baselines.

Flow for run date D: region-hour load from SQL (sql/marts/energy/region_hourly.sql) → gap repair
(missing readings, temperature outages; meters joining/leaving are told apart from gaps; a source
without temperature is modelled from calendar and load history) → sliding windows split by time
(train / validation / holdout) → candidates fitted on the same window: the network (MirroredStrategy
on GPUs, default strategy on CPU), ridge, day-type profile, seasonal naive (`bakeoff`) → the best on
the holdout challenges the champion (`nightshift.selection`) → forecast from midnight after D with
a rolling conformal interval for the model in use (`calibration`) → household aggregates through
the privacy layer → the page. The candidates are fitted on the training nights of the cadence
(`[retrain] energy`, weekly by default); the nights between, the model chosen then scores alone.
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import polars as pl

from nightshift import cadence
from nightshift.jobs import JobContext, JobResult
from nightshift.jobs.energy import bakeoff, baselines, calibration, candidates, dataset, report
from nightshift.selection import candidate_name

COVERAGE = calibration.COVERAGE
RECENT_DAYS = 7  # gaps this close to D feed tonight's forecast inputs: warn about them
COVERAGE_K_SE = 2.0  # the page warns when coverage is further than this many sampling errors from nominal


# What tonight's answer takes from nights run before it (the manifest says so: not point in time).
DEPENDS_ON_EARLIER_NIGHTS = {
    "energy_load champion": "forecasts come from the registry's champion, which tonight's challenger "
                            "replaces only if it beats it on the holdout",
    "training cadence": "between training nights ([retrain] energy), the model the period's training "
                        "night chose scores (its state)",
}


def run(ctx: JobContext) -> JobResult:
    """Fit (or score with the champion), judge, forecast and report for one run date."""
    t_start = time.perf_counter()
    hourly = ctx.sql("region_hourly")
    if hourly.height == 0:
        raise ValueError(f"energy: no meter readings up to {ctx.run_date}; load the energy table first")
    clean = dataset.clean_hourly(hourly)
    gaps = dataset.incidents(clean)
    series = dataset.to_series(clean)
    split = dataset.time_split(series)
    val_w, hold_w = (dataset.make_windows(series, o) for o in (split.val, split.holdout))
    warnings = _gap_warnings(gaps, ctx)
    features = _features(series)

    plan, champion = bakeoff.training_night(ctx, features)
    trains = plan.trains
    if trains:
        train_w = dataset.make_windows(series, split.train)
        fitted = bakeoff.fit(train_w, val_w, seed=ctx.settings.seed)
        judged = bakeoff.select(ctx, fitted, series, split, hold_w, features)
        cadence.record(ctx.state, ctx.run_date, {"version": judged.version})
        model, version, published, shown = judged.model, judged.version, judged.published, fitted.candidates
        warnings += judged.notes
    else:
        fitted, judged, train_w = None, None, None
        model, version = champion.model, champion.version
        published = candidate_name(champion.metadata, version)
        shown = bakeoff.fixed_baselines()
        warnings += champion.warnings

    hold_pred = {c.name: candidates.forecast(c.model, hold_w) for c in shown}
    tonight = next((c.name for c in shown if c.model is model), None)
    if tonight is None:  # a champion from an earlier night scores: it was not among tonight's candidates
        published = f"{published} (champion {version})"
        hold_pred[published] = candidates.forecast(model, hold_w)
    published = tonight or published
    hold_mae = {k: baselines.mae(baselines.to_kwh(p, hold_w), hold_w) for k, p in hold_pred.items()}
    if not trains:
        warnings += cadence.lost_to_baseline(bakeoff.judge(len(series.regions)), published, hold_mae,
                                             [c.name for c in shown])

    interval = _interval(series, model, val_w, hold_w, hold_pred[published])
    warnings += interval.pop("warnings")
    start = dataset.first_forecast_hour(ctx.run_date)
    live = dataset.make_windows(series, np.array([len(series.hours)]),
                                future_holiday=dataset.future_holidays(clean, start, dataset.HORIZON))
    forecast = _forecast_frame(series, live, candidates.forecast(model, live), interval.pop("live_half"), start, version)
    ctx.write_parquet("forecast", forecast)

    privacy_rows, privacy_warn = report.privacy_releases(ctx)
    warnings += privacy_warn
    context = {
        "model_version": version, "published": published, "cadence": plan.page(ctx.run_date),
        "temperature": series.has_temperature,
        "training": _training_rows(fitted, len(train_w) if trains else 0, time.perf_counter() - t_start),
        "split": _split_info(series, split),
        "accuracy_rows": report.accuracy_rows(hold_pred, hold_w),
        "mae": {k: round(v, 3) for k, v in hold_mae.items()},
        "interval": interval,
        "charts": {"horizon": report.horizon_chart(hold_pred, hold_w),
                   "forecasts": report.forecast_charts(forecast),
                   "temperature": report.load_vs_temperature(clean) if series.has_temperature else None,
                   "loss": report.loss_chart(fitted.trained.history) if fitted else None},
        "peaks": report.peak_rows(forecast),
        "gaps": report.gap_rows(gaps),
        "future_holidays": sorted({str(d) for d in forecast.filter(pl.col("is_holiday"))["hour"].dt.date().to_list()}),
        "privacy_tables": privacy_rows,
    }
    summary = {"holdout_mae_kwh": round(hold_mae[published], 3),
               "naive_mae_kwh": round(hold_mae[candidates.NAIVE_NAME], 3),
               "published": published, "trained": trains, "holdout_coverage": interval["holdout_coverage"],
               "regions": len(series.regions), "model_version": version}
    return JobResult(summary=summary, context=context, models={"energy_load": version}, warnings=warnings,
                     extra={**_extra(fitted, clean, trains), "interval": interval, "depends_on_earlier_nights": DEPENDS_ON_EARLIER_NIGHTS},
                     selections={"energy_load": judged.verdict()} if judged else {},
                     headline=report.headline(context["peaks"], published, hold_mae[published]))


def _features(series: dataset.Series) -> list[str]:
    """The inputs tonight's models may read (the registry compares a champion's with them)."""
    drop = set() if series.has_temperature else {"temperature_c", "felt_recent", "temp_day_mean", "felt_daytype_mean"}
    return ([f"past:{f}" for f in dataset.PAST_FEATURES if f not in drop]
            + [f"future:{f}" for f in dataset.FUTURE_FEATURES if f not in drop] + ["naive"])


def _interval(series: dataset.Series, model, val_w, hold_w, hold_pred: np.ndarray) -> dict:
    """The model in use's interval: holdout coverage out of sample, and the half-widths for tonight's forecast."""
    first_hod = int((series.hours[0] - series.hours[0].astype("datetime64[D]")).astype(int))
    cal = calibration.calibration([val_w, hold_w], [candidates.forecast(model, val_w), hold_pred], first_hod)
    hold_half = calibration.holdout_halfwidths(cal, hold_w, first_hod)
    covered = calibration.coverage(hold_pred, hold_half, hold_w)
    days = np.unique((hold_w.origin[:, None] + np.arange(dataset.HORIZON)[None, :]) // 24).size
    se = calibration.sampling_error(days)
    warnings = []
    if abs(covered - COVERAGE) > COVERAGE_K_SE * se:
        warnings.append(f"the {COVERAGE:.0%} forecast interval covered {covered:.1%} of the holdout, off by more "
                        f"than its sampling error ({COVERAGE_K_SE:g} × {se:.1%} over {days} target days)")
    n = len(series.hours)
    live_half = cal.halfwidths(n)[calibration.blocks(np.array([n]), first_hod)[0]]
    return {"coverage_target": COVERAGE, "holdout_coverage": round(covered, 3), "sampling_error": round(se, 3),
            "target_days": int(days), "recent_days": calibration.RECENT_DAYS,
            "mean_halfwidth_kwh": round(float(np.nanmean(hold_half * hold_w.level[:, None])), 3),
            "live_half": live_half, "warnings": warnings}


def _training_rows(fitted: bakeoff.Fitted | None, train_windows: int, total_s: float) -> dict:
    """How the candidates were fitted, for the page (only the job's total on nights without training)."""
    if fitted is None:
        return {"job seconds (everything)": round(total_s, 1)}
    t, info = fitted.trained, fitted.info
    return {"device": ", ".join(info.devices), "strategy": info.name, "replicas": info.replicas,
            "mixed precision": info.mixed_precision, "epochs run": t.epochs,
            "networks averaged": t.params.get("members", 1),
            "best epoch per network": ", ".join(map(str, t.validation["best_epochs"])),
            "network training seconds (Keras fit only)": round(t.seconds, 1),
            "training windows": train_windows, "windows per second": round(t.windows_per_s, 1),
            "validation MAE, day-type profile (scaled)": round(t.validation["mae_profile"], 4),
            "validation MAE, network (scaled)": round(t.validation["mae"], 4),
            "ridge fit seconds": round(fitted.seconds[candidates.RIDGE_NAME], 1),
            "job seconds (everything)": round(total_s, 1)}


def _extra(fitted: bakeoff.Fitted | None, clean: pl.DataFrame, trains: bool) -> dict:
    """For the manifest: the device and strategy the network trained on, its timings, the repairs."""
    extra = {"trained": trains, "imputed_load_hours": int(clean["load_imputed"].sum()),
             "imputed_temperature_hours": int(clean["temp_imputed"].sum())}
    if fitted is not None:
        t = fitted.trained
        extra |= {"device": fitted.info.describe(), "strategy": fitted.info.name, "epochs": t.epochs,
                  "best_epoch": t.best_epoch, "train_seconds": round(t.seconds, 2),
                  "windows_per_s": round(t.windows_per_s, 1),
                  "fit_seconds": {k: round(v, 2) for k, v in fitted.seconds.items()}}
    return extra


def _forecast_frame(series, live, pred, half, start, version) -> pl.DataFrame:
    """Long forecast table: region, hour, forecast, lower, upper (kWh, never below zero)."""
    n_r, h = pred.shape
    hours = [start + timedelta(hours=i) for i in range(h)]
    level = live.level[:, None]
    return pl.DataFrame({
        "region": np.repeat(np.array(series.regions)[live.region], h),
        "hour": hours * n_r,
        "forecast": np.clip(pred * level, 0, None).ravel(),
        "lower": np.clip((pred - half) * level, 0, None).ravel(),
        "upper": np.clip((pred + half) * level, 0, None).ravel(),
        "horizon_h": np.tile(np.arange(1, h + 1), n_r),
        "is_holiday": np.tile(live.future[0, :, -1] > 0.5, n_r),
    }).with_columns(pl.col("hour").cast(pl.Datetime("us")), pl.lit(version).alias("model_version"))


def _split_info(series: dataset.Series, split: dataset.Split) -> dict[str, str]:
    fmt = lambda i: str(bakeoff.hour(series, i))[:16]  # noqa: E731
    return {"history": f"{fmt(0)} … {fmt(len(series.hours) - 1)}",
            "train_targets": f"{fmt(split.train[0])} … {fmt(split.train[-1] + dataset.HORIZON - 1)}",
            "validation_targets": f"{fmt(split.val[0])} … {fmt(split.val[-1] + dataset.HORIZON - 1)}",
            "holdout_targets": f"{fmt(split.holdout[0])} … {fmt(split.holdout[-1] + dataset.HORIZON - 1)}",
            "holdout_forecasts": f"{len(split.holdout)} midnights × {len(series.regions)} regions"}


def _gap_warnings(gaps: pl.DataFrame, ctx: JobContext) -> list[str]:
    recent = gaps.filter(pl.col("end").dt.date() > ctx.run_date - timedelta(days=RECENT_DAYS))
    return [f"{r['kind']} in region {r['region']} from {r['start']} to {r['end']} ({r['hours']} h): "
            f"re-estimated; it feeds tonight's forecast inputs" for r in recent.iter_rows(named=True)]
