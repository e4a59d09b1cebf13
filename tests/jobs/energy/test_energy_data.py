"""Energy data path without TensorFlow: generator, region-hour mart, gap repair, windows, baselines."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo import energy as gen
from nightshift.jobs.energy import baselines, dataset
from nightshift.tables import TABLES
from nightshift.warehouse import Warehouse

END = date(2025, 12, 31)
DTYPES = {"VARCHAR": pl.String, "DOUBLE": pl.Float64, "BOOLEAN": pl.Boolean, "TIMESTAMP": pl.Datetime("us")}


def _generate(seed: int = 3, size: str = "tiny"):
    days = SIZES[size].energy_days
    return gen.generate(np.random.default_rng(seed), END - timedelta(days=days - 1), END, SIZES[size])


@pytest.fixture(scope="module")
def tiny():
    """Tiny demo energy loaded into a throwaway warehouse, with the mart and its repair."""
    import tempfile
    from pathlib import Path

    out = _generate()
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(Path(tmp) / "w.duckdb")
        wh.cursor.register("_e", out["energy"].with_columns(pl.col("ts").dt.date().alias("_partition")).to_arrow())
        wh.cursor.execute("insert into energy select * from _e")
        hourly = wh.run_sql("marts/energy/region_hourly", run_date=END)
        daily = wh.run_sql("marts/energy/meter_daily", run_date=END, days=1)
        wh.close()
    return {"out": out, "hourly": hourly, "clean": dataset.clean_hourly(hourly), "daily": daily}


def test_generator_matches_the_canonical_table_and_is_deterministic():
    a, b = _generate(seed=5), _generate(seed=5)
    frame = a["energy"]
    spec = TABLES["energy"]
    assert frame.columns == spec.column_names
    assert {c.name: DTYPES[c.type] for c in spec.columns} == dict(frame.schema)
    assert frame.equals(b["energy"])
    assert not frame.equals(_generate(seed=6)["energy"])
    assert frame["kwh"].min() >= 0
    assert frame["ts"].min().date() == END - timedelta(days=SIZES["tiny"].energy_days - 1)
    assert frame["ts"].max().date() == END
    assert frame.select("ts", "meter_id").is_unique().all()


def test_generator_plants_cycles_holidays_sites_and_movers():
    out = _generate(size="small")
    e, meters = out["energy"], out["_truth"]["meters"]
    by_hour = e.group_by(pl.col("ts").dt.hour().alias("h")).agg(pl.col("kwh").mean()).sort("h")["kwh"].to_numpy()
    assert by_hour[19] > 1.5 * by_hour[3]  # evening peak over the night
    assert e.filter(pl.col("ts").dt.date() == date(2025, 12, 25))["is_holiday"].all()
    assert (meters["kind"] == "site").sum() >= 2
    assert meters["joined"].drop_nulls().len() > 0 and meters["left"].drop_nulls().len() > 0
    cold = e.filter(pl.col("temperature_c") < 0)["kwh"].mean()
    mild = e.filter(pl.col("temperature_c").is_between(15, 20))["kwh"].mean()
    assert cold > 1.2 * mild  # heating load


def test_mart_grid_is_complete_and_counts_active_meters(tiny):
    h = tiny["hourly"]
    regions = h["region"].n_unique()
    hours = h["hour"].n_unique()
    assert h.height == regions * hours
    assert h["hour"].max() == np.datetime64("2025-12-31T23:00").astype("datetime64[us]").item()
    assert (h["meters_reporting"] <= h["meters_active"]).all()
    # a meter that left is no longer active, so its absence is not a gap
    meters = tiny["out"]["_truth"]["meters"]
    leaver = meters.filter(pl.col("left").is_not_null()).row(0, named=True)
    region = h.filter(pl.col("region") == leaver["region"]).sort("hour")
    before = region.filter(pl.col("hour") == leaver["left"] - timedelta(hours=2))["meters_active"][0]
    after = region.filter(pl.col("hour") == leaver["left"] + timedelta(hours=2))["meters_active"][0]
    assert after == before - 1


def test_missing_day_and_temperature_outage_are_found_and_repaired(tiny):
    clean, truth = tiny["clean"], tiny["out"]["_truth"]["incidents"]
    found = dataset.incidents(clean)
    for row in truth.iter_rows(named=True):
        kind = "missing readings" if row["kind"] == "missing_day" else "temperature outage"
        hit = found.filter((pl.col("kind") == kind) & (pl.col("region") == row["region"])
                           & (pl.col("start") == row["start"]))
        assert hit.height == 1 and hit["hours"][0] == row["hours"]
    gap = truth.filter(pl.col("kind") == "missing_day").row(0, named=True)
    day = clean.filter((pl.col("region") == gap["region"]) & (pl.col("hour") >= gap["start"])
                       & (pl.col("hour") < gap["start"] + timedelta(hours=24)))
    assert day["load_imputed"].all() and (day["load"] > 0).all()
    week_before = clean.filter((pl.col("region") == gap["region"]) & (pl.col("hour") >= gap["start"] - timedelta(days=7))
                               & (pl.col("hour") < gap["start"] - timedelta(days=6)))
    # re-estimated from the same hours a week earlier (per active meter): same shape, same size
    assert np.corrcoef(day["load"], week_before["load"])[0, 1] > 0.9
    out = truth.filter(pl.col("kind") == "temperature_outage").row(0, named=True)
    hole = clean.filter((pl.col("region") == out["region"]) & pl.col("temp_imputed"))
    assert hole.height == out["hours"] and hole["temperature"].is_not_null().all()
    assert clean["temperature"].is_null().sum() == 0 and clean["load"].is_null().sum() == 0


def test_windows_align_with_the_series_and_split_does_not_leak(tiny):
    s = dataset.to_series(tiny["clean"])
    split = dataset.time_split(s, train_stride=1)
    assert split.train[-1] + dataset.HORIZON <= split.val[0]
    assert split.val[-1] + dataset.HORIZON <= split.holdout[0]
    assert split.holdout[-1] + dataset.HORIZON == len(s.hours)
    w = dataset.make_windows(s, split.holdout)
    n = len(s.regions) * len(split.holdout)
    assert w.past.shape == (n, dataset.LOOKBACK, len(dataset.PAST_FEATURES)) and w.target.shape == (n, dataset.HORIZON)
    i = n - 1
    r, o = w.region[i], w.origin[i]
    np.testing.assert_allclose(w.target[i] * w.level[i], s.load[r, o:o + dataset.HORIZON], rtol=1e-5)
    np.testing.assert_allclose(w.naive[i] * w.level[i], s.load[r, o - 168:o - 168 + dataset.HORIZON], rtol=1e-5)
    np.testing.assert_allclose(w.level[i], s.load[r, o - dataset.LOOKBACK:o].mean(), rtol=1e-9)
    live = dataset.make_windows(s, np.array([len(s.hours)]))
    assert np.isnan(live.target).all() and np.isfinite(live.past).all()


def test_seasonal_naive_is_exact_on_a_weekly_series_and_ridge_learns_a_trend():
    hours = np.datetime64("2025-01-06T00", "h") + np.arange(24 * 120)
    weekly = 10 + 3 * np.sin(2 * np.pi * np.arange(len(hours)) / 168)
    s = dataset.Series(["a"], hours, weekly[None, :], np.zeros((1, len(hours))), np.zeros(len(hours), bool))
    split = dataset.time_split(s)
    ho = dataset.make_windows(s, split.holdout)
    assert baselines.mae(baselines.to_kwh(baselines.seasonal_naive(ho), ho), ho) < 1e-9
    trend = weekly * (1 + np.arange(len(hours)) / len(hours))  # growth: last week is always too low
    s2 = dataset.Series(["a"], hours, trend[None, :], np.zeros((1, len(hours))), np.zeros(len(hours), bool))
    tr, va, ho2 = (dataset.make_windows(s2, o) for o in (split.train, split.val, split.holdout))
    lin = baselines.fit_linear(tr, va)
    naive_mae = baselines.mae(baselines.to_kwh(baselines.seasonal_naive(ho2), ho2), ho2)
    assert baselines.mae(baselines.to_kwh(lin.predict(ho2), ho2), ho2) < 0.5 * naive_mae


def test_interval_quantiles_cover_validation_residuals():
    rng = np.random.default_rng(0)
    n, h = 400, dataset.HORIZON
    w = dataset.Windows(np.zeros((n, 1, 1)), np.zeros((n, 1, 1)), np.zeros((n, h)),
                  rng.normal(0, 1, (n, h)).astype(np.float32), np.ones(n), np.zeros(n, int), np.zeros(n, int))
    lo, hi = baselines.residual_quantiles(np.zeros((n, h)), w, 0.9)
    assert np.all(lo < 0) and np.all(hi > 0)
    assert 0.85 < baselines.interval_coverage(np.zeros((n, h)), lo, hi, w) < 0.95


def test_future_holidays_come_from_the_calendar_seen_in_history(tiny):
    from datetime import datetime

    flags = dataset.future_holidays(tiny["clean"], datetime(2026, 1, 1), dataset.HORIZON)
    # tiny has 120 days of history: Dec 25/26 were seen, Jan 1 was not
    assert not flags[:24].any()
    flags = dataset.future_holidays(tiny["clean"], datetime(2026, 12, 24), 72)
    assert flags.tolist() == [False] * 24 + [True] * 48


def test_meter_daily_mart_feeds_the_privacy_layer_one_row_per_meter(tiny):
    d = tiny["daily"]
    assert d.select("meter_id").is_unique().all() and (d["day"] == END).all()
    assert (d["hours"] <= 24).all() and (d["kwh"] >= 0).all()


def test_future_features_are_known_at_the_origin(tiny):
    s = dataset.to_series(tiny["clean"])
    split = dataset.time_split(s)
    w = dataset.make_windows(s, split.holdout)
    i = len(w) - 1
    r, o = w.region[i], w.origin[i]
    f = {name: w.future[i, :, k] for k, name in enumerate(dataset.FUTURE_FEATURES)}
    # persistence felt temperature: the last day, same hour of day, for every horizon day
    felt = dataset.felt_temperature(s.temperature)
    np.testing.assert_allclose(f["felt_recent"], np.tile(felt[r, o - 24:o], 7), rtol=1e-5)
    np.testing.assert_allclose(f["load_yesterday"] * w.level[i], np.tile(s.load[r, o - 24:o], 7), rtol=1e-4)
    # day-type profile: mean over the past week's days of the target day's type (weekend/holiday vs work)
    days = s.hours[o - 168:o:24].astype("datetime64[D]")
    rest = ((days.astype(np.int64) + 3) % 7 >= 5) | s.holiday[o - 168:o:24]
    past = s.load[r, o - 168:o].reshape(7, 24)
    target_days = s.hours[o:o + 168:24].astype("datetime64[D]")
    t_rest = ((target_days.astype(np.int64) + 3) % 7 >= 5) | s.holiday[o:o + 168:24]
    for j in range(7):
        want = past[rest == t_rest[j]].mean(axis=0)
        np.testing.assert_allclose(f["load_daytype_mean"][j * 24:(j + 1) * 24] * w.level[i], want, rtol=1e-4)
    assert (f["holiday"] == w.future[i, :, -1]).all()  # the holiday flag stays last (the job reads it there)


def test_short_history_trains_on_every_hour():
    hours = np.datetime64("2025-01-06T00", "h") + np.arange(24 * 100)
    s = dataset.Series(["a"], hours, np.ones((1, len(hours))), np.zeros((1, len(hours))), np.zeros(len(hours), bool))
    assert np.all(np.diff(dataset.time_split(s).train) == 1)
    long = dataset.Series(["a"], np.datetime64("2025-01-06T00", "h") + np.arange(24 * 300), np.ones((1, 24 * 300)),
                    np.zeros((1, 24 * 300)), np.zeros(24 * 300, bool))
    assert np.all(np.diff(dataset.time_split(long).train) == dataset.TRAIN_STRIDE)


def test_conformal_halfwidth_covers_and_uses_the_latest_validation_origins():
    rng = np.random.default_rng(0)
    n, h = 400, dataset.HORIZON
    scale = np.where(np.arange(n) < n // 2, 1.0, 3.0)[:, None]  # errors grow over the validation weeks
    w = dataset.Windows(np.zeros((n, 1, 1)), np.zeros((n, 1, 1)), np.zeros((n, h)),
                  (rng.normal(0, 1, (n, h)) * scale).astype(np.float32), np.ones(n), np.zeros(n, int), np.arange(n))
    q_all = baselines.conformal_halfwidth(np.zeros((n, h)), w, 0.9, recent=1.0)
    q_recent = baselines.conformal_halfwidth(np.zeros((n, h)), w, 0.9, recent=0.5)
    assert np.all(q_recent > q_all)
    late = dataset.Windows(w.past[n // 2:], w.future[n // 2:], w.naive[n // 2:], w.target[n // 2:], w.level[n // 2:],
                     w.region[n // 2:], w.origin[n // 2:])
    assert 0.87 < baselines.interval_coverage(np.zeros((n // 2, h)), -q_recent, q_recent, late) < 0.95
