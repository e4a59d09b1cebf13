"""The inventory job on tiny demo data: generator, point-in-time features, edge cases, outputs, page."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from nightshift import contracts, reporting
from nightshift.demo import SIZES
from nightshift.demo import inventory as demo_inventory
from nightshift.demo import sales as demo_sales
from nightshift.jobs import JobContext
from nightshift.jobs.inventory import demand, job
from nightshift.settings import load_settings
from nightshift.state import JobState
from nightshift.tables import TABLES
from nightshift.warehouse import Warehouse

D = date(2026, 3, 1)
TINY = SIZES["tiny"]
FAST = {"n_estimators": 15}
DTYPES = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "INTEGER": pl.Int32, "DOUBLE": pl.Float64, "DATE": pl.Date,
          "BOOLEAN": pl.Boolean}


@pytest.fixture(scope="module")
def demo() -> dict:
    inv = demo_inventory.generate(np.random.default_rng(5), D - timedelta(days=TINY.inventory_days - 1), D, TINY)
    sales = demo_sales.generate(np.random.default_rng(6), D - timedelta(days=TINY.sales_days - 1), D, TINY)
    return {"inventory": inv["inventory"], "sales": sales["sales"], "truth": inv["_truth"]}


@pytest.fixture(scope="module")
def sold_out(demo: dict) -> pl.DataFrame:
    """The demo with W01/P0001 sold out on D (nothing of it in transit): tomorrow's list orders it."""
    hit = (pl.col("date") == D) & (pl.col("warehouse_id") == "W01") & (pl.col("product_id") == "P0001")
    return demo["inventory"].with_columns(pl.when(hit).then(0).otherwise(pl.col("on_hand")).alias("on_hand"))


def _warehouse(path: Path, inventory: pl.DataFrame, sales: pl.DataFrame | None) -> Warehouse:
    wh = Warehouse(path)
    for name, frame in (("inventory", inventory), ("sales", sales)):
        if frame is not None:
            wh.cursor.register("f", frame.with_columns(pl.col("date").alias("_partition")).to_arrow())
            wh.cursor.execute(f"insert into {name} select * from f")  # noqa: S608 - fixed table names
            wh.cursor.unregister("f")
    return wh


def _run(tmp_path: Path, inventory: pl.DataFrame, sales: pl.DataFrame | None, run_date: date = D, **kw):
    settings = load_settings(home=tmp_path)
    wh = _warehouse(tmp_path / "wh.duckdb", inventory, sales)
    try:
        ctx = JobContext("inventory", run_date, settings, wh, tmp_path / "out")
        return job.run(ctx, params=FAST, **kw), ctx
    finally:
        wh.close()


