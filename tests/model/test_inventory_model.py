"""Inventory model and policy quality on "small" demo data (slow: trains the real model)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo import inventory as demo_inventory
from nightshift.demo import sales as demo_sales
from nightshift.jobs import JobContext
from nightshift.jobs.inventory import demand, job
from nightshift.settings import load_settings
from nightshift.warehouse import Warehouse

pytestmark = pytest.mark.slow
D = date(2026, 3, 1)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    size = SIZES["small"]
    tmp = tmp_path_factory.mktemp("inv_small")
    inv = demo_inventory.generate(np.random.default_rng([7, 3]), D - timedelta(days=size.inventory_days - 1), D, size)
    sales = demo_sales.generate(np.random.default_rng([7, 1]), D - timedelta(days=size.sales_days - 1), D, size)
    wh = Warehouse(tmp / "wh.duckdb")
    for name, frame in (("inventory", inv["inventory"]), ("sales", sales["sales"])):
        wh.cursor.register("f", frame.with_columns(pl.col("date").alias("_partition")).to_arrow())
        wh.cursor.execute(f"insert into {name} select * from f")  # noqa: S608 - fixed table names
        wh.cursor.unregister("f")
    ctx = JobContext("inventory", D, load_settings(home=tmp), wh, tmp / "out")
    result = job.run(ctx)
    yield result, ctx
    wh.close()


def test_quantile_model_beats_empirical_baseline_and_is_calibrated(night) -> None:
    result, _ = night
    s = result.summary
    assert s["pinball"] < s["pinball_baseline"]
    assert abs(s["coverage_95"] - 0.95) <= 0.04
    cov = result.context["quality"]
    assert [r["coverage model"] for r in cov] == sorted(r["coverage model"] for r in cov)
    assert abs(cov[0]["coverage model"] - 0.5) <= 0.06  # the median is a median


def test_replayed_fill_rate_near_target_and_above_naive(night) -> None:
    result, _ = night
    s = result.summary
    assert abs(s["fill_rate_policy"] - s["service_target"]) <= 0.03
    assert s["fill_rate_policy"] > s["fill_rate_naive"]
    policy, naive = result.context["sim"]
    assert policy["total cost"] < naive["total cost"]  # the naive rule orders every day


def test_a_higher_target_buys_more_service(night) -> None:
    _, ctx = night
    feat = demand.add_features(ctx.sql("features"))
    model = ctx.registry.load_champion(demand.FORMAT).model
    low, high = (job.replay(feat, model, D, t, 120)["policy"] for t in (0.9, 0.98))
    assert low["fill_rate"] < high["fill_rate"] and low["avg_inventory_value"] < high["avg_inventory_value"]
    assert abs(high["fill_rate"] - 0.98) <= 0.03 and abs(low["fill_rate"] - 0.9) <= 0.03
