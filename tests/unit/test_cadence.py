"""The training cadence: which nights train, and what the nights between read (point in time)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from nightshift import cadence
from nightshift.settings import SettingsError, load_settings
from nightshift.state import JobState

MONDAY = date(2026, 11, 23)


@pytest.mark.parametrize(("kind", "day", "start", "following"), [
    ("nightly", date(2026, 11, 25), date(2026, 11, 25), date(2026, 11, 26)),
    ("weekly", MONDAY, MONDAY, date(2026, 11, 30)),
    ("weekly", date(2026, 11, 29), MONDAY, date(2026, 11, 30)),  # Sunday ends the ISO week
    ("monthly", date(2026, 11, 30), date(2026, 11, 1), date(2026, 12, 1)),
    ("monthly", date(2026, 12, 31), date(2026, 12, 1), date(2027, 1, 1)),
    ("monthly", date(2027, 1, 31), date(2027, 1, 1), date(2027, 2, 1)),
])
def test_periods_and_the_next_training_night(kind, day, start, following):
    assert cadence.period_start(kind, day) == start
    assert cadence.next_training(kind, day) == following


def test_the_first_night_of_each_period_trains_and_the_rest_score_with_it(tmp_path):
    store = JobState(tmp_path, "energy")
    assert cadence.plan(store, "weekly", MONDAY + timedelta(days=2)).trains  # nothing trained yet: train
    cadence.record(store, MONDAY + timedelta(days=2), {"version": "v1"})
    for offset in (3, 4, 5, 6):  # the rest of that week scores with Wednesday's model
        p = cadence.plan(store, "weekly", MONDAY + timedelta(days=offset))
        assert not p.trains and p.kept == {"version": "v1"} and p.last_trained == MONDAY + timedelta(days=2)
    assert cadence.plan(store, "weekly", MONDAY + timedelta(days=7)).trains  # next Monday
    assert cadence.plan(store, "nightly", MONDAY + timedelta(days=3)).trains
    assert not cadence.plan(store, "monthly", date(2026, 11, 30)).trains
    assert cadence.plan(store, "monthly", date(2026, 12, 1)).trains


def test_a_night_never_reads_a_training_night_after_it(tmp_path):
    store = JobState(tmp_path, "sales")
    cadence.record(store, MONDAY + timedelta(days=1), {"version": "later"})
    assert cadence.plan(store, "weekly", MONDAY + timedelta(days=1)).trains  # a rerun of that night trains again
    assert cadence.plan(store, "weekly", MONDAY).trains  # a backfill of the day before never sees it
    assert cadence.plan(store, "weekly", MONDAY).last_trained is None


def test_the_page_says_when_it_trained_and_when_it_trains_next(tmp_path):
    store = JobState(tmp_path, "sales")
    cadence.record(store, MONDAY, {})
    assert cadence.plan(store, "weekly", MONDAY + timedelta(days=1)).page(MONDAY + timedelta(days=1)) == {
        "cadence": "weekly", "trained": False, "last_trained": "2026-11-23", "next_training": "2026-11-30"}
    assert cadence.plan(store, "weekly", MONDAY).page(MONDAY)["last_trained"] == "2026-11-23"


def test_settings_name_the_cadence_per_job_and_refuse_others(tmp_path):
    s = load_settings(home=tmp_path, retrain={"sales": "monthly"})
    assert s.cadence("sales") == "monthly" and s.cadence("energy") == cadence.DEFAULT == "weekly"
    with pytest.raises(SettingsError, match="retrain: 'weather' has no training cadence"):
        load_settings(home=tmp_path, retrain={"weather": "weekly"})
    with pytest.raises(SettingsError, match="nightly"):
        load_settings(home=tmp_path, retrain={"energy": "daily"})


def test_a_lost_kept_model_makes_tonight_train_and_the_page_says_why(tmp_path):
    from nightshift.jobs import JobContext
    from nightshift.selection import by_format

    settings = load_settings(home=tmp_path)
    cadence.record(JobState(settings.models_dir, "energy"), MONDAY, {"version": "v0009-20261123"})
    ctx = JobContext("energy", MONDAY + timedelta(days=1), settings, None, tmp_path / "out")  # type: ignore[arg-type]
    plan, model = cadence.tonight(ctx, by_format({}))
    assert plan.trains and model is None and "v0009-20261123 is missing" in plan.page(ctx.run_date)["note"]


def test_a_cadence_can_be_set_by_variable_without_a_typo_warning(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("NIGHTSHIFT_RETRAIN__ENERGY", "monthly")
    monkeypatch.setenv("NIGHTSHIFT_RETRAINS__ENERGY", "monthly")  # the control: a mistyped one is named
    with caplog.at_level("WARNING"):
        s = load_settings(home=tmp_path)
    assert s.cadence("energy") == "monthly"
    assert "NIGHTSHIFT_RETRAINS__ENERGY is not a setting" in caplog.text
    assert "NIGHTSHIFT_RETRAIN__ENERGY is not" not in caplog.text


def test_between_training_nights_a_baseline_that_beats_the_model_in_use_is_named():
    from nightshift.selection import Judge

    lower = Judge("mae", higher_is_better=False, min_rows=1)
    scores = {"net": 4.0, "naive": 5.0, "profile": 3.5}
    assert cadence.lost_to_baseline(lower, "net", scores, ["naive", "profile"]) == [
        "the model in use, net, lost to the baseline profile on tonight's holdout (mae 4 vs 3.5); "
        "the next training night judges again"]
    assert cadence.lost_to_baseline(lower, "net", {**scores, "profile": 4.0}, ["naive", "profile"]) == []  # a tie
    assert cadence.lost_to_baseline(lower, "profile", scores, ["naive", "profile"]) == []  # a baseline in use
    higher = Judge("auc", higher_is_better=True, min_rows=1)
    assert cadence.lost_to_baseline(higher, "xgb", {"xgb": 0.80, "logistic": 0.81}, ["logistic"])
    assert cadence.lost_to_baseline(higher, "xgb", {"xgb": 0.82, "logistic": 0.81}, ["logistic"]) == []
