"""Energy data path without TensorFlow: generator, region-hour mart, gap repair, windows, baselines."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo import energy as gen
from nightshift.jobs.energy import baselines, calibration, candidates, dataset
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
    assert baselines.mae(baselines.to_kwh(lin.forecast(ho2), ho2), ho2) < 0.5 * naive_mae


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


def _noise_windows(origins: np.ndarray, scale: np.ndarray, seed: int = 0) -> dataset.Windows:
    """Windows whose truth is noise around a zero forecast, `scale` per window."""
    rng = np.random.default_rng(seed)
    n, h = len(origins), dataset.HORIZON
    target = (rng.normal(0, 1, (n, h)) * scale[:, None]).astype(np.float32)
    return dataset.Windows(np.zeros((n, 1, 1)), np.zeros((n, 1, 1)), np.zeros((n, h)), target, np.ones(n),
                           np.zeros(n, int), origins)


def test_halfwidth_per_block_is_the_finite_sample_conformal_quantile():
    resid = np.tile(np.arange(1.0, 11.0), (calibration.BLOCKS, 1))  # ten residuals 1..10 in every block
    block = np.repeat(np.arange(calibration.BLOCKS), 10).reshape(calibration.BLOCKS, 10)
    q = calibration.halfwidths(resid, block, 0.9)
    assert q.shape == (calibration.BLOCKS,) and np.all(q == 10.0)  # round(11 × 0.9) = 10th smallest
    assert np.all(calibration.halfwidths(resid, block, 0.8) == 9.0)  # round(11 × 0.8) = 9th (ceil: 9th too)
    assert np.all(calibration.halfwidths(resid, block, 0.75) == 8.0)  # round(8.25) = 8th, ceil would take the 9th
    empty = calibration.halfwidths(resid[:1], block[:1], 0.9)  # one block has data, the others take its width
    assert np.all(empty == 10.0)
    hod = calibration.blocks(np.array([0, 5]), first_hour_of_day=0)
    assert hod[0, 0] == 0 and hod[0, 25] == 25 and hod[1, 0] == 5  # (days ahead) × 24 + target hour of day
    assert hod[1, 19] == 0 and hod[1, 24] == 24 + 5  # 19 h after 05:00 is midnight, still the first day ahead


def test_rolling_calibration_uses_only_hours_observed_before_the_forecast_and_follows_the_error_level():
    h = dataset.HORIZON
    origins = np.arange(0, 24 * 120, 24)
    scale = np.where(origins < 24 * 60, 1.0, 3.0)  # errors triple from day 60: the interval must follow
    w = _noise_windows(origins, scale)
    cal = calibration.calibration([w], [np.zeros((len(w), h))], first_hour_of_day=0)
    early = np.median(cal.halfwidths(24 * 50))
    assert early == pytest.approx(1.645, abs=0.25)  # 90% of |N(0, 1)|
    # at day 60 the tripled forecasts exist in the data but none of their hours is observed yet: unused
    assert np.median(cal.halfwidths(24 * 60)) == pytest.approx(early, rel=0.15)
    assert np.median(cal.halfwidths(24 * 100)) == pytest.approx(3 * early, rel=0.15)  # the new error level
    late = w.subset(origins >= 24 * 62)
    half = calibration.holdout_halfwidths(cal, late, first_hour_of_day=0)
    assert 0.86 < calibration.coverage(np.zeros(late.target.shape), half, late) < 0.94
    assert calibration.sampling_error(100) == pytest.approx(0.03)


def test_a_source_without_temperature_is_not_an_outage_and_is_never_zero_degrees(tiny):
    hourly = tiny["hourly"].with_columns(pl.lit(None, pl.Float64).alias("temperature_c"))
    clean = dataset.clean_hourly(hourly)
    assert not clean["temp_imputed"].any() and clean["temperature"].is_null().all()
    assert dataset.incidents(clean).filter(pl.col("kind") == "temperature outage").height == 0
    s = dataset.to_series(clean)
    assert not s.has_temperature and np.isnan(s.temperature).all()
    split = dataset.time_split(s, train_stride=1)
    tr, va, ho = (dataset.make_windows(s, o) for o in (split.train, split.val, split.holdout))
    assert np.isnan(tr.past[:, :, 1]).all()  # a missing reading stays missing, not 0 °C
    ridge = baselines.fit_linear(tr, va)
    assert np.isfinite(ridge.forecast(ho)).all() and not ridge.keep.all()  # temperature features left out
    assert dataset.to_series(tiny["clean"]).has_temperature


def test_baselines_round_trip_through_their_registry_formats(tiny, tmp_path):
    s = dataset.to_series(tiny["clean"])
    split = dataset.time_split(s, train_stride=1)
    tr, va, ho = (dataset.make_windows(s, o) for o in (split.train, split.val, split.holdout))
    ridge = baselines.fit_linear(tr, va)
    for i, (model, fmt) in enumerate([(ridge, candidates.RIDGE), (candidates.Fixed("seasonal naive"), candidates.FIXED),
                                      (candidates.Fixed("day-type profile"), candidates.FIXED)]):
        folder = tmp_path / str(i)
        folder.mkdir()
        fmt.save(model, folder)
        assert not list(folder.glob("*.pkl"))  # plain files, no pickle
        np.testing.assert_array_equal(candidates.forecast(fmt.load(folder), ho), candidates.forecast(model, ho))
    np.testing.assert_array_equal(candidates.Fixed("seasonal naive").forecast(ho), baselines.seasonal_naive(ho))
    assert not np.array_equal(candidates.Fixed("day-type profile").forecast(ho), baselines.seasonal_naive(ho))
