"""The backfill's estimate: which dates train, and the pace of each kind of night."""

from __future__ import annotations

from datetime import date, timedelta

from nightshift import cadence, estimate, runs
from nightshift.settings import load_settings
from nightshift.state import JobState

MONDAY = date(2026, 11, 23)


def test_the_plan_trains_on_the_first_night_and_each_monday_as_the_runs_will(tmp_path):
    settings = load_settings(home=tmp_path, retrain={"sales": "monthly"})
    days = [MONDAY - timedelta(days=2) + timedelta(days=i) for i in range(11)]  # Saturday to Tuesday 1 December
    kinds = estimate.will_train(settings, ["energy"], days)
    assert [d for d, t in kinds.items() if t] == [days[0], MONDAY, MONDAY + timedelta(days=7)]
    cadence.record(JobState(settings.models_dir, "energy"), days[0] - timedelta(days=1), {})  # Friday trained
    assert [d for d, t in estimate.will_train(settings, ["energy"], days).items() if t] == [
        MONDAY, MONDAY + timedelta(days=7)]
    # sales trains monthly: December 1st as well
    assert [d for d, t in estimate.will_train(settings, ["sales"], days).items() if t] == [days[0], date(2026, 12, 1)]


def test_each_kind_of_night_is_priced_at_its_own_median(tmp_path):
    settings = load_settings(home=tmp_path)
    JobState(settings.models_dir, "energy").save(cadence.NAME, MONDAY, {})
    for i, seconds in enumerate((40, 10, 12, 14)):
        day = MONDAY + timedelta(days=i)
        runs.save_attempt(settings, day, {
            "run_id": str(i), "status": "success", "started": "2026-11-30T01:00:00+00:00",
            "ended": f"2026-11-30T01:00:{seconds:02d}+00:00", "jobs": {"energy": {"status": "success"}}})
    runs.save_attempt(settings, MONDAY + timedelta(days=5), {  # an unchanged rerun reused the job: not a pace
        "run_id": "r", "status": "success", "started": "2026-11-30T01:00:00+00:00",
        "ended": "2026-11-30T01:00:01+00:00", "jobs": {"energy": {"status": "reused"}}})
    pace = estimate.past_pace(settings, ["energy"], ["energy"])
    assert pace.seconds(True) == 40 and pace.seconds(False) == 12
    assert pace.left([True, False, False]) == 64
    pace.now[False] += [20.0]  # this run's own nights take over
    assert pace.left([False]) == 20
    assert estimate.Pace().left([True]) is None
    assert estimate.describe(None).startswith("unknown") and estimate.describe(45) == "about 45 s"
    assert estimate.describe(600) == "about 10 min" and estimate.describe(7200) == "about 2.0 h"


def test_a_night_starts_its_longest_jobs_first_priced_by_their_last_night_of_the_same_kind(tmp_path):
    settings = load_settings(home=tmp_path)
    jobs = ["behavior", "sales", "loans", "energy"]
    for job in ("behavior", "sales", "energy"):
        cadence.record(JobState(settings.models_dir, job), MONDAY, {})  # Monday trained them, not loans
    nights = {MONDAY: {"behavior": 16, "sales": 35, "energy": 24, "loans": 5},  # a training night
              MONDAY + timedelta(days=1): {"behavior": 9, "sales": 3, "energy": 2, "loans": 30},
              MONDAY + timedelta(days=2): {"behavior": 8, "sales": 4, "energy": 2, "loans": 1}}
    for day, seconds in nights.items():
        runs.save_attempt(settings, day, {"run_id": str(day), "status": "success", "started": "x", "ended": "y",
                                          "jobs": {j: {"status": "success", "seconds": s} for j, s in seconds.items()}})
    thursday = MONDAY + timedelta(days=3)
    # Thursday scores: each job priced by Wednesday, its newest scoring night; loans has no training night
    # on record, so it trains tonight with nothing to price it by: it starts first
    assert estimate.longest_first(settings, jobs, thursday) == ["loans", "behavior", "sales", "energy"]
    cadence.record(JobState(settings.models_dir, "loans"), MONDAY, {})
    assert estimate.longest_first(settings, jobs, thursday) == ["behavior", "sales", "energy", "loans"]
    # next Monday trains them all: priced by Monday's training night
    assert estimate.longest_first(settings, jobs, MONDAY + timedelta(days=7)) == ["sales", "energy", "behavior",
                                                                                   "loans"]
    # a date before every recorded night knows nothing: the given order
    assert estimate.longest_first(settings, jobs, MONDAY - timedelta(days=1)) == jobs
    # an unchanged rerun reused the job: it says nothing of its length, the night before it does (30 s)
    runs.save_attempt(settings, MONDAY + timedelta(days=2), {"run_id": "re", "status": "success", "started": "x",
                                                             "ended": "y", "jobs": {"loans": {"status": "reused",
                                                                                              "seconds": 0.1}}})
    assert estimate.longest_first(settings, jobs, thursday) == ["loans", "behavior", "sales", "energy"]
