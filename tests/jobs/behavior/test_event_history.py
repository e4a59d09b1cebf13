"""The kept event history (jobs/behavior/event_history.py): brought forward night by night, its marts
read exactly like a rebuild from the events known by each night, and both match references computed
here in Polars from the definitions of the click-through rows and the per-user day sessions."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo import events as demo_events
from nightshift.jobs.behavior import event_history
from nightshift.warehouse import Warehouse

END = date(2026, 3, 1)
NIGHTS = [END - timedelta(days=k) for k in range(6, -1, -1)]
WINDOW = dict(days=20, history_days=30, max_rows=10**9)  # short windows: rows fall out of them night by night
AD = ("ad_impression", "ad_click")
FEATURES = ["event_id", "prior_impressions", "prior_clicks", "prior_carts", "prior_purchases", "prior_sessions",
            "days_since_first_seen", "session_impressions_before", "clicked"]


def insert(wh: Warehouse, table: str, frame: pl.DataFrame) -> None:
    wh.cursor.register("_in", frame.to_arrow())
    # table names are this module's constants
    wh.cursor.execute("insert into " + table + " by name select * from _in")  # noqa: S608
    wh.cursor.unregister("_in")


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    """The tiny demo's events; one in twenty lands one to three days late (a drop of an earlier day)."""
    size = SIZES["tiny"]
    ev = demo_events.generate(np.random.default_rng([7, 0]), END - timedelta(days=size.event_days - 1), END,
                              size)["events"]
    lag = np.where(np.random.default_rng(3).random(ev.height) < 0.05,
                   np.random.default_rng(4).integers(1, 4, ev.height), 0)
    return ev.with_columns((pl.col("ts").cast(pl.Date) + pl.duration(days=pl.Series(lag))).alias("_partition"))


def warehouse(path: Path, events: pl.DataFrame) -> Warehouse:
    wh = Warehouse(path)
    insert(wh, "events", events)
    return wh


def reference(events: pl.DataFrame, run_date: date, days: int, history_days: int, **_: object) -> pl.DataFrame:
    """The click-through rows by their definition: the user's events in the window known by `run_date`,
    in time then event id order; counts strictly before; sessions by the 30-minute gap; the label is
    whether the next ad event of the same campaign in the same session is a click."""
    start = datetime.combine(run_date - timedelta(days=history_days - 1), datetime.min.time())
    end = datetime.combine(run_date + timedelta(days=1), datetime.min.time())
    ev = (events.filter((pl.col("_partition") <= run_date) & (pl.col("ts") >= start) & (pl.col("ts") < end))
          .sort("user_id", "ts", "event_id"))
    before = {f"prior_{name}": (pl.col("event_type") == kind).cast(pl.Int64).cum_sum().over("user_id")
              - (pl.col("event_type") == kind).cast(pl.Int64)
              for name, kind in (("impressions", "ad_impression"), ("clicks", "ad_click"),
                                 ("carts", "add_to_cart"), ("purchases", "purchase"))}
    gap = pl.col("ts") - pl.col("ts").shift(1).over("user_id")
    ev = ev.with_columns(**before, starts=gap.is_null() | (gap > timedelta(minutes=30)),
                         first_seen=pl.col("ts").min().over("user_id"))
    ev = ev.with_columns(session_no=pl.col("starts").cast(pl.Int64).cum_sum().over("user_id"))
    ev = ev.with_columns(session_impressions_before=pl.col("prior_impressions")
                         - pl.col("prior_impressions").first().over("user_id", "session_no"))
    window = datetime.combine(run_date - timedelta(days=days - 1), datetime.min.time())
    ads = ev.filter(pl.col("event_type").is_in(AD) & pl.col("campaign_id").is_not_null() & (pl.col("ts") >= window))
    ads = ads.with_columns(clicked=(pl.col("event_type").shift(-1).over("user_id", "session_no", "campaign_id")
                                    == "ad_click").fill_null(False).cast(pl.Int32))
    return (ads.filter(pl.col("event_type") == "ad_impression")
            .select("event_id", "prior_impressions", "prior_clicks", "prior_carts", "prior_purchases",
                    (pl.col("session_no") - 1).alias("prior_sessions"),
                    (pl.col("ts").cast(pl.Date) - pl.col("first_seen").cast(pl.Date)).dt.total_days()
                    .alias("days_since_first_seen"),  # calendar days, as SQL's date_diff('day', ...)
                    "session_impressions_before", "clicked")
            .sort("event_id"))


def user_day_reference(events: pl.DataFrame, run_date: date, days: int) -> pl.DataFrame:
    """Per user, day and channel: the sessions of the window known by `run_date` (30-minute gap, a
    session's day and channel those of its first event in time then event id order), with purchases
    and revenue."""
    start = datetime.combine(run_date - timedelta(days=days - 1), datetime.min.time())
    end = datetime.combine(run_date + timedelta(days=1), datetime.min.time())
    ev = (events.filter((pl.col("_partition") <= run_date) & (pl.col("ts") >= start) & (pl.col("ts") < end))
          .sort("user_id", "ts", "event_id"))
    gap = pl.col("ts") - pl.col("ts").shift(1).over("user_id")
    ev = ev.with_columns(session=(gap.is_null() | (gap > timedelta(minutes=30))).cast(pl.Int64).cum_sum().over("user_id"))
    purchase = pl.col("event_type") == "purchase"
    sessions = ev.group_by("user_id", "session").agg(
        day=pl.col("ts").first().cast(pl.Date), channel=pl.col("channel").first(), purchases=purchase.sum(),
        revenue_cents=pl.col("revenue_cents").filter(purchase).sum())
    return (sessions.group_by("user_id", "day", "channel")
            .agg(visits=pl.len(), converting_visits=(pl.col("purchases") > 0).sum(),
                 purchases=pl.col("purchases").sum(), revenue_cents=pl.col("revenue_cents").sum())
            .sort("user_id", "day", "channel"))


