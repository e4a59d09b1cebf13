"""Each series' frequency (daily, weekly, monthly, quarterly), inferred from its dates, and its grid.

A series is modelled at its own frequency: its seasonal period, horizon, history and backtest
origins are counted in its periods. The grid is filled only at that frequency: a listed day with no
row sold nothing (daily sales exports leave out zero days), while a missing week, month or quarter
is unknown (NaN), never zero. Dates are mapped to integer period numbers, so a month is a month
whatever day of it the export uses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Frequency:
    """A frequency and the job's defaults in its periods."""

    name: str
    step: str  # a Polars duration unit: the date k periods on is the date offset by "{k}{step}"
    season: int  # the main seasonal period: MASE scale, seasonal naive, the models' season
    yearly: bool  # a yearly season on top of `season`, by Fourier terms (daily data)
    horizon: int  # periods forecast ahead
    history: int  # periods one fit sees (before its origin)
    retire: int  # periods without a row after which a series is no longer listed
    min_periods: int  # fewer known periods than this get a baseline instead of a model
    days: int  # days per period, at most: turns periods into a SQL date window
    gap_is_zero: bool  # whether a missing period means zero sales (else unknown)


FREQUENCIES = {f.name: f for f in (
    # Two years of days: a yearly season needs more than one year to separate from the trend.
    Frequency("daily", "d", 7, True, 28, 730, 28, 28, 1, True),
    Frequency("weekly", "w", 52, False, 13, 156, 8, 60, 7, False),
    Frequency("monthly", "mo", 12, False, 12, 120, 3, 24, 31, False),
    Frequency("quarterly", "q", 4, False, 8, 48, 2, 12, 92, False),
)}
N_EVAL = 3  # origins scored on the page (the most recent ones), unless sales_backtest_origins says
N_SELECT = 2  # older origins each scored origin's model choice is made on
N_ORIGINS = N_EVAL + N_SELECT


def configured(horizon: int | None = None, history: int | None = None) -> dict[str, Frequency]:
    """The frequencies with the settings' horizon and history (periods of each series' own frequency)
    in place of the defaults, where set."""
    return {name: replace(f, horizon=horizon or f.horizon, history=history or f.history)
            for name, f in FREQUENCIES.items()}


def window_days(override: str | None, table: dict[str, Frequency] = FREQUENCIES,
                origins: int = N_ORIGINS) -> tuple[int, int]:
    """The SQL's history and retirement windows in days, wide enough for any frequency it may see."""
    freqs = [table[override]] if override else list(table.values())
    return (max((f.history + origins * f.horizon + 1) * f.days for f in freqs),
            max(f.retire * f.days for f in freqs))


def _month(d: pl.Expr) -> pl.Expr:
    return d.dt.year().cast(pl.Int64) * 12 + d.dt.month().cast(pl.Int64) - 1


