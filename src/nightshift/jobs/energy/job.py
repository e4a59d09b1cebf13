"""The energy job: next week's hourly load per region from a Keras network, against honest baselines.

Flow for run date D: region-hour load from SQL (sql/marts/energy/region_hourly.sql) → gap repair
(missing readings, temperature outages; meters joining/leaving are told apart from gaps) →
sliding windows split by time (train / validation / holdout) → seasonal naive and ridge baselines
→ the network (MirroredStrategy on GPUs, default strategy on CPU) → registry champion/challenger on
the holdout → forecast from midnight after D with intervals from validation residuals → household
aggregates through the privacy layer → the page.
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import polars as pl

from nightshift.jobs import JobContext, JobResult
from nightshift.jobs.energy import baselines, dataset, report
from nightshift.modeling import KERAS
from nightshift.registry import ModelVersion
from nightshift.selection import Judge, challenge

METRIC = "holdout_mae_kwh"
COVERAGE = 0.9  # forecast interval: nominal coverage, calibrated on validation residuals
CONFORMAL_RECENT = 1.0  # all validation origins calibrate the interval (the latest half alone covered less)
MIN_COMPARE_ORIGINS = 3  # fewer unseen holdout forecasts than this and the champion is kept
RECENT_DAYS = 7  # gaps this close to D feed tonight's forecast inputs: warn about them


def run(ctx: JobContext) -> JobResult:
    """Train, judge, forecast and report for one run date."""
    t_start = time.perf_counter()
    warnings: list[str] = []
    hourly = ctx.sql("region_hourly")
    if hourly.height == 0:
        raise ValueError(f"energy: no meter readings up to {ctx.run_date}; load the energy table first")
    clean = dataset.clean_hourly(hourly)
    gaps = dataset.incidents(clean)
    series = dataset.to_series(clean)
    split = dataset.time_split(series)
    train_w, val_w, hold_w = (dataset.make_windows(series, o) for o in (split.train, split.val, split.holdout))
    warnings += _gap_warnings(gaps, ctx)

    t0 = time.perf_counter()
    linear = baselines.fit_linear(train_w, val_w)
    linear_s = time.perf_counter() - t0

    from nightshift.jobs.energy import network  # TensorFlow: imported only when the job runs

    # The network forecasts the day-type profile plus a learned correction; the profile is shown
    # next to the baselines as a reference, so the network's own (trained) contribution stays visible.
    info = network.select_strategy()
    trained = network.train_ensemble(train_w, val_w, info, seed=ctx.settings.seed)
    net_label = f"network (mean of {network.MEMBERS} learned corrections to the day-type profile)"
    hold_pred = {"network": network.predict(trained.model, hold_w), "seasonal naive": baselines.seasonal_naive(hold_w),
                 "linear (ridge)": baselines.predict_linear(linear, hold_w),
                 "day-type profile (reference)": baselines.daytype_profile(hold_w)}
    hold_mae = {k: baselines.mae(baselines.to_kwh(p, hold_w), hold_w) for k, p in hold_pred.items()}

    reg = ctx.registry
    challenger = _register(ctx, trained, info, series, split, hold_w, hold_pred, hold_mae)
    model, version, decision = _champion_challenger(reg, challenger, trained.model, series, hold_w, warnings)
    if version != challenger.version:
        hold_pred["network (champion in use)"] = network.predict(model, hold_w)
        hold_mae["network (champion in use)"] = baselines.mae(baselines.to_kwh(hold_pred["network (champion in use)"], hold_w), hold_w)
    used = "network (champion in use)" if version != challenger.version else "network"

    # Interval: split-conformal half-width of the used model's recent validation residuals per hour.
    half = baselines.conformal_halfwidth(network.predict(model, val_w), val_w, COVERAGE, recent=CONFORMAL_RECENT)
    lo, hi = -half, half
    hold_cov = baselines.interval_coverage(hold_pred[used], lo, hi, hold_w)

    start = dataset.first_forecast_hour(ctx.run_date)
    fut_hol = dataset.future_holidays(clean, start, dataset.HORIZON)
    live = dataset.make_windows(series, np.array([len(series.hours)]), future_holiday=fut_hol)
    live_pred = network.predict(model, live)
    forecast = _forecast_frame(series, live, live_pred, lo, hi, start, version)
    ctx.write_parquet("forecast", forecast)

    privacy_rows, privacy_warn = report.privacy_releases(ctx, series.regions)
    warnings += privacy_warn
    training = _training_rows(trained, info, len(train_w), linear_s, time.perf_counter() - t_start)
    context = {
        "model_version": version, "challenger_version": challenger.version, "decision": decision,
        "training": training, "split": _split_info(series, split),
        "accuracy_rows": report.accuracy_rows(hold_pred, hold_w),
        "mae": {k: round(v, 3) for k, v in hold_mae.items()},
        "network_label": net_label,
        "interval": {"coverage_target": COVERAGE, "holdout_coverage": round(hold_cov, 3)},
        "charts": {"horizon": report.horizon_chart(hold_pred, hold_w),
                   "forecasts": report.forecast_charts(forecast),
                   "temperature": report.load_vs_temperature(clean),
                   "loss": report.loss_chart(trained.history)},
        "peaks": report.peak_rows(forecast),
        "gaps": report.gap_rows(gaps),
        "future_holidays": sorted({str(d) for d in forecast.filter(pl.col("is_holiday"))["hour"].dt.date().to_list()}),
        "privacy_tables": privacy_rows,
    }
    summary = {"holdout_mae_kwh": round(hold_mae[used], 3),
               "naive_mae_kwh": round(hold_mae["seasonal naive"], 3),
               "linear_mae_kwh": round(hold_mae["linear (ridge)"], 3),
               "regions": len(series.regions), "device": info.name, "model_version": version}
    extra = {"device": info.describe(), "strategy": info.name, "epochs": trained.epochs, "best_epoch": trained.best_epoch,
             "train_seconds": round(trained.seconds, 2), "windows_per_s": round(trained.windows_per_s, 1),
             "imputed_load_hours": int(clean["load_imputed"].sum()),
             "imputed_temperature_hours": int(clean["temp_imputed"].sum())}
    return JobResult(summary=summary, context=context, models={"energy_load": version}, warnings=warnings,
                     extra=extra)


def _register(ctx: JobContext, trained, info, series: dataset.Series, split: dataset.Split, hold_w,
              hold_pred: dict, hold_mae: dict) -> ModelVersion:
    """Store tonight's network with its training window (to the hour), inputs and holdout errors."""
    fit_end = _hour(series, split.val[-1] + dataset.HORIZON - 1)
    return ctx.registry.save(
        trained.model, KERAS, run_date=ctx.run_date,
        training_window=(_hour(series, int(split.train[0]) - dataset.LOOKBACK).date(), fit_end.date()),
        data_hash=dataset.data_fingerprint(series),
        features=[f"past:{f}" for f in dataset.PAST_FEATURES] + [f"future:{f}" for f in dataset.FUTURE_FEATURES] + ["naive"]
        + ["base:day-type profile"],
        params=trained.params,
        metrics={METRIC: hold_mae["network"], "holdout_wape": baselines.wape(baselines.to_kwh(hold_pred["network"], hold_w), hold_w),
                 "baseline_seasonal_naive_mae": hold_mae["seasonal naive"],
                 "baseline_linear_mae": hold_mae["linear (ridge)"]},
        holdout={"start": _hour(series, split.holdout[0]), "end": _hour(series, len(series.hours) - 1),
                 "forecasts": len(hold_w)},
        extra={"device": info.describe(), "epochs": trained.epochs, "train_seconds": trained.seconds,
               "validation": trained.validation, "fit_end": fit_end, "base": "day-type profile"},
    )