def features(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select(FEATURES).sort("event_id")


@pytest.fixture
def kept(tmp_path: Path, events: pl.DataFrame) -> Warehouse:
    with warehouse(tmp_path / "kept.duckdb", events) as wh:
        yield wh


def test_nights_brought_forward_read_like_a_rebuild_and_like_the_definition(kept, events, tmp_path):
    modes = []
    for night in NIGHTS:
        modes.append(event_history.ensure(kept, night, WINDOW["history_days"]))
        forward = kept.run_sql(event_history.IMPRESSIONS, run_date=night, **WINDOW)
        with warehouse(tmp_path / f"{night}.duckdb", events) as fresh:
            rebuilt = event_history.read(fresh, event_history.IMPRESSIONS, night, **WINDOW)
        assert forward.equals(rebuilt), night
        want = reference(events, night, **WINDOW)
        assert features(forward).equals(want.cast(features(forward).schema)), night
        for days in (1, 7, WINDOW["history_days"]):  # the job's day, a week, the whole kept window
            got = event_history.read(kept, event_history.USER_DAY, night, days=days).sort("user_id", "day", "channel")
            want = user_day_reference(events, night, days)
            assert got.equals(want.cast(got.schema)), (night, days)
    assert modes == ["rebuilt"] + ["advanced"] * (len(NIGHTS) - 1)
    # the nights did meet late drops: events landed after the night of their day, inside the window
    late = events.filter((pl.col("_partition") > pl.col("ts").cast(pl.Date)) & pl.col("_partition").is_in(NIGHTS[1:]))
    assert late.height > 10


def test_a_session_going_on_past_midnight_labels_the_kept_impression_the_next_night(kept, events):
    user = events["user_id"].min()
    night = NIGHTS[0]
    at = datetime.combine(night, datetime.min.time())
    ads = pl.DataFrame({
        "event_id": ["~imp", "~click"], "user_id": [user, user], "ts": [at + timedelta(hours=23, minutes=55),
                                                                       at + timedelta(days=1, minutes=5)],
        "event_type": ["ad_impression", "ad_click"], "channel": ["search", "search"], "campaign_id": ["~c", "~c"],
        "_partition": [night, night + timedelta(days=1)],
    })
    insert(kept, "events", ads)
    label = {}
    for day in (night, night + timedelta(days=1)):
        event_history.ensure(kept, day, WINDOW["history_days"])
        rows = kept.run_sql(event_history.IMPRESSIONS, run_date=day, **WINDOW)
        label[day] = rows.filter(pl.col("event_id") == "~imp")["clicked"].to_list()
    assert label == {night: [0], night + timedelta(days=1): [1]}  # the click was not known the first night


def test_an_event_of_the_campaign_that_is_no_ad_is_not_the_label(kept, events):
    """A purchase credited to the campaign between its impression and its click: the impression's label is
    still the next ad event of the campaign in the session, the click."""
    user, night = events["user_id"].min(), NIGHTS[0]
    at = datetime.combine(night, datetime.min.time()) + timedelta(hours=3)
    insert(kept, "events", pl.DataFrame({
        "event_id": ["~imp", "~buy", "~click"], "user_id": [user] * 3,
        "ts": [at, at + timedelta(minutes=5), at + timedelta(minutes=10)],
        "event_type": ["ad_impression", "purchase", "ad_click"], "channel": ["search"] * 3,
        "campaign_id": ["~d"] * 3, "revenue_cents": [None, 1200, None], "_partition": [night] * 3,
    }))
    event_history.ensure(kept, night, WINDOW["history_days"])
    rows = kept.run_sql(event_history.IMPRESSIONS, run_date=night, **WINDOW)
    assert rows.filter(pl.col("event_id") == "~imp")["clicked"].to_list() == [1]


def test_a_rerun_of_an_earlier_date_rebuilds_it(kept, events):
    history_days = WINDOW["history_days"]
    for night in NIGHTS[-2:]:
        event_history.ensure(kept, night, history_days)
    assert event_history.ensure(kept, NIGHTS[-1], history_days) == "kept"
    assert event_history.ensure(kept, NIGHTS[0], history_days) == "rebuilt"  # a later kept date is not point in time
    got = kept.run_sql(event_history.IMPRESSIONS, run_date=NIGHTS[0], **WINDOW)
    assert features(got).equals(reference(events, NIGHTS[0], **WINDOW).cast(features(got).schema))
    assert event_history.ensure(kept, NIGHTS[0], history_days + 1) == "rebuilt"  # another window


def test_events_changed_under_the_kept_date_rebuild_it(kept, events):
    """However an event of a kept date changes (here inserted straight into the table, past the ingest
    log), the next night does not build on the history made without it."""
    history_days = WINDOW["history_days"]
    event_history.ensure(kept, NIGHTS[0], history_days)
    first = events.filter(pl.col("_partition") <= NIGHTS[0]).sort("ts").tail(1)
    insert(kept, "events", first.with_columns(pl.lit("~restated").alias("event_id")))
    assert event_history.ensure(kept, NIGHTS[1], history_days) == "rebuilt"
    insert(kept, "events", first.with_columns(pl.lit("~again").alias("event_id"), pl.lit(NIGHTS[1]).alias("_partition")))
    assert event_history.ensure(kept, NIGHTS[1], history_days) == "rebuilt"  # the kept date itself changed
    assert event_history.ensure(kept, NIGHTS[1], history_days) == "kept"
