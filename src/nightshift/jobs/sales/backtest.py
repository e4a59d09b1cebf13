"""The rolling-origin scorecard: MASE, sMAPE and interval coverage per series and overall.

Each series is cut at several origins (every `horizon` periods back from its last period); at
each, every member of the model menu and the mean baseline forecast the next `horizon` periods
from data up to the origin only. "model" is what the nightly pipeline would have published there:
the member chosen on older origins (or seasonal naive where it failed). Only the `N_EVAL` most
recent origins are scored; the older ones serve the choice. Scores are computed with Polars
expressions over one long frame of (series, origin, step, method) rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from nightshift.jobs.sales.baselines import Forecast
from nightshift.jobs.sales.menu import MEMBERS
from nightshift.jobs.sales.task import SeriesResult

METHODS = ("model", *MEMBERS, "mean")


def origins(n: int, horizon: int) -> tuple[int, ...]:
    """Cut points in periods before the last: horizon, 2·horizon, … (so every actual is known)."""
    return tuple(horizon * (k + 1) for k in range(n))


def long_frame(results: list[SeriesResult]) -> pl.DataFrame:
    """All backtest forecasts as rows: series, cut, step, method, actual, mean, bounds, scale."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "series", "cut", "step", "method", "actual", "mean", "lower_80", "upper_80", "lower_95", "upper_95",
        "scale", "fallback")}
    for r in results:
        for o in r.backtest:
            if not o.scored:
                continue
            h = o.actual.size
            for method, f in (("model", o.model), *o.members.items(), ("mean", o.mean)):
                _append(cols, r.key, o.cut, method, o.actual, f, o.scale, h,
                        o.fallback is not None and method == "model")
    if not cols["series"]:
        return pl.DataFrame(schema={"series": pl.String, "cut": pl.Int64, "step": pl.Int64, "method": pl.String,
                                    "actual": pl.Float64, "mean": pl.Float64, "lower_80": pl.Float64,
                                    "upper_80": pl.Float64, "lower_95": pl.Float64, "upper_95": pl.Float64,
                                    "scale": pl.Float64, "fallback": pl.Boolean})
    return pl.DataFrame({k: np.concatenate(v) for k, v in cols.items()}).filter(pl.col("actual").is_not_nan())


def _append(cols: dict, key: str, cut: int, method: str, actual: np.ndarray, f: Forecast, scale: float, h: int,
            fallback: bool) -> None:
    cols["series"].append(np.full(h, key, dtype=object))
    cols["cut"].append(np.full(h, cut))
    cols["step"].append(np.arange(1, h + 1))
    cols["method"].append(np.full(h, method, dtype=object))
    cols["actual"].append(np.asarray(actual, float))
    for name in ("mean", "lower_80", "upper_80", "lower_95", "upper_95"):
        cols[name].append(np.asarray(getattr(f, name), float)[:h])
    cols["scale"].append(np.full(h, scale))
    cols["fallback"].append(np.full(h, fallback))


def _point_scores(frame: pl.DataFrame) -> pl.DataFrame:
    a, f = pl.col("actual"), pl.col("mean")
    denom = a.abs() + f.abs()
    return frame.with_columns(
        ((a - f).abs() / pl.when(pl.col("scale") > 0).then(pl.col("scale"))).alias("scaled_error"),
        pl.when(denom > 0).then(200 * (a - f).abs() / denom).otherwise(0.0).alias("smape"),
        a.is_between(pl.col("lower_80"), pl.col("upper_80")).cast(pl.Float64).alias("in_80"),
        a.is_between(pl.col("lower_95"), pl.col("upper_95")).cast(pl.Float64).alias("in_95"),
    )


def per_series(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per series and method: MASE (over all origins), sMAPE, coverage, points, fallbacks."""
    return (
        _point_scores(frame)
        .group_by("series", "method")
        .agg(
            pl.col("scaled_error").mean().alias("mase"),
            pl.col("smape").mean(),
            pl.col("in_80").mean().alias("coverage_80"),
            pl.col("in_95").mean().alias("coverage_95"),
            pl.len().alias("points"),
            pl.col("cut").filter(pl.col("fallback")).n_unique().alias("fallback_origins"),
        )
        .sort("series", "method")
    )


def overall(series_scores: pl.DataFrame) -> pl.DataFrame:
    """One row per method: mean of per-series MASE and sMAPE, point-weighted coverage."""
    return (
        series_scores.group_by("method")
        .agg(
            pl.col("mase").filter(pl.col("mase").is_finite()).mean(),
            pl.col("smape").mean(),
            ((pl.col("coverage_80") * pl.col("points")).sum() / pl.col("points").sum()).alias("coverage_80"),
            ((pl.col("coverage_95") * pl.col("points")).sum() / pl.col("points").sum()).alias("coverage_95"),
            pl.len().alias("series"),
            pl.col("points").sum(),
        )
        .with_columns(pl.col("method").replace_strict({m: i for i, m in enumerate(METHODS)}, default=99).alias("_o"))
        .sort("_o")
        .drop("_o")
    )


def wide(series_scores: pl.DataFrame) -> pl.DataFrame:
    """Per series, the pipeline's scores beside every member's and the mean baseline's MASE
    (`mase_<method>` columns, for the menu and worst-series tables)."""
    model = series_scores.filter(pl.col("method") == "model").drop("method")
    others = series_scores.filter(pl.col("method") != "model").pivot(on="method", index="series", values="mase")
    others = others.rename({m: f"mase_{m}" for m in others.columns if m != "series"})
    return model.join(others, on="series", how="left")
