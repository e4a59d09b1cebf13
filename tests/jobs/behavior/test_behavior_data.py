"""The behavior demo generator and marts: schema, planted structure, sessions, labels without peeking."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo import events as demo_events
from nightshift.jobs.behavior import event_history
from nightshift.tables import TABLES
from nightshift.warehouse import Warehouse

END = date(2026, 3, 1)


def load_frames(path: Path, frames: dict) -> Warehouse:
    """A warehouse holding `users` and `events` frames, each row in the partition of its own day."""
    wh = Warehouse(path)
    for table, col in (("users", "signup_date"), ("events", "ts")):
        f = frames[table].with_columns(pl.col(col).cast(pl.Date).alias("_partition"))
        wh.cursor.register("_in", f.to_arrow())
        wh.cursor.execute({"users": "insert into users select * from _in", "events": "insert into events select * from _in"}[table])
        wh.cursor.unregister("_in")
    return wh
DTYPES = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "DATE": pl.Date, "TIMESTAMP": pl.Datetime("us")}


@pytest.fixture(scope="module")
def tiny() -> dict:
    size = SIZES["tiny"]
    return demo_events.generate(np.random.default_rng([7, 0]), END - timedelta(days=size.event_days - 1), END, size)


@pytest.fixture(scope="module")
def behavior_wh(tiny: dict, tmp_path_factory: pytest.TempPathFactory):
    wh = load_frames(tmp_path_factory.mktemp("bwh") / "wh.duckdb", tiny)
    yield wh, END
    wh.close()


def test_tables_have_canonical_columns_and_types(tiny: dict) -> None:
    for name in ("users", "events"):
        spec = TABLES[name]
        assert tiny[name].columns == spec.column_names
        for c in spec.columns:
            assert tiny[name].schema[c.name] == DTYPES[c.type], (name, c.name)
            if c.enum:
                assert set(tiny[name][c.name].drop_nulls().unique()) <= set(c.enum)
    ev = tiny["events"]
    assert ev["event_id"].n_unique() == ev.height
    assert ev["ts"].min().date() >= END - timedelta(days=SIZES["tiny"].event_days - 1)
    assert ev["ts"].max().date() <= END
    assert set(ev["user_id"]) <= set(tiny["users"]["user_id"])
    assert (ev.filter(pl.col("event_type") == "purchase")["revenue_cents"] > 0).all()


def test_generator_is_deterministic(tiny: dict) -> None:
    size = SIZES["tiny"]
    again = demo_events.generate(np.random.default_rng([7, 0]), END - timedelta(days=size.event_days - 1), END, size)
    assert again["events"].equals(tiny["events"]) and again["users"].equals(tiny["users"])


def test_truth_plants_referral_as_best_and_every_user_has_a_segment(tiny: dict) -> None:
    truth = tiny["_truth"]
    assert truth["channels"].filter("is_best")["channel"].to_list() == ["referral"]
    seg = truth["segments"]
    assert seg.height == tiny["users"].height and seg["segment_name"].n_unique() == 4


def test_clicks_follow_an_impression_of_the_same_campaign(tiny: dict) -> None:
    ev = tiny["events"].sort("user_id", "ts")
    clicks = ev.filter(pl.col("event_type") == "ad_click")
    imps = ev.filter(pl.col("event_type") == "ad_impression")
    j = clicks.join(imps, on=["user_id", "campaign_id"], suffix="_imp").filter(
        (pl.col("ts_imp") <= pl.col("ts")) & (pl.col("ts") - pl.col("ts_imp") < pl.duration(minutes=30)))
    assert j["event_id"].n_unique() == clicks.height


def test_campaigns_have_different_click_through(tiny: dict) -> None:
    ev = tiny["events"]
    by = (ev.filter(pl.col("event_type").is_in(["ad_impression", "ad_click"]))
          .group_by("campaign_id").agg(imp=(pl.col("event_type") == "ad_impression").sum(),
                                       clk=(pl.col("event_type") == "ad_click").sum())
          .with_columns(ctr=pl.col("clk") / pl.col("imp")))
    planted = tiny["_truth"]["campaigns"].join(by, on="campaign_id")
    assert np.corrcoef(planted["planted_ctr"], planted["ctr"])[0, 1] > 0.8


def test_impression_rows_label_and_history_do_not_peek(behavior_wh) -> None:
    wh, run_date = behavior_wh
    rows = event_history.read(wh, event_history.IMPRESSIONS, run_date, days=60, history_days=60, max_rows=10**9)
    ev = wh.as_of("events", run_date).sort("user_id", "ts", "event_id")
    assert 0.02 < rows["clicked"].mean() < 0.4
    # prior_clicks must equal the user's clicks strictly before the impression, recomputed here.
    sample = rows.sample(200, seed=1)
    clicks = ev.filter(pl.col("event_type") == "ad_click").select("user_id", pl.col("ts").alias("cts"))
    expect = (sample.select("event_id", "user_id", "ts").join(clicks, on="user_id", how="left")
              .group_by("event_id").agg(n=(pl.col("cts") < pl.col("ts")).sum()))
    got = sample.select("event_id", "prior_clicks").join(expect, on="event_id")
    assert (got["prior_clicks"] == got["n"]).all()
    # Features and labels of an impression do not depend on what happened after it: an earlier run
    # date (seeing less) gives the same rows for the impressions both runs see.
    full = event_history.read(wh, event_history.IMPRESSIONS, run_date, days=60, history_days=999, max_rows=10**9)
    early = event_history.read(wh, event_history.IMPRESSIONS, run_date - timedelta(days=10), days=50,
                               history_days=989, max_rows=10**9)
    assert early.height > 100
    same = full.join(early.select("event_id"), on="event_id", how="semi").sort("event_id")
    assert same.equals(early.sort("event_id"))


def test_retention_only_counts_closed_windows(behavior_wh) -> None:
    wh, run_date = behavior_wh
    r = wh.run_sql("marts/behavior/retention", run_date=run_date, days=60)
    users = wh.as_of("users", run_date)
    j = r.join(users, on="user_id")
    assert j.filter(pl.col("horizon") == 28)["signup_date"].max() <= run_date - timedelta(days=28)
    assert j.filter(pl.col("horizon") == 7)["signup_date"].max() <= run_date - timedelta(days=7)
    assert set(r["retained"].unique()) <= {0, 1}


def test_a_sessions_channel_is_its_first_events_even_when_its_first_second_is_shared(tiny: dict, tmp_path: Path) -> None:
    """Events sharing a session's first timestamp: the smallest event id's channel is the session's."""
    users = tiny["users"].head(3)
    ids = users["user_id"].to_list()
    start, later = datetime(2026, 2, 27, 9), datetime(2026, 2, 27, 11)
    rows = []
    for user, (visit_id, purchase_id) in zip(ids, [("e1", "e2"), ("e4", "e3"), ("e5", "e6")], strict=True):
        # A visit and a purchase in the same second open the session; another session 2 hours on.
        rows += [(visit_id, user, start, "visit", "search", None), (purchase_id, user, start, "purchase", "email", 500),
                 (f"x{user}", user, later, "visit", "social", None)]
    events = pl.DataFrame(rows, schema={"event_id": pl.String, "user_id": pl.Int64, "ts": pl.Datetime("us"),
                                        "event_type": pl.String, "channel": pl.String, "revenue_cents": pl.Int64},
                          orient="row").with_columns(campaign_id=pl.lit(None, pl.String), device=pl.lit("mobile"),
                                                     product_id=pl.lit(None, pl.String))
    wh = load_frames(tmp_path / "wh.duckdb", {"users": users,
                                             "events": events.select(c.name for c in TABLES["events"].columns)})
    got = event_history.read(wh, event_history.USER_DAY, END, days=7)
    wh.close()
    first = got.filter(pl.col("channel") != "social").sort("user_id")
    # the session's first event: e1 (visit, search), e3 (purchase, email), e5 (visit, search)
    assert dict(zip(first["user_id"], first["channel"], strict=True)) == dict(zip(ids, ["search", "email", "search"],
                                                                                 strict=True))
    assert first["purchases"].to_list() == [1, 1, 1] and first["revenue_cents"].to_list() == [500, 500, 500]
    assert got.filter(pl.col("channel") == "social")["visits"].to_list() == [1, 1, 1]