def _training_rows(trained, info, train_windows: int, linear_s: float, total_s: float) -> dict:
    """How the network was trained, for the page."""
    return {"device": ", ".join(info.devices), "strategy": info.name, "replicas": info.replicas,
            "mixed precision": info.mixed_precision, "epochs run": trained.epochs,
            "networks averaged": trained.params.get("members", 1),
            "best epoch per network": ", ".join(map(str, trained.validation["best_epochs"])),
            "network training seconds (Keras fit only)": round(trained.seconds, 1),
            "training windows": train_windows, "windows per second": round(trained.windows_per_s, 1),
            "validation MAE, day-type profile (scaled)": round(trained.validation["mae_profile"], 4),
            "validation MAE, network (scaled)": round(trained.validation["mae"], 4),
            "ridge baseline fit seconds": round(linear_s, 1), "job seconds (everything)": round(total_s, 1)}


def _hour(series: dataset.Series, i: int):
    return series.hours[int(i)].astype("datetime64[us]").item()


def _champion_challenger(reg, challenger, challenger_model, series, hold_w, warnings):
    """Judge the challenger against the champion (the one rule, `nightshift.selection`) on holdout
    forecasts whose origin is after every candidate's training data."""
    from nightshift.jobs.energy import network

    origin_hours = series.hours[hold_w.origin].astype("datetime64[h]")
    judged = challenge(
        reg, challenger, challenger_model, KERAS,
        judge=Judge(METRIC, higher_is_better=False, min_rows=MIN_COMPARE_ORIGINS * len(series.regions)),
        holdout_after=lambda end: hold_w.subset(origin_hours > end),
        score=lambda model, w: baselines.mae(baselines.to_kwh(network.predict(model, w), w), w),
        until=_fit_end, compatible=lambda meta: meta.get("features") == challenger.metadata.get("features"))
    warnings += judged.notes
    return judged.model, judged.version, judged.decision.reason


