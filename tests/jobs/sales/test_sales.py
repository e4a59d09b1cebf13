"""The sales job end to end on tiny demo data, cut down (one order, one origin) to stay fast."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo.sales import generate
from nightshift.jobs import JobContext
from nightshift.jobs.sales import job, sarima
from nightshift.settings import load_settings
from nightshift.state import JobState
from nightshift.warehouse import Warehouse

END = date(2026, 3, 31)


@pytest.fixture
def night(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "FIT_DAYS", 140)
    monkeypatch.setattr(job, "N_ORIGINS", 1)
    monkeypatch.setattr(job, "HISTORY_DAYS", 140 + 28)
    monkeypatch.setattr(sarima, "GRID", sarima.GRID[:1])
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
    assert fc.group_by("series").len()["len"].to_list() == [28] * active.height
    assert fc["date"].min() == END + timedelta(days=1) and fc["date"].max() == END + timedelta(days=28)
    assert fc.select(
        (pl.col("lower_95") >= 0) & (pl.col("lower_95") <= pl.col("lower_80")) & (pl.col("lower_80") <= pl.col("mean"))
        & (pl.col("mean") <= pl.col("upper_80")) & (pl.col("upper_80") <= pl.col("upper_95"))
    ).to_series().all()
    s = res.summary
    assert s["series"] == active.height == s["sarima"] + s["baselines"] + s["fallbacks"]
    assert s["sarima"] >= 1 and res.extra["orders_selected"] == s["sarima"]
    not_modelled = fc.filter(pl.col("kind") != "sarima")
    assert not_modelled["reason"].is_not_null().all() and (not_modelled["model"] == "seasonal_naive").all()
    assert {"sarima", "seasonal_naive", "mean"} == {r["method"] for r in res.context["overall"]}

    html = render("sales.html.j2", **res.context, run_date=END, job="sales", warnings=res.warnings)
    assert "Worst series" in html and "Accuracy over time" in html and "<script>alert" not in html

    again = job.run(JobContext("sales", END, settings, wh, out_dir=tmp_path / "out2"))
    fc2 = pl.read_parquet(tmp_path / "out2" / "forecast.parquet")
    assert fc2.equals(fc)  # the rerun starts from the same (earlier) state: same forecast
    n = wh.execute("select count(*) from sales_forecast_history where run_date = $d", {"d": END}).fetchall()[0][0]
    assert n == fc.height  # replaced, not appended
    assert again.summary == res.summary


def test_the_next_night_starts_from_the_state_and_reuses_the_backtest_parameters(night, tmp_path):
    from nightshift.jobs.sales import state

    settings, wh, _ = night
    before = END - timedelta(days=1)
    first = job.run(JobContext("sales", before, settings, wh, out_dir=tmp_path / "before"))
    res = job.run(JobContext("sales", END, settings, wh, out_dir=tmp_path / "tonight"))
    assert res.extra["orders_selected"] == 0 and res.extra["warm_starts"] == res.summary["sarima"] >= 1
    _, kept = state.load(JobState(settings.models_dir, "sales"), END)  # what the night before saved
    _, now = state.load(JobState(settings.models_dir, "sales"), END + timedelta(days=1))  # what tonight saved
    assert now.keys() == kept.keys() and len(now) == first.summary["sarima"]
    for key, entry in now.items():  # tonight refits its model but not the backtest's (no re-selection)
        assert entry.backtest[0] == kept[key].backtest[0]
        np.testing.assert_array_equal(entry.backtest[1], kept[key].backtest[1])