@pytest.fixture(scope="module")
def night(demo: dict, sold_out: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("inv_night")
    result, ctx = _run(tmp, sold_out, demo["sales"])
    return result, ctx


def test_generator_shape_and_planted_signal(demo: dict) -> None:
    inv, truth = demo["inventory"], demo["truth"]
    assert {c.name: DTYPES[c.type] for c in TABLES["inventory"].columns} == dict(inv.schema)
    assert inv.select(pl.struct("date", "warehouse_id", "product_id").is_duplicated().any()).item() is False
    assert inv["on_hand"].min() >= 0 and inv["lead_time_days"].min() >= 1
    assert (inv["on_hand"] == 0).sum() > 0  # stock-outs happen
    lead = inv.group_by("warehouse_id").agg(pl.col("lead_time_days").mean()).sort("warehouse_id")["lead_time_days"]
    assert lead[1] - lead[0] >= 2  # lead times vary by warehouse
    new = truth["series"].filter(pl.col("is_new"))
    new_rows = inv.join(new.select("warehouse_id", "product_id"), on=["warehouse_id", "product_id"])
    assert new_rows.height == demo_inventory.NEW_SKU_DAYS and new_rows["ordered"].sum() == 0
    # promotions lift demand: mean demand on promo days beats the same SKU's other days
    promo = truth["promotions"].with_columns(pl.lit(True).alias("promo"))
    lift = (inv.join(promo, on=["date", "product_id"], how="left").with_columns(pl.col("promo").fill_null(False))
            .group_by("product_id", "promo").agg(pl.col("ordered").mean()).pivot("promo", index="product_id")
            .drop_nulls())
    assert (lift["true"] > lift["false"]).mean() >= 0.8
    assert truth["spikes"].height > 0


def test_features_are_point_in_time_and_targets_exact(demo: dict, tmp_path: Path) -> None:
    wh = _warehouse(tmp_path / "w.duckdb", demo["inventory"], demo["sales"])
    d1 = D - timedelta(days=60)
    f = wh.run_sql("marts/inventory/features", run_date=d1)
    assert f["date"].max() == d1
    late = f.filter(pl.col("date") + pl.duration(days=pl.col("lead_time_days")) > d1)
    assert late["target"].null_count() == late.height  # nothing after d1 leaks into a target
    s = f.filter(pl.col("warehouse_id") == "W01", pl.col("product_id") == "P0001").sort("date")
    row = s.filter(pl.col("date") == d1 - timedelta(days=30)).row(0, named=True)
    ahead = s.filter(pl.col("date") > row["date"]).head(row["lead_time_days"])["demand"].sum()
    assert row["target"] == ahead
    assert f.filter(pl.col("product_id") == "P0001")["has_sales"].all()  # matches a sales product
    # a missing day: null demand, and no target spans it
    gap = demo["inventory"].filter(~((pl.col("date") == d1 - timedelta(days=20)) & (pl.col("product_id") == "P0001")))
    wh2 = _warehouse(tmp_path / "w2.duckdb", gap, None)  # and no sales table at all: promo features are 0
    g = wh2.run_sql("marts/inventory/features", run_date=d1).filter(pl.col("product_id") == "P0001")
    hole = g.filter(pl.col("date") == d1 - timedelta(days=20))
    assert hole["demand"].null_count() == hole.height == TINY.warehouses
    assert g.filter(pl.col("date") == d1 - timedelta(days=21))["target"].null_count() == TINY.warehouses
    assert g["promo_share"].max() == 0 and not g["has_sales"].any()


def test_job_outputs_orders_and_policy(night) -> None:
    result, ctx = night
    policy = pl.read_parquet(ctx.out_dir / "policy.parquet")
    orders = pl.read_parquet(ctx.out_dir / "orders.parquet")
    assert policy.height == TINY.warehouses * TINY.skus + 1
    ok = policy.filter(pl.col("status") == "model")
    assert ok.height == TINY.warehouses * TINY.skus
    # quantiles never cross, the reorder point sits at or above the median, S = s + EOQ
    q = ok.select("lt_demand_q50", "lt_demand_q90", "lt_demand_q95", "lt_demand_q99").to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    assert (ok["order_up_to"] == ok["reorder_point"] + ok["eoq"]).all()
    below = ok.filter(pl.col("position") <= pl.col("reorder_point"))
    assert (below["order_qty"] == below["order_up_to"] - below["position"]).all()
    assert (ok.filter(pl.col("position") > pl.col("reorder_point"))["order_qty"] == 0).all()
    assert orders.height == (policy["order_qty"] > 0).sum()
    assert orders.filter(pl.col("warehouse_id") == "W01", pl.col("product_id") == "P0001").height == 1
    # stock ordered on the nights before D and still in transit counts: it is not ordered again
    assert policy.filter(pl.col("inbound") > 0, pl.col("on_hand") <= pl.col("reorder_point")).height > 0
    assert orders.select((pl.col("arrives_on") == pl.lit(D) + pl.duration(days=pl.col("lead_time_days"))).all()).item()
    assert ok["stockout_risk"].is_between(0, 1).all()
    # the no-history SKU: a clear status, no numbers invented, nothing ordered
    new = policy.filter(pl.col("status") == "no demand history")
    assert new.height == 1 and new["reorder_point"].is_null().all() and new["order_qty"].sum() == 0
    assert any("without enough demand history" in w for w in result.warnings)
    assert result.models["inventory_demand"] == ctx.registry.champion()
    assert 0 < result.summary["fill_rate_policy"] <= 1 and result.summary["fill_rate_naive"] < 1


def test_the_model_in_use_is_the_best_candidate_on_the_holdout(night) -> None:
    result, ctx = night
    verdict = result.selections["inventory_demand"]
    board = {e["name"]: e for e in verdict["board"]}
    assert set(board) == {"xgboost quantiles", "empirical quantiles (recent level)"} and verdict["holdout_rows"] >= 100
    best_baseline = min(e["value"] for e in board.values() if e["baseline"])
    assert board[verdict["published"]]["value"] <= best_baseline  # pinball loss: lower is better
    assert verdict["version"] == result.models["inventory_demand"] == ctx.registry.champion()
    assert ctx.registry.get(verdict["version"]).metadata["extra"]["candidate"] == verdict["published"]


def test_a_baseline_champion_is_stored_and_scores_like_the_booster(demo: dict, tmp_path: Path) -> None:
    feat = demand.add_features(_warehouse(tmp_path / "w.duckdb", demo["inventory"], demo["sales"])
                               .run_sql("marts/inventory/features", run_date=D))
    train, hold, _ = demand.split(feat, D, job.HOLDOUT_DAYS)
    base = demand.fit_baseline(train)
    demand.BASELINE_FORMAT.save(base, tmp_path)
    loaded = demand.BASELINE_FORMAT.load(tmp_path)
    q = loaded.predict(hold)
    assert np.array_equal(q, base.predict(hold)) and q.shape == (hold.height, len(demand.QUANTILES))
    assert (np.diff(q, axis=1) >= 0).all()
    unseen = hold.head(3).with_columns(pl.lit("W-new").alias("warehouse_id"))
    assert np.allclose(loaded.predict(unseen), np.array(base.pooled) * unseen["scale"].to_numpy()[:, None])


def test_page_renders_escaped(night) -> None:
    result, ctx = night
    context = {**result.context, "orders": [{**result.context["orders"][0], "product_id": "<b>P9</b>"}]}
    html = reporting.render("inventory.html.j2", run_date=D, job="inventory", warnings=result.warnings,
                            selections=result.selections, **context)
    verdict = result.selections["inventory_demand"]
    assert f"<strong>{verdict['winner']}</strong> won; the runner-up {verdict['runner_up']}" in html
    assert "Order list for tomorrow" in html and "SKUs at risk" in html and "Demand model quality" in html
    assert "chart-" in html and "&lt;b&gt;P9" in html and "<b>P9" not in html


def test_in_transit_counts_what_arrives_after_the_date() -> None:
    night_1 = pl.DataFrame({"warehouse_id": ["W01", "W01"], "product_id": ["P0002", "P0002"], "order_qty": [40.0, 7.0],
                            "arrives_on": [D + timedelta(days=2), D]})
    night_2 = pl.DataFrame({"warehouse_id": ["W01"], "product_id": ["P0002"], "order_qty": [9.0],
                            "arrives_on": [D + timedelta(days=3)]})
    assert job.in_transit([night_1, night_2], D).to_dicts() == [
        {"warehouse_id": "W01", "product_id": "P0002", "inbound": 49.0}]  # what arrives on D is on hand
    assert job.in_transit([], D).height == 0


@pytest.fixture(scope="module")
def warehouse(demo: dict, sold_out: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    """The demo in one warehouse: its as-of reads serve every run date."""
    wh = _warehouse(tmp_path_factory.mktemp("inv_wh") / "wh.duckdb", sold_out, demo["sales"])
    yield wh
    wh.close()


def _night(home: Path, wh: Warehouse, run_date: date):
    """One night of the job in `home` (its registry and state store), reading the shared warehouse."""
    ctx = JobContext("inventory", run_date, load_settings(home=home), wh, home / "out" / run_date.isoformat())
    result = job.run(ctx, params=FAST)
    return result, pl.read_parquet(ctx.out_dir / "policy.parquet"), pl.read_parquet(ctx.out_dir / "orders.parquet")


def test_a_date_gives_the_same_orders_whether_or_not_the_night_before_ran(warehouse: Warehouse,
                                                                          tmp_path: Path) -> None:
    after, fresh = tmp_path / "after", tmp_path / "fresh"
    _night(after, warehouse, D - timedelta(days=1))
    # The champion is the declared dependence on earlier nights: the fresh home starts from the same one,
    # and from nothing else of the night before (a state store, if the job kept one, stays behind).
    shutil.copytree(after / "models" / "inventory", fresh / "models" / "inventory",
                    ignore=shutil.ignore_patterns("state"))
    result, policy, orders = _night(after, warehouse, D)
    result_fresh, policy_fresh, orders_fresh = _night(fresh, warehouse, D)
    assert result.models == result_fresh.models
    assert_frame_equal(policy, policy_fresh)
    assert_frame_equal(orders, orders_fresh)
    assert orders.height > 0 and policy["inbound"].sum() > 0  # orders of the nights before D are in transit
    lead = int(policy["lead_time_days"].max())
    assert result.context["inbound_nights"] == job.REPLAY_LEAD_TIMES * lead
    assert result.extra["depends_on_earlier_nights"] == job.DEPENDS_ON_EARLIER_NIGHTS
    assert "inventory_demand champion" in job.DEPENDS_ON_EARLIER_NIGHTS


def test_state_saved_for_other_nights_does_not_change_a_dates_orders(warehouse: Warehouse, tmp_path: Path) -> None:
    _, policy, orders = _night(tmp_path, warehouse, D)
    # Order lists as an older version of the job kept them: one from a night before D, and later nights'.
    store = JobState(tmp_path / "models", "inventory")
    everything = policy.select(job.KEYS).with_columns(pl.lit(1000.0).alias("order_qty"),
                                                      pl.lit(D + timedelta(days=3)).alias("arrives_on"))
    for day in (D - timedelta(days=1), D + timedelta(days=1), D + timedelta(days=5)):
        store.save_frame("orders", day, everything)
    _, policy_again, orders_again = _night(tmp_path, warehouse, D)
    assert_frame_equal(policy, policy_again)
    assert_frame_equal(orders, orders_again)


def test_contract_rejects_and_job_copes_without_those_rows(demo: dict, tmp_path: Path) -> None:
    inv = demo["inventory"]
    day = inv.filter(pl.col("date") == D).with_columns(
        pl.when(pl.col("product_id") == "P0001").then(0).otherwise(pl.col("lead_time_days")).alias("lead_time_days"),
        pl.when(pl.col("product_id") == "P0002").then(-5).otherwise(pl.col("on_hand")).alias("on_hand"),
    )
    checker = Warehouse(tmp_path / "c.duckdb")
    checked = contracts.check("inventory", pa.Table.from_pylist(
        day.with_columns(pl.lit(D).alias("_partition")).to_dicts()), checker)
    checker.close()
    bad = checked.bad
    assert set(bad["product_id"].to_list()) == {"P0001", "P0002"}
    # Load only the good rows of D (as ingest would), and drop one whole series (quarantined throughout).
    good = pl.concat([inv.filter(pl.col("date") < D), checked.good.drop("_partition").cast(inv.schema)])
    good = good.filter(~((pl.col("warehouse_id") == "W02") & (pl.col("product_id") == "P0003")))
    result, ctx = _run(tmp_path / "run", good, None)
    policy = pl.read_parquet(ctx.out_dir / "policy.parquet")
    assert policy.filter(pl.col("warehouse_id") == "W02", pl.col("product_id") == "P0003").height == 0
    p1 = policy.filter(pl.col("product_id") == "P0001", pl.col("status") == "model")
    assert p1.height == TINY.warehouses  # D's row missing: last known stock and lead time are used
    assert (p1["on_hand"] >= 0).all() and p1["reorder_point"].is_not_null().all()


def test_huge_spike_is_flagged_and_bounded(demo: dict, tmp_path: Path) -> None:
    inv = demo["inventory"].with_columns(
        pl.when((pl.col("date") == D - timedelta(days=3)) & (pl.col("warehouse_id") == "W01")
                & (pl.col("product_id") == "P0000")).then(pl.col("ordered") * 50 + 500).otherwise(pl.col("ordered"))
        .alias("ordered"))
    result, ctx = _run(tmp_path, inv, None)
    policy = pl.read_parquet(ctx.out_dir / "policy.parquet")
    row = policy.filter(pl.col("warehouse_id") == "W01", pl.col("product_id") == "P0000").row(0, named=True)
    assert row["recent_spike"] is True
    assert np.isfinite(row["reorder_point"]) and row["order_qty"] >= 0
    assert result.context["spikes"][0]["product_id"] == "P0000"


def test_too_little_history_falls_back_to_empirical_quantiles(demo: dict, tmp_path: Path) -> None:
    short = demo["inventory"].filter(pl.col("date") > D - timedelta(days=70))
    result, ctx = _run(tmp_path, short, None)
    policy = pl.read_parquet(ctx.out_dir / "policy.parquet")
    assert result.models == {} and any("too little history" in w for w in result.warnings)
    assert set(policy["status"]) == {"empirical", "no demand history"}
    assert policy.filter(pl.col("status") == "empirical")["reorder_point"].is_not_null().all()


def test_empty_table_is_a_clear_error(tmp_path: Path) -> None:
    empty = pl.DataFrame(schema={c.name: DTYPES[c.type] for c in TABLES["inventory"].columns})
    with pytest.raises(ValueError, match="inventory table has no rows"):
        _run(tmp_path, empty, None)


def test_runs_on_the_ingested_demo_night(demo_night, tmp_path: Path) -> None:
    load = demo_night.loads["inventory"]
    assert load.rows_loaded > 0 and load.rows_quarantined == 0  # the generator keeps the contract
    settings = load_settings(home=tmp_path)
    ctx = JobContext("inventory", demo_night.run_date, settings, demo_night.warehouse, tmp_path / "out")
    result = job.run(ctx, params=FAST)
    assert (tmp_path / "out" / "orders.parquet").exists() and result.summary["fill_rate_policy"] > 0.5