def period(freq: pl.Expr, d: pl.Expr, anchor: pl.Expr) -> pl.Expr:
    """The period number of date `d` at frequency `freq` (weeks counted from the series' `anchor`)."""
    days = d.cast(pl.Int64)
    return (pl.when(freq == "daily").then(days)
            .when(freq == "weekly").then((days - anchor.cast(pl.Int64)) // 7)
            .when(freq == "monthly").then(_month(d))
            .otherwise(_month(d) // 3))


def offset(d: pl.Expr, k: pl.Expr, step: pl.Expr) -> pl.Expr:
    """The date `k` periods after `d` (`step` a column of Polars duration units)."""
    return d.dt.offset_by(pl.format("{}{}", k, step))


def infer(dates: list[date]) -> str | None:
    """The frequency of sorted distinct dates, or None when fewer than 3 or none fits."""
    if len(dates) < 3:
        return None
    gaps = np.diff(np.array(dates, dtype="datetime64[D]").astype(np.int64))
    months = np.diff([d.year * 12 + d.month for d in dates])
    same_day = len({d.day for d in dates}) == 1 or all((d + timedelta(days=1)).day == 1 for d in dates)
    if np.median(gaps) == 1:
        return "daily"
    if np.median(gaps) == 7 and np.all(gaps % 7 == 0):
        return "weekly"
    if same_day and np.all(months > 0):
        if np.median(months) == 1:
            return "monthly"
        if np.median(months) == 3 and np.all(months % 3 == 0):
            return "quarterly"
    return None


def assign(frame: pl.DataFrame, override: str | None) -> tuple[dict[str, str], list[str]]:
    """Per series (`series`, `date` columns) its frequency, and the series none could be inferred for.

    The override applies to every series. A series with fewer than three dates takes the most common
    frequency of the others (a new product is too young to tell).
    """
    keys = frame["series"].unique(maintain_order=True).to_list()
    if override:
        return dict.fromkeys(keys, override), []
    dates = frame.select("series", "date").unique().sort("series", "date").group_by(
        "series", maintain_order=True).agg("date")
    found = {k: (infer(d), len(d)) for k, d in dates.iter_rows()}
    known = [f for f, _ in found.values() if f]
    common = max(set(known), key=known.count) if known else None
    out, unknown = {}, []
    for key, (freq, n) in found.items():
        freq = freq or (common if n < 3 else None)
        if freq:
            out[key] = freq
        else:
            unknown.append(key)
    return out, unknown


def grid(frame: pl.DataFrame, freqs: dict[str, str], run_date: date, table: dict[str, Frequency] = FREQUENCIES,
         origins: int = N_ORIGINS) -> pl.DataFrame:
    """Every active series on a regular grid of its own periods, trimmed to the history it needs.

    `frame` has one row per series and date (series, store_id, product_id, date, units, on_promotion).
    A daily series runs to the run date (days since its last row sold nothing); any other ends at
    its last row. Missing periods get zero units (daily) or null (else), and no promotion. Columns:
    series, store_id, product_id, freq, date, units, on_promotion, filled.
    """
    f = pl.DataFrame({"series": list(freqs), "freq": list(freqs.values())}, schema={"series": pl.String,
                                                                                  "freq": pl.String})
    spec = pl.DataFrame([{"freq": v.name, "step": v.step, "keep": v.history + origins * v.horizon,
                          "retire": v.retire, "zero": v.gap_is_zero} for v in table.values()])
    rows = frame.join(f, on="series").with_columns(pl.col("date").min().over("series").alias("anchor"))
    rows = rows.with_columns(period(pl.col("freq"), pl.col("date"), pl.col("anchor")).alias("p"))
    # several rows in one period (a weekly series exported on varying weekdays) add up
    rows = rows.group_by("series", "store_id", "product_id", "freq", "anchor", "p").agg(
        pl.col("date").min(), pl.col("units").sum(), pl.col("on_promotion").any())
    now = period(pl.col("freq"), pl.lit(run_date), pl.col("anchor"))
    spans = (rows.group_by("series", "store_id", "product_id", "freq", "anchor")
             .agg(pl.col("p").min().alias("first"), pl.col("p").max().alias("last"),
                  pl.col("date").min().alias("first_date"))
             .join(spec, on="freq")
             .filter(pl.col("last") > now - pl.col("retire"))
             .with_columns(pl.when(pl.col("freq") == "daily").then(now).otherwise(pl.col("last")).alias("end"))
             .with_columns(pl.max_horizontal("first", pl.col("end") - pl.col("keep") + 1).alias("start")))
    cells = spans.with_columns(pl.int_ranges("start", pl.col("end") + 1).alias("p")).explode("p")
    out = cells.join(rows.select("series", "p", "date", "units", "on_promotion"), on=["series", "p"], how="left")
    return (out.with_columns(
        pl.col("date").is_null().alias("filled"),
        pl.coalesce("date", offset(pl.col("first_date"), pl.col("p") - pl.col("first"), pl.col("step"))).alias("date"),
        pl.when(pl.col("units").is_null() & pl.col("zero")).then(0).otherwise(pl.col("units"))
        .cast(pl.Float64).alias("units"),
        pl.col("on_promotion").fill_null(False))
        .select("series", "store_id", "product_id", "freq", "date", "units", "on_promotion", "filled")
        .sort("series", "date"))
