"""The privacy layer's releases: keys, contribution bounding, post-processing, the page section, the CLI."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.privacy import Count, Mean, PrivacyLayer, Release, Sum
from nightshift.privacy.bounding import bound_and_aggregate, key_grid, prepare
from nightshift.privacy.spec import sum_key
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)
CHANNELS = ["search", "social", "email", "partner"]


@pytest.fixture
def wh(tmp_path):
    with Warehouse(tmp_path / "data" / "warehouse.duckdb") as w:
        yield w


def settings(tmp_path, eps: float = 40.0) -> Settings:
    return Settings(home=tmp_path, privacy_budgets={"users": Budget(epsilon=eps), "households": Budget(epsilon=eps)})


def events(seed: int = 1, n_users: int = 300) -> pl.DataFrame:
    """Person-level rows: a random number of rows per user, channels incl. an undeclared one."""
    rng = np.random.default_rng(seed)  # seeds the data only; the noise is never seeded
    rows = rng.integers(1, 12, n_users)
    user = np.repeat(np.arange(n_users), rows)
    return pl.DataFrame({
        "user_id": user,
        "channel": rng.choice(["search", "social", "email", "tiktok"], user.size, p=[0.5, 0.3, 0.15, 0.05]),
        "revenue_cents": rng.integers(0, 40_000, user.size),
    })


def truth(wh, release, frame, **kw):
    grid = key_grid(release)
    return bound_and_aggregate(wh.cursor, release, prepare(release, frame, grid), grid.height, **kw)


def test_declared_key_without_rows_is_released_and_undeclared_key_never(wh, tmp_path):
    frame = events()
    assert frame.filter(pl.col("channel") == "partner").is_empty()
    rel = Release("by_channel", "users", "user_id", keys={"channel": CHANNELS},
                  measures=[Count("events"), Count("users", distinct=True)], max_rows_per_unit=3, epsilon=1.0)
    res = PrivacyLayer(wh, settings(tmp_path), "behavior", RUN).release(rel, frame)
    assert res.refused is None and res.epsilon == 1.0
    assert res.table["channel"].to_list() == CHANNELS  # every declared key, in declared order
    partner = res.table.row(CHANNELS.index("partner"), named=True)
    assert partner["events"] >= 0 and partner["events_moe"] > 0  # released with noise, not dropped
    assert "tiktok" not in res.table["channel"].to_list()
    # Undeclared rows are dropped before bounding: they change neither the aggregates nor the input hash.
    without = frame.filter(pl.col("channel") != "tiktok")
    a, b = truth(wh, rel, frame), truth(wh, rel, without)
    assert a == b


def test_at_most_k_rows_per_unit_and_clipped_values(wh):
    frame = pl.DataFrame({"user_id": [7] * 50 + [8], "channel": ["search"] * 51,
                          "revenue_cents": [10_000] * 50 + [-5]})
    rel = Release("r", "users", "user_id", keys={"channel": ["search"]},
                  measures=[Count("n"), Sum("rev", "revenue_cents", 0, 1_000)], max_rows_per_unit=4, epsilon=1.0)
    t = truth(wh, rel, frame)
    assert t.vectors["rows"] == [4 + 1]
    assert t.vectors[sum_key(rel.measures[1])] == [4 * 1_000 + 0]  # clipped to [0, 1000]


def test_kept_rows_are_a_pseudo_random_sample_not_the_first_k(wh):
    days = [RUN - timedelta(days=i) for i in range(10)][::-1]
    n = 300  # every user has one row per day, in time order
    frame = pl.DataFrame({"user_id": np.repeat(np.arange(n), 10), "day": days * n})
    rel = Release("r", "users", "user_id", keys={"day": days}, measures=[Count("n")], max_rows_per_unit=3, epsilon=1.0)
    per_day = truth(wh, rel, frame).vectors["rows"]
    assert sum(per_day) == 3 * n
    # First-K-by-time would give [300, 300, 300, 0, ...]; a hash sample spreads ~90 over each day.
    assert min(per_day) > 50 and max(per_day) < 140, per_day


def test_distinct_count_dedupes_then_bounds(wh):
    frame = pl.DataFrame({"user_id": [1] * 10 + [2] * 4, "channel": ["search"] * 10 + CHANNELS})
    rel = Release("r", "users", "user_id", keys={"channel": CHANNELS},
                  measures=[Count("u", distinct=True)], max_rows_per_unit=2, epsilon=1.0)
    units = truth(wh, rel, frame).vectors["units"]
    assert units[0] >= 1 and sum(units) == 1 + 2  # user 1 once; user 2 in at most K=2 channels


def test_mean_is_suppressed_with_a_note_when_the_count_is_noise(wh, tmp_path):
    rng = np.random.default_rng(3)
    big = pl.DataFrame({"user_id": np.arange(20_000), "channel": "search",
                        "revenue_cents": rng.integers(0, 1_000, 20_000)})
    tiny = pl.DataFrame({"user_id": [20_001, 20_002], "channel": ["social"] * 2, "revenue_cents": [500, 700]})
    rel = Release("avg", "users", "user_id", keys={"channel": ["search", "social"]},
                  measures=[Mean("avg_rev", "revenue_cents", 0, 1_000)], max_rows_per_unit=1, epsilon=2.0)
    res = PrivacyLayer(wh, settings(tmp_path), "behavior", RUN).release(rel, pl.concat([big, tiny]))
    search, social = res.table.rows(named=True)
    assert search["avg_rev_note"] is None and abs(search["avg_rev"] - big["revenue_cents"].mean()) < 50
    assert 0 <= search["avg_rev"] <= 1_000 and search["avg_rev_moe"] > 0
    assert social["avg_rev"] is None and "suppressed" in social["avg_rev_note"]
    assert res.suppressed and res.suppressed[0]["cell"] == "channel=social"


def test_noisy_counts_are_never_negative(wh, tmp_path):
    rel = Release("zeros", "users", "user_id", keys={"channel": CHANNELS}, measures=[Count("n")],
                  max_rows_per_unit=5, epsilon=0.1)
    empty = pl.DataFrame({"user_id": [1], "channel": ["tiktok"]})
    res = PrivacyLayer(wh, settings(tmp_path), "behavior", RUN).release(rel, empty)
    assert res.table["n"].min() >= 0 and res.table.height == 4


def test_bad_declarations_are_refused_clearly(wh, tmp_path):
    layer = PrivacyLayer(wh, settings(tmp_path), "behavior", RUN)
    frame = events()
    with pytest.raises(ValueError, match="no privacy budget for dataset 'patients'"):
        layer.release(Release("x", "patients", "user_id", measures=[Count("n")]), frame)
    with pytest.raises(ValueError, match="no column"):
        layer.release(Release("x", "users", "user_id", keys={"country": ["DE"]}, measures=[Count("n")]), frame)
    with pytest.raises(ValueError, match="lower <= upper"):
        layer.release(Release("x", "users", "user_id", measures=[Sum("s", "revenue_cents", 5, 1)]), frame)


def test_section_and_template_show_spend_budget_moe_and_suppressions(wh, tmp_path):
    from nightshift.reporting import environment

    layer = PrivacyLayer(wh, settings(tmp_path, eps=1.5), "behavior", RUN)
    frame = events().with_columns(pl.col("user_id") + 9_000_000)  # ids that must not reach the page
    rel = Release("by_channel", "users", "user_id", keys={"channel": CHANNELS},
                  measures=[Count("n"), Mean("avg_rev", "revenue_cents", 0, 40_000)], max_rows_per_unit=2, epsilon=1.0)
    layer.release(rel, frame)
    refused = layer.release(Release("<b>more</b>", "users", "user_id", keys={"channel": CHANNELS},
                                    measures=[Count("n")], max_rows_per_unit=1, epsilon=1.0), frame)
    assert refused.refused and refused.table is None
    sec = layer.section()
    assert sec["epsilon_spent"] == 1.0
    assert sec["budgets"] == [{"dataset": "users", "budget": 1.5, "window_days": 365, "window_start": "2025-03-02",
                               "window_end": "2026-03-01", "spent": 1.0, "left": 0.5, "delta_spent": 0.0}]
    assert {m["name"]: m["moe"] for m in sec["releases"][0]["measures"]}["avg_rev"] == "per row"
    html = environment().from_string('{% import "_privacy.html.j2" as p %}{{ p.privacy_section(privacy) }}').render(
        privacy=sec)
    for text in ("Privacy", "ε = 1", "Budget left", "0.5", "Refused releases", "&lt;b&gt;more&lt;/b&gt;", "± (95%)"):
        assert text in html, text
    assert "<b>more</b>" not in html and "9000001" not in html and "9,000,001" not in html
    empty = environment().from_string('{% import "_privacy.html.j2" as p %}{{ p.privacy_section(privacy) }}')
    assert empty.render() == "" and empty.render(privacy=None) == ""  # pages without DP numbers


def test_cli_prints_spent_and_left_per_dataset(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from nightshift.privacy_cli import app

    monkeypatch.setenv("NIGHTSHIFT_PRIVACY_BUDGETS", '{"users": {"epsilon": 3.0}, "households": {"epsilon": 2.0}}')
    s = settings(tmp_path, eps=3.0)
    with Warehouse(s.warehouse_path) as w:
        rel = Release("n", "users", "user_id", keys={"channel": CHANNELS}, measures=[Count("n")], epsilon=0.75)
        PrivacyLayer(w, s, "behavior", RUN).release(rel, events())
    out = CliRunner().invoke(app, ["--home", str(tmp_path), "--as-of", "2026-03-01", "--releases"])
    assert out.exit_code == 0, out.output
    assert "users" in out.output and "0.75" in out.output and "2.25" in out.output and "households" in out.output
    assert "behavior" in out.output  # the per-release listing
    out = CliRunner().invoke(app, ["ledger", "--home", str(tmp_path), "--as-of", "2027-06-01"])
    assert out.exit_code == 0 and "0.75" not in out.output  # the release left the 365-day window
