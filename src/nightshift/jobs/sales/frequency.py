"""Each series' frequency (daily, weekly, monthly, quarterly), inferred from its dates, and its grid.

A series is modelled at its own frequency: its seasonal period, horizon, history and backtest
origins are counted in its periods. The grid is filled only at that frequency: a listed day with no
row sold nothing (daily sales exports leave out zero days), while a missing week, month or quarter
is unknown (NaN), never zero. Dates are mapped to integer period numbers, so a month is a month
whatever day of it the export uses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

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


def inferred(frame: pl.DataFrame) -> pl.DataFrame:
    """Per series (`series`, `date` columns) its number of distinct dates `n` and its frequency `freq`:
    null when fewer than 3 dates or none fits. One pass for every series, sorted by series.

    Daily: the median gap is one day. Weekly: the median gap is seven days and every gap a whole number
    of weeks. Monthly or quarterly: dates on one day of the month (or every one a month's end), each in
    a later month than the last, the median step one month (monthly) or three, every step whole quarters.
    """
    date_ = pl.col("date")
    gaps, months = date_.cast(pl.Int64).diff(), _month(date_).diff()  # the first row's diff is null: ignored
    same_day = (date_.dt.day().n_unique() == 1) | (date_ == date_.dt.month_end()).all()
    by_month = same_day & (months > 0).all()
    # sorted before `unique`: sorting 6M rows of strings after it takes 3x as long (Polars 2.1)
    stats = (frame.lazy().select("series", "date").sort("series", "date").unique(maintain_order=True)
             .group_by("series", maintain_order=True)
             .agg(pl.len().alias("n"), gaps.median().alias("gap"), (gaps % 7 == 0).all().alias("whole_weeks"),
                  months.median().alias("step"), (months % 3 == 0).all().alias("whole_quarters"),
                  by_month.alias("by_month")).collect())
    freq = (pl.when(pl.col("n") < 3).then(None)
            .when(pl.col("gap") == 1).then(pl.lit("daily"))
            .when((pl.col("gap") == 7) & pl.col("whole_weeks")).then(pl.lit("weekly"))
            .when(pl.col("by_month") & (pl.col("step") == 1)).then(pl.lit("monthly"))
            .when(pl.col("by_month") & (pl.col("step") == 3) & pl.col("whole_quarters")).then(pl.lit("quarterly")))
    return stats.select("series", "n", freq.alias("freq"))


def assign(frame: pl.DataFrame, override: str | None) -> tuple[dict[str, str], list[str]]:
    """Per series (`series`, `date` columns) its frequency, and the series none could be inferred for.

    The override applies to every series. A series with fewer than three dates takes the most common
    frequency of the others (a new product is too young to tell; a tie goes to the name sorting first).
    """
    if override:
        return dict.fromkeys(frame["series"].unique(maintain_order=True).to_list(), override), []
    found = inferred(frame)
    counts = found["freq"].drop_nulls().value_counts(name="count").sort(["count", "freq"], descending=[True, False])
    common = counts["freq"][0] if counts.height else None
    freq = pl.col("freq").fill_null(pl.when(pl.col("n") < 3).then(pl.lit(common, pl.String)))
    found = found.with_columns(freq)
    known, unknown = found.filter(pl.col("freq").is_not_null()), found.filter(pl.col("freq").is_null())
    return dict(zip(known["series"], known["freq"], strict=True)), unknown["series"].to_list()


def grid(frame: pl.DataFrame, freqs: dict[str, str], run_date: date, table: dict[str, Frequency] = FREQUENCIES,
         origins: int = N_ORIGINS) -> pl.DataFrame:
    """Every active series on a regular grid of its own periods, trimmed to the history it needs.

    `frame` has one row per series and date (series, store_id, product_id, date, units, on_promotion).
    A daily series runs to the run date (days since its last row sold nothing); any other ends at
    its last row. Missing periods get zero units (daily) or null (else), and no promotion. Columns:
    series, store_id, product_id, freq, date, units, on_promotion, filled.
    """
    # Series are numbered in name order and each cell keyed by one integer, series number then period:
    # grouping and joining on it, both sides sorted, is a merge (on the names, 30x the time at 6M rows).
    f = (pl.DataFrame({"series": list(freqs), "freq": list(freqs.values())},
                      schema={"series": pl.String, "freq": pl.String}).sort("series").with_row_index("sid"))
    cell = pl.col("sid").cast(pl.Int64) * 2**32 + pl.col("p")  # |p| < 2^31: a day, week or month number
    spec = pl.DataFrame([{"freq": v.name, "step": v.step, "keep": v.history + origins * v.horizon,
                          "retire": v.retire, "zero": v.gap_is_zero} for v in table.values()])
    rows = frame.join(f, on="series").with_columns(pl.col("date").min().over("sid").alias("anchor"))
    rows = rows.with_columns(period(pl.col("freq"), pl.col("date"), pl.col("anchor")).alias("p"))
    now = period(pl.col("freq"), pl.lit(run_date), pl.col("anchor"))
    spans = (rows.group_by("sid")
             .agg(pl.col("series", "store_id", "product_id", "freq", "anchor").first(),
                  pl.col("p").min().alias("first"), pl.col("p").max().alias("last"),
                  pl.col("date").min().alias("first_date"))
             .join(spec, on="freq")
             .filter(pl.col("last") > now - pl.col("retire"))
             .with_columns(pl.when(pl.col("freq") == "daily").then(now).otherwise(pl.col("last")).alias("end"))
             .with_columns(pl.max_horizontal("first", pl.col("end") - pl.col("keep") + 1).alias("start"))
             .sort("sid"))
    # several rows in one period (a weekly series exported on varying weekdays) add up
    known = (rows.group_by(cell.alias("cell"))
             .agg(pl.col("date").min(), pl.col("units").sum(), pl.col("on_promotion").any()).sort("cell"))
    cells = (spans.with_columns(pl.int_ranges("start", pl.col("end") + 1).alias("p")).explode("p")
             .with_columns(cell.alias("cell")).set_sorted("cell"))  # sid, then p ascending: sorted by construction
    out = cells.join(known, on="cell", how="left", maintain_order="left")
    return (out.with_columns(
        pl.col("date").is_null().alias("filled"),
        pl.coalesce("date", offset(pl.col("first_date"), pl.col("p") - pl.col("first"), pl.col("step"))).alias("date"),
        pl.when(pl.col("units").is_null() & pl.col("zero")).then(0).otherwise(pl.col("units"))
        .cast(pl.Float64).alias("units"),
        pl.col("on_promotion").fill_null(False))
        .select("series", "store_id", "product_id", "freq", "date", "units", "on_promotion", "filled"))
