"""Behavior models against the demo's planted truth (small size): channels, click-through, recs, segments."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo import events as demo_events

pytestmark = pytest.mark.slow

END = date(2026, 3, 1)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    """The job run once on the small demo with the default privacy budget."""
    from nightshift.jobs import JobContext
    from nightshift.jobs.behavior.job import run
    from nightshift.settings import load_settings
    from nightshift.warehouse import Warehouse

    size = SIZES["small"]
    frames = demo_events.generate(np.random.default_rng([7, 0]), END - timedelta(days=size.event_days - 1), END, size)
    home = tmp_path_factory.mktemp("behavior_small")
    # The default budget (ε=40 a year): the weekly window release must rank the channels on its own.
    settings = load_settings(home=home)
    wh = Warehouse(home / "wh.duckdb")
    for table, col in (("users", "signup_date"), ("events", "ts")):
        f = frames[table].with_columns(pl.col(col).cast(pl.Date).alias("_partition"))
        wh.cursor.register("_in", f.to_arrow())
        wh.cursor.execute({"users": "insert into users select * from _in", "events": "insert into events select * from _in"}[table])
        wh.cursor.unregister("_in")
    ctx = JobContext("behavior", END, settings, wh, home / "out")
    res = run(ctx)
    yield res, frames["_truth"], home, wh
    wh.close()


def test_planted_best_channel_comes_out_on_top(night) -> None:
    res, truth, _, _ = night
    best = truth["channels"].filter("is_best")["channel"][0]
    assert res.summary["best_channel"] == best
    top = res.context["channel_rows"][0]
    assert top["channel"] == best


def test_channel_numbers_are_readable_at_the_default_budget(night) -> None:
    res, _, _, _ = night
    rows = res.context["channel_rows"]
    for r in rows:
        for col in ("users", "visits", "purchases"):
            value, moe = (float(x.replace(",", "")) for x in r[col].split(" ± "))
            assert moe < value, (r["channel"], col, r[col])
    assert sum(r["conversion"] != "suppressed" for r in rows) >= 5


def test_ctr_model_beats_the_campaign_baseline(night) -> None:
    res, _, _, _ = night
    ctr = res.context["ctr"]
    print("CTR holdout:", ctr["model"], "baseline:", ctr["baseline"])
    assert ctr["model"]["log_loss"] < ctr["baseline"]["log_loss"] - 0.003
    assert ctr["model"]["auc"] > ctr["baseline"]["auc"]
    calib = ctr["calibration_rows"]
    assert max(abs(r["gap"]) for r in calib) < 0.06  # calibrated to within a few points per decile


def test_recommendations_beat_popularity_on_hit_rate(night) -> None:
    res, _, _, _ = night
    m = {r["method"]: r for r in res.context["recs"]["metrics"]}
    item, pop = m["item-to-item (cosine)"], m["popularity"]
    print("recs:", item, pop)
    assert item["hit rate@10"] > pop["hit rate@10"] + 0.05
    assert item["coverage"] > pop["coverage"]


def test_segments_recover_planted_groups(night) -> None:
    from sklearn.metrics import adjusted_rand_score

    from nightshift.jobs.behavior import segments

    res, truth, home, wh = night
    feats = wh.run_sql("marts/behavior/user_features", run_date=END, days=90)
    seg = segments.segment(feats, None, seed=7)
    j = seg.labels.join(truth["segments"], on="user_id")
    ari = adjusted_rand_score(j["segment_name"].to_numpy(), j["segment"].to_numpy())
    print(f"segments: k={seg.k}, adjusted Rand index vs planted = {ari:.3f}")
    assert ari > 0.3
    assert 3 <= res.summary["segments"] <= 6
