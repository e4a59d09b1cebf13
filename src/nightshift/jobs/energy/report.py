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
from nightshift.jobs.energy.dataset import Windows
from nightshift.reporting import charts

DAILY_KWH_MAX = 50.0  # clip per meter and day for the releases; larger sites are clipped here
BAND_EDGES = [5.0, 10.0, 15.0, 20.0, 30.0, 40.0]
BANDS = ["< 5 kWh", "5–10 kWh", "10–15 kWh", "15–20 kWh", "20–30 kWh", "30–40 kWh", "≥ 40 kWh"]
EPSILON_BY_REGION, EPSILON_DISTRIBUTION = 0.05, 0.03  # per night: ~29 a year, inside the default 40


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


def gap_rows(gaps: pl.DataFrame) -> list[dict[str, Any]]:
    """Repaired stretches for the page (what was missing, where, when, how long)."""
    return gaps.select("kind", "region", pl.col("start").dt.strftime("%Y-%m-%d %H:00"),
                       pl.col("end").dt.strftime("%Y-%m-%d %H:00"), "hours").to_dicts()


def privacy_releases(ctx, regions: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Household consumption on the run date per region, and its distribution, released with DP.

    The meter is the privacy unit: each meter contributes one row (its day's kWh, clipped to
    [0, DAILY_KWH_MAX]). Regions are this job's public service areas (they key the forecast too).
    """
    from nightshift.privacy import Count, Mean, Release, Sum

    daily = ctx.sql("meter_daily", days=1)
    index = pl.sum_horizontal([(pl.col("kwh") >= e).cast(pl.Int32) for e in BAND_EDGES])
    band = index.replace_strict(dict(enumerate(BANDS)), return_dtype=pl.String).alias("band")
    daily = daily.with_columns(band)
    releases = [
        (Release("daily_consumption_by_region", dataset="households", unit="meter_id",
                 keys={"region": list(regions), "day": [ctx.run_date]},
                 measures=[Count("meters"), Sum("kwh", "kwh", 0.0, DAILY_KWH_MAX, resolution=0.1),
                           Mean("kwh_per_meter", "kwh", 0.0, DAILY_KWH_MAX, resolution=0.1)],
                 max_rows_per_unit=1, epsilon=EPSILON_BY_REGION),
         "Consumption per region on the run date (kWh, each meter-day clipped at "
         f"{DAILY_KWH_MAX:g} kWh)"),
        (Release("daily_consumption_distribution", dataset="households", unit="meter_id",
                 keys={"band": BANDS}, measures=[Count("meters")], max_rows_per_unit=1,
                 epsilon=EPSILON_DISTRIBUTION),
         "Distribution of daily consumption per meter on the run date (households; large sites land in the top band)"),
    ]
    tables, warnings = [], []
    for release, caption in releases:
        res = ctx.privacy.release(release, daily)
        if res.refused:
            warnings.append(f"privacy: {res.refused}")
        if res.table is not None:
            table = res.table.with_columns(pl.col(c).cast(pl.String) for c in release.keys)
            tables.append({"name": release.name, "caption": caption, "stale": res.stale,
                           "rows": table.to_dicts(), "columns": table.columns})
    return tables, warnings
