"""The energy page's pieces: accuracy tables, charts, peak hours, gaps and the privacy releases.

Absolute consumption of households appears only through the privacy layer. Charts of history use
load relative to each region's mean, so no region-day total can be read off the page; forecasts
(model outputs, also in forecast.parquet) are shown in kWh.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from nightshift.jobs.energy import baselines
from nightshift.jobs.energy.calibration import COVERAGE
from nightshift.jobs.energy.dataset import Windows
from nightshift.reporting import charts

DAILY_KWH_MAX = 50.0  # clip per meter and day for the releases; larger sites are clipped here
BAND_EDGES = [20.0, 30.0]  # three bands: seven held too few meters each to read through their noise
BANDS = ["< 20 kWh", "20–30 kWh", "≥ 30 kWh"]


def accuracy_rows(preds: dict[str, np.ndarray], w: Windows) -> list[dict[str, Any]]:
    """MAE (kWh) per model for each forecast day, plus the whole week and WAPE."""
    out = []
    for day in range(7):
        row: dict[str, Any] = {"horizon": f"day {day + 1} (hours {day * 24 + 1}–{day * 24 + 24})"}
        for name, p in preds.items():
            row[name] = float(np.mean(baselines.mae_by_horizon(baselines.to_kwh(p, w), w)[day * 24:(day + 1) * 24]))
        out.append(row)
    out.append({"horizon": "whole week", **{n: baselines.mae(baselines.to_kwh(p, w), w) for n, p in preds.items()}})
    out.append({"horizon": "WAPE (whole week)", **{n: baselines.wape(baselines.to_kwh(p, w), w) for n, p in preds.items()}})
    return out


def horizon_chart(preds: dict[str, np.ndarray], w: Windows) -> charts.Chart:
    """Holdout MAE by horizon hour for the network and the baselines."""
    x = np.arange(1, w.target.shape[1] + 1)
    series = {n: np.round(baselines.mae_by_horizon(baselines.to_kwh(p, w), w), 4) for n, p in preds.items()}
    return charts.line(x, series, title="Holdout MAE by hours ahead", y_title="MAE (kWh)")


def forecast_charts(forecast: pl.DataFrame) -> list[charts.Chart]:
    """One forecast chart per region: the next 168 hours with the validation-based interval."""
    out = []
    for (region,), part in forecast.sort("hour").partition_by("region", as_dict=True, maintain_order=True).items():
        out.append(charts.band(part["hour"].to_list(), part["forecast"].round(3), part["lower"].round(3),
                          part["upper"].round(3), title=f"{region}: next 7 days (kWh per hour)"))
    return out


def load_vs_temperature(clean: pl.DataFrame) -> charts.Chart:
    """Daily load relative to the region's mean against the day's mean temperature, per region."""
    daily = (
        clean.group_by("region", pl.col("hour").dt.date().alias("day"))
        .agg(pl.col("load").mean(), pl.col("temperature").mean(), pl.col("meters_active").mean())
        .with_columns((pl.col("load") / pl.col("meters_active").clip(lower_bound=1)).alias("per_meter"))
        .with_columns((pl.col("per_meter") / pl.col("per_meter").mean().over("region")).alias("relative"))
        .sort("region", "day")
    )
    fig = go.Figure([
        go.Scatter(x=part["temperature"].round(1).to_list(), y=part["relative"].round(3).to_list(),
                   mode="markers", name=region, marker=dict(size=4, opacity=0.6))
        for (region,), part in daily.partition_by("region", as_dict=True, maintain_order=True).items()
    ])
    fig.update_xaxes(title="daily mean temperature (°C)")
    fig.update_yaxes(title="load per active meter ÷ region mean")
    return charts.chart(fig, "Load vs temperature (one point per region and day)")


def loss_chart(history: dict[str, list[float]]) -> charts.Chart:
    """Training and validation loss (MAE on scaled load) per epoch, one line per curve in `history`."""
    x = list(range(1, max((len(v) for v in history.values()), default=0) + 1))
    return charts.line(x, history, title="Training curves", y_title="MAE (scaled load)")


def peak_rows(forecast: pl.DataFrame) -> list[dict[str, Any]]:
    """The forecast peak hour of each region and day, with its interval."""
    return (
        forecast.with_columns(pl.col("hour").dt.date().alias("day"))
        .sort("forecast", descending=True)
        .group_by("region", "day", maintain_order=True).first()
        .sort("region", "day")
        .select("region", pl.col("day").cast(pl.String),
                pl.col("hour").dt.strftime("%H:00").alias("peak hour"),
                pl.col("forecast").round(2).alias("forecast kWh"), pl.col("lower").round(2).alias("lower"),
                pl.col("upper").round(2).alias("upper"))
        .to_dicts()
    )


def headline(peaks: list[dict[str, Any]], published: str, mae_kwh: float) -> str:
    """The energy answer in a sentence: the first forecast day's highest regional peak, the week's, the error."""
    if not peaks:
        return "No load forecast tonight."
    first = [p for p in peaks if p["day"] == peaks[0]["day"]]
    top, week = (max(rows, key=lambda p: p["forecast kWh"]) for rows in (first, peaks))
    return (f"Peak load on {top['day']}: {top['forecast kWh']:,.0f} kWh in {top['region']} at {top['peak hour']} "
            f"({COVERAGE:.0%} interval {top['lower']:,.0f}–{top['upper']:,.0f} kWh); the week's highest is "
            f"{week['forecast kWh']:,.0f} kWh in {week['region']} on {week['day']}. Forecasts from {published}, "
            f"whose mean absolute error on the holdout was {mae_kwh:,.1f} kWh per region-hour.")


def gap_rows(gaps: pl.DataFrame) -> list[dict[str, Any]]:
    """Repaired stretches for the page (what was missing, where, when, how long)."""
    return gaps.select("kind", "region", pl.col("start").dt.strftime("%Y-%m-%d %H:00"),
                       pl.col("end").dt.strftime("%Y-%m-%d %H:00"), "hours").to_dicts()


def privacy_releases(ctx) -> tuple[list[dict[str, Any]], list[str]]:
    """Household consumption over the last 28 days, all regions pooled, and its distribution, released with DP.

    The meter is the privacy unit: each meter contributes one row (its mean daily kWh over the window,
    clipped to [0, DAILY_KWH_MAX]). ε comes from the `households` budget: one release every 28 days, each
    that window's share, so a year fits it. Coarsened on purpose (`coarsened`, shown on the page): a
    region's own mean would need far more meters than the few dozen a region has here to read through its
    noise at ε 12 a year, so all regions are pooled (per-region figures stay on the team page); 28 days
    per meter, released every 28 nights, rather than one week weekly; three consumption bands, not seven.
    """
    import math
    from datetime import timedelta

    from nightshift.privacy import Count, Mean, Release, Sum

    days, shares = 28, {"consumption": 0.5, "distribution": 0.5}
    budget = ctx.settings.privacy_budgets["households"]
    per_release = float(budget.epsilon) / math.ceil(float(budget.window_days) / days)
    per_meter = ctx.sql("meter_daily", days=days).group_by("meter_id").agg(pl.col("kwh").mean())
    index = pl.sum_horizontal([(pl.col("kwh") >= e).cast(pl.Int32) for e in BAND_EDGES])
    per_meter = per_meter.with_columns(index.replace_strict(dict(enumerate(BANDS)), return_dtype=pl.String).alias("band"))
    window = f"{ctx.run_date - timedelta(days=days - 1)} … {ctx.run_date}"
    releases = [
        (Release("consumption_all_regions", dataset="households", unit="meter_id",
                 measures=[Count("meters"), Sum("kwh", "kwh", 0.0, DAILY_KWH_MAX, resolution=0.1),
                           Mean("kwh_per_meter", "kwh", 0.0, DAILY_KWH_MAX, resolution=0.1)],
                 max_rows_per_unit=1, epsilon=per_release * shares["consumption"]),
         f"Mean daily consumption per meter, all regions pooled, {window} (kWh per day, each meter's mean "
         f"clipped at {DAILY_KWH_MAX:g} kWh)"),
        (Release("consumption_distribution", dataset="households", unit="meter_id",
                 keys={"band": BANDS}, measures=[Count("meters")], max_rows_per_unit=1,
                 epsilon=per_release * shares["distribution"]),
         f"Distribution of meters' mean daily consumption, {window} (households; large sites land in the top band)"),
    ]
    ctx.privacy.coarsened.append(
        f"Household consumption: all regions pooled into one number, over {days} days per meter released "
        f"every {days} nights, in {len(BANDS)} bands: a region's meters (about 15 in the demo), one week, "
        "or seven bands were below their noise at this budget. Per-region load stays on the team page.")
    tables, warnings = [], []
    for release, caption in releases:
        res = ctx.privacy.release_every(release, per_meter, days)
        if res.refused:
            warnings.append(f"privacy: {res.refused}")
        if res.table is not None:
            table = res.table.with_columns(pl.col(c).cast(pl.String) for c in release.keys)
            tables.append({"name": release.name, "caption": caption, "stale": res.stale,
                           "rows": table.to_dicts(), "columns": table.columns})
    return tables, warnings