def _fit_end(metadata: dict) -> np.datetime64:
    """The last hour a version's training targets reached (the start of time if not recorded)."""
    end = metadata.get("extra", {}).get("fit_end")
    return np.datetime64(str(end)[:19], "h") if end else np.datetime64("1970-01-01T00", "h")


def _forecast_frame(series, live, pred, lo, hi, start, version) -> pl.DataFrame:
    """Long forecast table: region, hour, forecast, lower, upper (kWh, never below zero)."""
    n_r, h = pred.shape
    hours = [start + timedelta(hours=i) for i in range(h)]
    level = live.level[:, None]
    return pl.DataFrame({
        "region": np.repeat(np.array(series.regions)[live.region], h),
        "hour": hours * n_r,
        "forecast": np.clip(pred * level, 0, None).ravel(),
        "lower": np.clip((pred + lo) * level, 0, None).ravel(),
        "upper": np.clip((pred + hi) * level, 0, None).ravel(),
        "horizon_h": np.tile(np.arange(1, h + 1), n_r),
        "is_holiday": np.tile(live.future[0, :, -1] > 0.5, n_r),
    }).with_columns(pl.col("hour").cast(pl.Datetime("us")), pl.lit(version).alias("model_version"))


def _split_info(series: dataset.Series, split: dataset.Split) -> dict[str, str]:
    fmt = lambda i: str(_hour(series, i))[:16]  # noqa: E731
    return {"history": f"{fmt(0)} … {fmt(len(series.hours) - 1)}",
            "train_targets": f"{fmt(split.train[0])} … {fmt(split.train[-1] + dataset.HORIZON - 1)}",
            "validation_targets": f"{fmt(split.val[0])} … {fmt(split.val[-1] + dataset.HORIZON - 1)}",
            "holdout_targets": f"{fmt(split.holdout[0])} … {fmt(split.holdout[-1] + dataset.HORIZON - 1)}",
            "holdout_forecasts": f"{len(split.holdout)} midnights × {len(series.regions)} regions"}


def _gap_warnings(gaps: pl.DataFrame, ctx: JobContext) -> list[str]:
    recent = gaps.filter(pl.col("end").dt.date() > ctx.run_date - timedelta(days=RECENT_DAYS))
    return [f"{r['kind']} in region {r['region']} from {r['start']} to {r['end']} ({r['hours']} h): "
            f"re-estimated; it feeds tonight's forecast inputs" for r in recent.iter_rows(named=True)]
