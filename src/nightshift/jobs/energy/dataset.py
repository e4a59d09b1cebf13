"""Energy data preparation: gap repair, calendar features, sliding windows and the tf.data pipeline.

Everything here is NumPy/Polars and free of TensorFlow except `make_dataset`, which imports it
lazily, so the pure parts can be tested without paying for the TensorFlow import. Windows are
built with `sliding_window_view` (no Python loop over windows). Each window is scaled by its own
input level (the mean load of its past week): regions of different sizes then share one model,
and meters joining or leaving shift the level without breaking what the model learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

LOOKBACK = 168  # hours of history a window sees (one week)
HORIZON = 168  # hours forecast (the next seven days)
MIN_COVERAGE = 0.5  # below this share of active meters reporting, an hour's load is re-estimated
TRAIN_STRIDE = 3  # training origins every 3 hours: neighbouring windows are near-copies; a third of the cost
PAST_FEATURES = ("load", "temperature_c", "hour_sin", "hour_cos", "dow_sin", "dow_cos", "holiday")
# Buildings react to a smoothed ("felt") temperature, not the hour's reading: an exponential
# smoothing with a time constant of about 12 hours (thermal inertia), computed causally over the
# whole series so every hour's value uses only the hours before it.
FELT_ALPHA = 1 / 12
# Per horizon hour, from what is known at the origin: felt_recent is a persistence forecast of the
# felt temperature (the last day's felt temperature at the same hour of day; the source has no
# weather forecast); load_daytype_mean averages the scaled load at that hour of day over the past
# week's days of the same type (working or rest day) as the target day, load_yesterday is the last
# day at that hour: both less noisy than the single reading a week ago. temp_day_mean is the last
# day's mean temperature, felt_daytype_mean the mean felt temperature of the hours
# load_daytype_mean averages (what the profile's heating and cooling answered to), and lead the
# days ahead (0 … 7): how far persistence can be trusted. Holiday stays last.
FUTURE_FEATURES = ("hour_sin", "hour_cos", "dow_sin", "dow_cos", "felt_recent", "load_daytype_mean",
                   "load_yesterday", "temp_day_mean", "felt_daytype_mean", "lead", "holiday")
SHORT_HISTORY_DAYS = 120  # below this much training span, every hourly origin is a training window


def clean_hourly(hourly: pl.DataFrame) -> pl.DataFrame:
    """Repair the region-hour grid: scale up partial hours, re-estimate missing ones, fill temperature.

    Adds `load` (kWh, repaired), `temperature` (°C, filled) and the flags `load_imputed`,
    `temp_imputed`, keeping the observed columns for the report. A source without temperature (the
    optional column is null throughout) is not an outage: `temperature` stays null, nothing is imputed.
    """
    df = hourly.sort("region", "hour").with_columns(
        (pl.col("meters_reporting") / pl.col("meters_active").clip(lower_bound=1)).alias("coverage")
    )
    gap = (pl.col("meters_active") > 0) & ((pl.col("coverage") < MIN_COVERAGE) | pl.col("kwh").is_null())
    per_meter = (
        pl.when(~gap & (pl.col("meters_reporting") > 0))
        .then(pl.col("kwh") / pl.col("meters_reporting"))
        .otherwise(None)
    )
    df = df.with_columns(gap.alias("load_imputed"), per_meter.alias("_per_meter"))
    # A missing hour takes the same hour a week before (or after), per active meter: keeps the
    # daily and weekly shape that an interpolation across a whole day would flatten.
    w = pl.col("_per_meter")
    filled = (
        w.fill_null(w.shift(168).over("region"))
        .fill_null(w.shift(-168).over("region"))
        .interpolate().over("region")
        .fill_null(strategy="forward").over("region")
        .fill_null(strategy="backward").over("region")
    )
    df = df.with_columns((filled * pl.col("meters_active")).fill_null(0.0).alias("load"))

    if df["temperature_c"].is_null().all():  # the source has no temperature: nothing to repair, nothing to feed
        return df.drop("_per_meter").with_columns(pl.lit(False).alias("temp_imputed"),
                                                  pl.lit(None, pl.Float64).alias("temperature"))
    # Temperature: regions share their weather, so a silent sensor is re-estimated from the other
    # regions' mean at that hour plus this region's usual offset from them over the past fortnight.
    df = df.with_columns(pl.col("temperature_c").mean().over("hour").alias("_all_mean"))
    offset = (pl.col("temperature_c") - pl.col("_all_mean"))
    df = df.with_columns(
        offset.rolling_mean(336, min_samples=24).over("region").alias("_offset")
    ).with_columns(pl.col("_offset").fill_null(strategy="forward").over("region"))
    estimate = pl.col("_all_mean") + pl.col("_offset").fill_null(0.0)
    t = pl.col("temperature_c").fill_null(estimate)
    df = df.with_columns(
        pl.col("temperature_c").is_null().alias("temp_imputed"),
        t.interpolate().over("region").fill_null(strategy="forward").over("region")
        .fill_null(strategy="backward").over("region").fill_null(0.0).alias("temperature"),
    )
    return df.drop("_per_meter", "_all_mean", "_offset")


def incidents(clean: pl.DataFrame) -> pl.DataFrame:
    """Contiguous runs of repaired hours per region: what was missing, from when, for how long."""
    parts = []
    for flag, kind in (("load_imputed", "missing readings"), ("temp_imputed", "temperature outage")):
        runs = (
            clean.select("region", "hour", flag)
            .with_columns(pl.col(flag).rle_id().over("region").alias("_run"))
            .filter(pl.col(flag))
            .group_by("region", "_run")
            .agg(pl.col("hour").min().alias("start"), pl.col("hour").max().alias("end"), pl.len().alias("hours"))
            .with_columns(pl.lit(kind).alias("kind"))
        )
        parts.append(runs.select("kind", "region", "start", "end", pl.col("hours").cast(pl.Int64)))
    return pl.concat(parts).sort("start", "region")


def calendar(hours: np.ndarray, holiday: np.ndarray) -> np.ndarray:
    """Calendar features per hour (n × 5): hour-of-day and day-of-week on the circle, holiday flag."""
    h = hours.astype("datetime64[h]")
    day = h.astype("datetime64[D]")
    hod = (h - day).astype(np.int64)
    dow = (day.astype(np.int64) + 3) % 7
    a, b = 2 * np.pi * hod / 24, 2 * np.pi * dow / 7
    return np.stack([np.sin(a), np.cos(a), np.sin(b), np.cos(b), holiday.astype(float)], axis=-1)


def future_holidays(clean: pl.DataFrame, start: datetime, hours: int) -> np.ndarray:
    """Holiday flags for future hours: a date is a holiday if the same calendar day was one before.

    The source carries no holiday calendar for the future, so fixed-date holidays are learned from
    history (with under a year of history, unseen holidays are missed and said so on the page).
    """
    seen = (
        clean.filter(pl.col("is_holiday"))
        .select(pl.col("hour").dt.month().alias("m"), pl.col("hour").dt.day().alias("d"))
        .unique()
    )
    days = [start + timedelta(hours=i) for i in range(0, hours, 24)]
    keys = {(m, d) for m, d in seen.iter_rows()}
    daily = np.array([(d.month, d.day) in keys for d in days], dtype=bool)
    return np.repeat(daily, 24)[:hours]


@dataclass
class Series:
    """The repaired hourly series of every region on one shared grid (regions × hours)."""

    regions: list[str]
    hours: np.ndarray  # datetime64[h], shape (T,)
    load: np.ndarray  # (R, T) kWh
    temperature: np.ndarray  # (R, T) °C; NaN throughout when the source has no temperature
    holiday: np.ndarray  # (T,) bool

    @property
    def has_temperature(self) -> bool:
        return bool(np.isfinite(self.temperature).any())


def to_series(clean: pl.DataFrame) -> Series:
    """Pivot the cleaned long frame into (region × hour) arrays."""
    regions = sorted(clean["region"].unique().to_list())
    hours = np.unique(clean["hour"].to_numpy().astype("datetime64[h]"))
    wide = clean.sort("region", "hour")
    n_r, n_t = len(regions), len(hours)
    if wide.height != n_r * n_t:
        raise ValueError(f"energy region-hour grid is not complete: {wide.height} rows for {n_r}×{n_t}")
    load = wide["load"].to_numpy().reshape(n_r, n_t).astype(np.float64)
    temp = wide["temperature"].cast(pl.Float64).fill_null(np.nan).to_numpy().reshape(n_r, n_t)
    holiday = wide.group_by("hour").agg(pl.col("is_holiday").any()).sort("hour")["is_holiday"].to_numpy()
    return Series(regions, hours, load, temp, holiday)


@dataclass
class Windows:
    """Model inputs and targets for a set of forecast origins (N windows)."""

    past: np.ndarray  # (N, LOOKBACK, len(PAST_FEATURES)) float32; load scaled by the window level
    future: np.ndarray  # (N, HORIZON, len(FUTURE_FEATURES)) float32: known calendar of the horizon
    naive: np.ndarray  # (N, HORIZON) float32: same hour last week, scaled (the seasonal naive)
    target: np.ndarray  # (N, HORIZON) float32, scaled; NaN beyond the data (the live forecast)
    level: np.ndarray  # (N,) kWh: multiply scaled values by it to get kWh
    region: np.ndarray  # (N,) region index
    origin: np.ndarray  # (N,) index of the first forecast hour in the series grid

    def inputs(self) -> dict[str, np.ndarray]:
        """The dict a Keras model with inputs past/future/naive takes."""
        return {"past": self.past, "future": self.future, "naive": self.naive}

    def __len__(self) -> int:
        return len(self.level)

    def subset(self, rows: np.ndarray) -> Windows:
        """The windows at `rows` (a boolean mask or indexes)."""
        return Windows(self.past[rows], self.future[rows], self.naive[rows], self.target[rows], self.level[rows],
                       self.region[rows], self.origin[rows])


def felt_temperature(temp: np.ndarray) -> np.ndarray:
    """The felt temperature per hour (regions × hours): causal exponential smoothing, `FELT_ALPHA`."""
    from scipy.signal import lfilter

    start = temp[:, :1]
    return lfilter([FELT_ALPHA], [1, FELT_ALPHA - 1], temp - start, axis=1) + start


def make_windows(s: Series, origins: np.ndarray, future_holiday: np.ndarray | None = None) -> Windows:
    """Windows for every region at the given origins (hour indexes; `origin - LOOKBACK >= 0`).

    Origins past the end of the data are allowed (the live forecast): targets there are NaN and
    the holiday flags come from `future_holiday` (hours after the grid).
    """
    origins = np.asarray(origins, dtype=np.int64)
    n_r, n_t = s.load.shape
    extra = int(max(0, origins.max(initial=0) + HORIZON - n_t))
    step = np.timedelta64(1, "h")
    hours = np.concatenate([s.hours, s.hours[-1] + step * np.arange(1, extra + 1)])
    hol = np.concatenate([s.holiday, np.zeros(extra, bool) if future_holiday is None else future_holiday[:extra]])
    cal = calendar(hours, hol)  # (T + extra, 5)
    load = np.concatenate([s.load, np.full((n_r, extra), np.nan)], axis=1)
    temp = np.concatenate([s.temperature, np.full((n_r, extra), np.nan)], axis=1)
    felt = np.concatenate([felt_temperature(s.temperature), np.full((n_r, extra), np.nan)], axis=1)

    # Views of every window, then fancy-indexed at the origins: one copy, no loop over windows.
    load_w = sliding_window_view(load, LOOKBACK, axis=1)  # (R, T', L): window starting at t
    fut_w = sliding_window_view(load, HORIZON, axis=1)
    temp_w = sliding_window_view(temp, LOOKBACK, axis=1)
    felt_w = sliding_window_view(felt, LOOKBACK, axis=1)
    cal_w = sliding_window_view(cal, LOOKBACK, axis=0).transpose(0, 2, 1)  # (T', L, 5)
    calf_w = sliding_window_view(cal, HORIZON, axis=0).transpose(0, 2, 1)
    r = np.repeat(np.arange(n_r), len(origins))
    o = np.tile(origins, n_r)
    past_load = load_w[r, o - LOOKBACK]
    level = np.maximum(past_load.mean(axis=1), 1e-6)
    past = np.concatenate(
        [(past_load / level[:, None])[..., None], temp_w[r, o - LOOKBACK][..., None], cal_w[o - LOOKBACK]], axis=-1
    )
    target = fut_w[r, o] / level[:, None]
    naive = past[:, -HORIZON:, 0] if LOOKBACK >= HORIZON else None
    # Known-at-origin daily profiles, repeated for each day of the horizon (same hour of day).
    reps = -(-HORIZON // 24)
    day = lambda a: np.tile(a, (1, reps))[:, :HORIZON, None]  # noqa: E731
    scaled = past[:, :, 0]
    past_felt = felt_w[r, o - LOOKBACK]
    cal_f = calf_w[o]
    n = len(o)
    day_mean = np.broadcast_to(past[:, -24:, 1].mean(axis=1)[:, None, None], (n, HORIZON, 1))
    lead = np.broadcast_to((np.arange(HORIZON) / 24.0)[None, :, None], (n, HORIZON, 1))
    future = np.concatenate([cal_f[..., :4], day(past_felt[:, -24:]), _daytype_profile(scaled, cal_w[o - LOOKBACK],
                             cal_f)[..., None], day(scaled[:, -24:]), day_mean,
                             _daytype_profile(past_felt, cal_w[o - LOOKBACK], cal_f)[..., None], lead,
                             cal_f[..., 4:]], axis=-1)
    return Windows(
        past=past.astype(np.float32),
        future=future.astype(np.float32),
        naive=np.ascontiguousarray(naive, dtype=np.float32),
        target=target.astype(np.float32),
        level=level,
        region=r,
        origin=o,
    )


def _rest_hours(cal: np.ndarray) -> np.ndarray:
    """Rest-day flag per hour (N × hours) from calendar features: weekend or holiday."""
    dow = np.round(np.arctan2(cal[..., 2], cal[..., 3]) / (2 * np.pi) * 7).astype(int) % 7
    return (dow >= 5) | (cal[..., 4] > 0.5)


def _daytype_profile(scaled: np.ndarray, past_cal: np.ndarray, fut_cal: np.ndarray) -> np.ndarray:
    """Per horizon hour: mean scaled load at that hour of day over past-week hours of the same day type.

    Works hour by hour (origins need not be midnights). Falls back to the same hour a week earlier
    when the past week has no hour of that type at that time of day.
    """
    n, days = len(scaled), LOOKBACK // 24
    blocks = scaled[:, -days * 24:].reshape(n, 1, days, 24)
    past_rest = _rest_hours(past_cal[:, -days * 24:]).reshape(n, 1, days, 24)
    n_fut = -(-HORIZON // 24)
    fut_rest = np.zeros((n, n_fut * 24), dtype=bool)
    fut_rest[:, :HORIZON] = _rest_hours(fut_cal)
    same = fut_rest.reshape(n, n_fut, 1, 24) == past_rest  # (N, future days, past days, 24)
    count = same.sum(axis=2)
    prof = (same * blocks).sum(axis=2) / np.maximum(count, 1)
    naive = np.tile(scaled[:, -24:], (1, n_fut)).reshape(n, n_fut, 24) if HORIZON > LOOKBACK else \
        np.concatenate([scaled[:, -HORIZON:], np.zeros((n, n_fut * 24 - HORIZON))], axis=1).reshape(n, n_fut, 24)
    return np.where(count > 0, prof, naive).reshape(n, -1)[:, :HORIZON]


@dataclass(frozen=True)
class Split:
    """Forecast origins for training, validation (early stopping, intervals) and the holdout."""

    train: np.ndarray
    val: np.ndarray
    holdout: np.ndarray
    holdout_days: int
    val_days: int


def time_split(s: Series, holdout_days: int = 28, val_days: int = 28, train_stride: int | None = None) -> Split:
    """Time-based split: the last `holdout_days` are the holdout, the `val_days` before validation.

    Targets never cross a boundary: a training window's whole horizon ends before validation
    starts, and so on. Holdout origins are midnights (how the nightly forecast is made). With a
    short history (a run early in the data) every hour is a training origin, not every third.
    """
    n_t = len(s.hours)
    min_train = 14 * 24
    while n_t < LOOKBACK + HORIZON + (holdout_days + val_days) * 24 + min_train and holdout_days > 7:
        holdout_days, val_days = holdout_days // 2, val_days // 2
    ho_start = n_t - holdout_days * 24
    va_start = ho_start - val_days * 24
    if va_start - HORIZON < LOOKBACK + min_train // 2:
        days = (LOOKBACK + HORIZON + min_train) // 24 + 2 * 7
        raise ValueError(f"energy: {n_t // 24} days of history are too few to train; need about {days}")
    if train_stride is None:
        short = va_start - HORIZON - LOOKBACK < SHORT_HISTORY_DAYS * 24
        train_stride = 1 if short else TRAIN_STRIDE
    hod = (s.hours - s.hours.astype("datetime64[D]")).astype(np.int64)
    ho = np.arange(ho_start, n_t - HORIZON + 1)
    ho = ho[hod[ho] == 0]
    if len(ho) == 0:
        ho = np.array([n_t - HORIZON])
    return Split(
        train=np.arange(LOOKBACK, va_start - HORIZON + 1, train_stride),
        val=np.arange(va_start, ho_start - HORIZON + 1),
        holdout=ho,
        holdout_days=holdout_days,
        val_days=val_days,
    )


def make_dataset(w: Windows, batch_size: int, *, shuffle: bool, seed: int):
    """A batched, prefetched tf.data pipeline over the windows' NumPy arrays.

    Each window carries a sample weight proportional to its level, so a mean error of scaled
    values weighs like the error in kWh (the measure the holdout is judged on).
    """
    import tensorflow as tf

    weight = (w.level / np.mean(w.level)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((w.inputs(), w.target, weight))
    if shuffle:
        ds = ds.shuffle(len(w), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def data_fingerprint(s: Series) -> str:
    """A short hash of the training series (for the registry: same data, same model)."""
    import hashlib

    h = hashlib.sha256()
    # Rounded: DuckDB's parallel float sums may differ in the last bits from run to run.
    for a in (np.round(s.load, 6), np.round(s.temperature, 6), s.holiday, s.hours.astype(np.int64)):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(",".join(s.regions).encode())
    return h.hexdigest()[:16]


def first_forecast_hour(run_date: date) -> datetime:
    """Midnight after the run date: the first hour the nightly forecast covers."""
    return datetime.combine(run_date + timedelta(days=1), datetime.min.time())
