"""The sales job end to end on tiny demo data, cut down (one order, a short history) to stay fast."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo.sales import generate
from nightshift.jobs import JobContext
from nightshift.jobs.sales import frequency, job, menu, sarima
from nightshift.settings import load_settings
from nightshift.state import JobState
from nightshift.warehouse import Warehouse

END = date(2026, 3, 31)


@pytest.fixture
def night(tmp_path, monkeypatch):
    daily = frequency.FREQUENCIES["daily"]
    monkeypatch.setitem(frequency.FREQUENCIES, "daily", dataclasses.replace(daily, history=140))
    monkeypatch.setattr(sarima, "ORDERS", sarima.ORDERS[:1])
    size = SIZES["tiny"]
    out = generate(np.random.default_rng([7, 1]), END - timedelta(days=size.sales_days - 1), END, size)
    settings = load_settings(home=tmp_path, max_workers=1)
    wh = Warehouse(settings.warehouse_path)
    wh.cursor.register("_rows", out["sales"].with_columns(pl.col("date").alias("_partition")).to_arrow())
    wh.execute("insert into sales select * from _rows")
    wh.cursor.unregister("_rows")
    yield settings, wh, out["_truth"]["series"]
    wh.close()


def test_one_night_forecasts_every_active_series_and_reruns_idempotently(night, tmp_path):
    from nightshift.reporting import render

    settings, wh, truth = night
    ctx = JobContext("sales", END, settings, wh, out_dir=tmp_path / "out")
    res = job.run(ctx)
    fc = pl.read_parquet(tmp_path / "out" / "forecast.parquet")
    active = truth.filter(pl.col("status") != "retired")
    assert set(fc["series"]) == {f"{s}/{p}" for s, p in active.select("store_id", "product_id").iter_rows()}
    assert fc.group_by("series").len()["len"].to_list() == [28] * active.height  # 28 days ahead
    assert fc["date"].min() == END + timedelta(days=1) and fc["date"].max() == END + timedelta(days=28)
    assert fc.select(
        (pl.col("lower_95") >= 0) & (pl.col("lower_95") <= pl.col("lower_80")) & (pl.col("lower_80") <= pl.col("mean"))
        & (pl.col("mean") <= pl.col("upper_80")) & (pl.col("upper_80") <= pl.col("upper_95"))
    ).to_series().all()
    s = res.summary
    assert s["series"] == active.height == sum(s["models"].values())
    assert s["frequencies"] == {"daily": active.height} and s["frequency_source"] == "inferred"
    assert set(s["models"]) <= {*menu.MEMBERS, "baseline", "fallback"}
    modelled = active.height - s["baselines"]
    assert modelled >= 1 and res.extra["orders_selected"] == modelled
    not_modelled = fc.filter(pl.col("kind").is_in(["baseline", "fallback", "seasonal_naive"]))
    assert not_modelled["reason"].is_not_null().all() and (not_modelled["model"] == "seasonal_naive").all()
    assert {"model", *menu.MEMBERS, "mean"} == {r["method"] for r in res.context["overall"]}
    menu_rows = {r["series"]: r for r in res.context["menu"]}
    assert menu_rows.keys() == set(fc["series"])
    assert all(r["published"] == fc.filter(pl.col("series") == k)["model"][0] for k, r in menu_rows.items()
               if fc.filter(pl.col("series") == k)["kind"][0] != "fallback")

    html = render("sales.html.j2", **res.context, run_date=END, job="sales", warnings=res.warnings)
    assert "Worst series" in html and "Model menu per series" in html and "<script>alert" not in html

    again = job.run(JobContext("sales", END, settings, wh, out_dir=tmp_path / "out2"))
    fc2 = pl.read_parquet(tmp_path / "out2" / "forecast.parquet")
    assert fc2.equals(fc)  # the rerun starts from the same (earlier) state: same forecast
    n = wh.execute("select count(*) from sales_forecast_history where run_date = $d", {"d": END}).fetchall()[0][0]
    assert n == fc.height  # replaced, not appended
    assert again.summary == res.summary


def test_the_next_night_starts_from_the_state_and_reuses_the_backtest_parameters(night, tmp_path):
    from nightshift.jobs.sales import state

    settings, wh, _ = night
    settings = load_settings(home=settings.home, max_workers=1, retrain={"sales": "nightly"})
    before = END - timedelta(days=1)
    first = job.run(JobContext("sales", before, settings, wh, out_dir=tmp_path / "before"))
    res = job.run(JobContext("sales", END, settings, wh, out_dir=tmp_path / "tonight"))
    assert res.summary["trained"] and res.context["cadence"]["cadence"] == "nightly"
    published_sarima = sum(res.summary["models"].get(m, 0) for m in ("sarima", "combination"))
    assert res.extra["orders_selected"] == 0 and res.extra["warm_starts"] == published_sarima
    _, kept = state.load(JobState(settings.models_dir, "sales"), END)  # what the night before saved
    _, now = state.load(JobState(settings.models_dir, "sales"), END + timedelta(days=1))  # what tonight saved
    assert now.keys() == kept.keys() and len(now) == first.summary["series"] - first.summary["baselines"] >= 1
    for key, entry in now.items():  # tonight reuses the backtest's SARIMA parameters (no re-selection)
        assert entry.backtest[0] == kept[key].backtest[0]
        np.testing.assert_array_equal(entry.backtest[1], kept[key].backtest[1])


def test_between_training_nights_each_series_refits_the_member_its_training_night_chose(night, tmp_path):
    """Weekly training: Monday backtests and chooses; Tuesday skips the backtest, publishes each series'
    Monday choice refitted on Tuesday's data, and shows Monday's scores."""
    settings, wh, _ = night
    monday = END - timedelta(days=1)
    assert monday.weekday() == 0 and settings.cadence("sales") == "weekly"
    first = job.run(JobContext("sales", monday, settings, wh, out_dir=tmp_path / "monday"))
    res = job.run(JobContext("sales", END, settings, wh, out_dir=tmp_path / "tuesday"))
    assert first.summary["trained"] and not res.summary["trained"]
    assert res.context["cadence"] == {"cadence": "weekly", "trained": False, "last_trained": str(monday),
                                      "next_training": str(monday + timedelta(days=7))}
    assert res.extra["orders_selected"] == 0
    chosen = {r["series"]: r["published"] for r in first.context["menu"]}
    assert {r["series"]: r["published"] for r in res.context["menu"]} == chosen
    assert res.context["overall"] == first.context["overall"]  # Monday's backtest, not run again
    monday_fc = pl.read_parquet(tmp_path / "monday" / "forecast.parquet")
    tuesday_fc = pl.read_parquet(tmp_path / "tuesday" / "forecast.parquet")
    assert tuesday_fc["date"].min() == monday_fc["date"].min() + timedelta(days=1)  # refitted and forecast from tonight
    # A rerun of Monday trains again (it reads only state from before Monday), whatever Tuesday saved.
    again = job.run(JobContext("sales", monday, settings, wh, out_dir=tmp_path / "monday2"))
    assert again.summary["trained"] and again.summary == first.summary
