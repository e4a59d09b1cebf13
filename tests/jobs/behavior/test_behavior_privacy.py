"""The behavior job's privacy plan: one-day releases stacked into trends, window releases re-served by the
privacy layer between their releases (and shareable like any release), a year in budget."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from nightshift.jobs.behavior import channels
from nightshift.tables import CHANNELS

D0 = date(2026, 3, 1)


def _day_frame(day: date, n: int = 300) -> pl.DataFrame:
    """Person-level user-day rows for one day (what behavior_user_day gives for days=1)."""
    ids = list(range(1, n + 1))
    return pl.DataFrame({
        "user_id": ids, "day": [day] * n, "channel": [CHANNELS[i % len(CHANNELS)] for i in ids],
        "visits": [1 + i % 4 for i in ids], "purchases": [i % 3 == 0 for i in ids],
        "revenue_cents": [(i % 5) * 1000 for i in ids],
    }).with_columns(pl.col("purchases").cast(pl.Int64))


def _window_frame(n: int = 400) -> pl.DataFrame:
    ids = list(range(1, n + 1))
    return pl.DataFrame({
        "user_id": ids, "channel": [CHANNELS[i % len(CHANNELS)] for i in ids], "visits": [2] * n,
        "purchases": [1] * n, "revenue_cents": [500] * n, "clicked": [1] * n, "carted": [0] * n,
        "purchased": [i % 2 for i in ids],
    })


@pytest.fixture()
def env(tmp_path: Path):
    from nightshift.settings import load_settings
    from nightshift.warehouse import Warehouse

    settings = load_settings(home=tmp_path)
    wh = Warehouse(settings.warehouse_path)
    yield settings, wh
    wh.close()


def _night(settings, wh, night: date, frames: dict) -> tuple:
    from nightshift.privacy import PrivacyLayer

    layer = PrivacyLayer(wh, settings, "behavior", night)
    eps = channels.epsilons(settings)
    campaigns = layer.public_keys(channels.campaign_selection(eps), frames.get("campaign_window", pl.DataFrame()))
    decl = channels.declarations(eps, night, campaigns)
    released = channels.release_all(layer, {k: decl[k] for k in frames}, frames)
    return layer, released


def test_a_year_of_nights_fits_the_budget_and_day_releases_key_only_their_day(env) -> None:
    settings, _ = env
    b = settings.privacy_budgets["users"]
    eps = channels.epsilons(settings)
    day = sum(eps[k] for k in channels.DAY_SHARES) * b.window_days
    window = sum(eps[k] * math.ceil(b.window_days / channels.CADENCES[k]) for k in channels.WINDOW_SHARES)
    assert day + window == pytest.approx(b.epsilon, rel=1e-9)
    decl = channels.declarations(eps, D0, ["cmp_01", "other"])
    for name in channels.DAY_SHARES:  # one number a night: all channels together
        assert decl[name].keys == {"day": [D0]} and decl[name].max_rows_per_unit == 1


def test_trend_is_the_stack_of_stored_nightly_releases_with_gaps(env) -> None:
    settings, wh = env
    nights = [D0, D0 + timedelta(days=1), D0 + timedelta(days=3)]  # the night of D0+2 did not run
    shown = {}
    for night in nights:
        _, rel = _night(settings, wh, night, {"day_totals": _day_frame(night)})
        t = rel.tables["day_totals"]
        assert t["day"].to_list() == [night]
        shown[night] = t["active_users"].to_list()
    series = channels.trend(wh.cursor, "behavior", nights[-1], 90)["day_totals"]
    assert sorted(series["day"].to_list()) == nights  # the skipped night is a gap
    for night in nights:  # exactly what each night released: stored, never re-noised
        assert series.filter(pl.col("day") == night)["active_users"].to_list() == shown[night]
    # A re-run of the last night re-serves the stored numbers and spends nothing.
    layer, _ = _night(settings, wh, nights[-1], {"day_totals": _day_frame(nights[-1])})
    assert layer.section()["epsilon_spent"] == 0


def test_window_release_is_reserved_until_a_cadence_has_passed(env) -> None:
    settings, wh = env
    frames = {"channel_window": _window_frame()}
    layer, first = _night(settings, wh, D0, frames)
    assert layer.section()["epsilon_spent"] == pytest.approx(channels.epsilons(settings)["channel_window"])
    later = D0 + timedelta(days=channels.CADENCE_DAYS - 1)
    layer, again = _night(settings, wh, later, frames)
    assert layer.section()["epsilon_spent"] == 0 and again.carried["channel_window"] == D0
    assert again.tables["channel_window"].equals(first.tables["channel_window"])
    # Served by the privacy layer (`release_every`): a result like any release, so it stays shareable.
    (served,) = layer.results
    assert served.reused and served.run_date == D0 and served.table.equals(first.tables["channel_window"])
    layer, fresh = _night(settings, wh, D0 + timedelta(days=channels.CADENCE_DAYS), frames)
    assert not fresh.carried and layer.section()["epsilon_spent"] > 0
    # The headline is readable at the default budget (ε 12 a year): ± under 160 users per channel (the
    # small demo has ~1,300-3,500 per channel), where the old nightly 90-day release gave ±957 at ε 40.
    assert (fresh.tables["channel_window"]["users_moe"] < 160).all()


def test_campaigns_are_released_every_28_nights_and_served_in_between(env) -> None:
    settings, wh = env
    frame = pl.DataFrame({"user_id": list(range(300)), "campaign_id": ["cmp_01"] * 300,
                          "impressions": [4] * 300, "clicks": [1] * 300})
    frames = {"campaign_window": frame}
    _night(settings, wh, D0, frames)
    layer, weekly = _night(settings, wh, D0 + timedelta(days=channels.CADENCE_DAYS), frames)
    assert layer.section()["epsilon_spent"] == 0 and weekly.carried["campaign_window"] == D0
    layer, _ = _night(settings, wh, D0 + timedelta(days=channels.CAMPAIGN_CADENCE_DAYS), frames)
    assert layer.section()["epsilon_spent"] == pytest.approx(channels.epsilons(settings)["campaign_window"])


def test_trend_chart_shows_every_calendar_day_and_leaves_missing_nights_as_gaps() -> None:
    import json

    from nightshift.jobs.behavior import report

    nights = [D0 - timedelta(days=d) for d in (0, 1, 3)]
    day = pl.DataFrame({"day": nights}).with_columns(
        *(pl.lit(100, pl.Int64).alias(c) for c in channels.DAY_COLUMNS["day_totals"][1:]))
    (first,) = report.trend_charts({"day_totals": day}, D0, 10)
    dots = json.loads(first.json)["data"][0]
    assert len(dots["x"]) == 10 and dots["x"][-1] == D0.isoformat()
    assert [y is not None for y in dots["y"][-4:]] == [True, False, True, True]  # D0-2 did not run
    assert report.nights_shown(day) == 3
