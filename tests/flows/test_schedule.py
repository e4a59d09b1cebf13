"""The schedule: local cron fire times across both DST transitions, and the catch-up policies."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from nightshift import runs, schedule
from nightshift.settings import SettingsError, load_settings

UTC = UTC
BERLIN = "Europe/Berlin"
SPRING = date(2026, 3, 29)  # 02:00 CET -> 03:00 CEST: 02:xx does not exist
AUTUMN = date(2026, 10, 25)  # 03:00 CEST -> 02:00 CET: 02:xx happens twice


def _run_dates(cron: str, tz: str, first: date, last: date) -> list[date]:
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last, datetime.min.time(), UTC)
    return [schedule.run_date_for(at, tz) for at in schedule.fire_times(cron, tz, start, end)]


@pytest.mark.parametrize("cron", ["0 2 * * *", "30 2 * * *", "59 1 * * *", "0 3 * * *", "15 0 * * *"])
@pytest.mark.parametrize("around", [SPRING, AUTUMN])
def test_dst_neither_skips_nor_doubles_a_night(cron: str, around: date) -> None:
    dates = _run_dates(cron, BERLIN, around - timedelta(days=4), around + timedelta(days=4))
    # exactly one run per night, consecutive, across the change
    assert dates == [dates[0] + timedelta(days=i) for i in range(len(dates))]
    assert len(dates) >= 7
    assert around - timedelta(days=1) in dates and around in dates


def test_spring_gap_fires_just_after_the_jump_and_autumn_fold_fires_once() -> None:
    tz = schedule.zone(BERLIN)
    spring = [at for at in schedule.fire_times("30 2 * * *", BERLIN, datetime(2026, 3, 28, 12, tzinfo=UTC),
                                                datetime(2026, 3, 29, 12, tzinfo=UTC))]
    assert len(spring) == 1
    assert spring[0].astimezone(tz).strftime("%H:%M %Z") == "03:30 CEST"  # 02:30 does not exist that day
    autumn = list(schedule.fire_times("30 2 * * *", BERLIN, datetime(2026, 10, 24, 12, tzinfo=UTC),
                                      datetime(2026, 10, 25, 12, tzinfo=UTC)))
    assert len(autumn) == 1
    assert autumn[0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # first pass: 02:30 CEST
    assert autumn[0].astimezone(tz).strftime("%H:%M %Z") == "02:30 CEST"


def test_hours_between_fires_follow_the_clock_change() -> None:
    fires = list(schedule.fire_times("0 2 * * *", BERLIN, datetime(2026, 3, 27, tzinfo=UTC),
                                     datetime(2026, 3, 31, tzinfo=UTC)))
    gaps = [(b - a).total_seconds() / 3600 for a, b in zip(fires, fires[1:], strict=False)]
    assert gaps == [24, 24, 23, 24]  # the night of the jump is an hour shorter, not skipped


def test_run_date_is_the_local_day_before_the_fire() -> None:
    # 23:30 UTC on 1 March is 00:30 on 2 March in Berlin: the night processed is 1 March
    assert schedule.run_date_for(datetime(2026, 3, 1, 23, 30, tzinfo=UTC), BERLIN) == date(2026, 3, 1)
    assert schedule.run_date_for(datetime(2026, 3, 1, 23, 30, tzinfo=UTC), "UTC") == date(2026, 2, 28)
    # Pacific/Auckland is ahead of UTC: its 02:00 fire is still the previous UTC day
    at = next(schedule.fire_times("0 2 * * *", "Pacific/Auckland", datetime(2026, 6, 1, tzinfo=UTC),
                                  datetime(2026, 6, 3, tzinfo=UTC)))
    assert at.date() == date(2026, 6, 1) and schedule.run_date_for(at, "Pacific/Auckland") == date(2026, 6, 1)


def test_bad_zone_or_cron_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="IANA"):
        schedule.zone("Mars/Olympus")
    with pytest.raises(SettingsError, match="cron"):
        schedule.check_cron("0 25 * * *")


NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)  # 09:00 in Berlin: the 02:00 run of the 10th is due


@pytest.mark.parametrize(("policy", "limit", "expected", "left"), [
    ("all", 7, [date(2026, 3, d) for d in range(3, 10)], [date(2026, 3, 2)]),
    ("all", 30, [date(2026, 3, d) for d in range(2, 10)], []),
    ("latest", 7, [date(2026, 3, 9)], [date(2026, 3, d) for d in range(2, 9)]),
    ("none", 7, [], [date(2026, 3, d) for d in range(2, 10)]),
    ("all", 0, [], [date(2026, 3, d) for d in range(2, 10)]),
])
def test_catch_up_policies(policy: str, limit: int, expected: list[date], left: list[date]) -> None:
    plan = schedule.catch_up_plan(NOW, BERLIN, "0 2 * * *", date(2026, 3, 1), policy, limit)  # type: ignore[arg-type]
    assert plan.dates == expected == sorted(expected)  # oldest first
    assert plan.caught_up == expected
    assert plan.left_out == left


def test_catch_up_with_a_current_night_runs_it_last_and_not_as_caught_up() -> None:
    plan = schedule.catch_up_plan(NOW, BERLIN, "0 2 * * *", date(2026, 3, 6), "all", 7, current=date(2026, 3, 9))
    assert plan.dates == [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
    assert plan.caught_up == [date(2026, 3, 7), date(2026, 3, 8)]
    up_to_date = schedule.catch_up_plan(NOW, BERLIN, "0 2 * * *", date(2026, 3, 8), "all", 7,
                                        current=date(2026, 3, 9))
    assert up_to_date.dates == [date(2026, 3, 9)] and up_to_date.caught_up == []


def test_catch_up_before_todays_fire_and_without_history() -> None:
    early = datetime(2026, 3, 10, 0, 30, tzinfo=UTC)  # 01:30 Berlin: today's 02:00 run is not due yet
    plan = schedule.catch_up_plan(early, BERLIN, "0 2 * * *", date(2026, 3, 7), "all", 7)
    assert plan.dates == [date(2026, 3, 8)]
    fresh = schedule.catch_up_plan(NOW, BERLIN, "0 2 * * *", None, "all", 7)
    assert fresh.dates == [date(2026, 3, 9)] and fresh.caught_up == []


def test_catch_up_across_the_spring_gap_misses_nothing() -> None:
    now = datetime(2026, 4, 1, 12, tzinfo=UTC)
    plan = schedule.catch_up_plan(now, BERLIN, "30 2 * * *", date(2026, 3, 25), "all", 30)
    assert plan.dates == [date(2026, 3, 25) + timedelta(days=i) for i in range(1, 7)]


def test_last_success_reads_run_records(home) -> None:
    s = load_settings()
    assert schedule.last_success(s) is None
    for d, status, ended in [(date(2026, 3, 1), "success", "x"), (date(2026, 3, 2), "partial", "x"),
                             (date(2026, 3, 3), "failed", "x"), (date(2026, 3, 4), None, None)]:
        runs.save_attempt(s, d, {"run_id": d.isoformat(), "started": "x", "ended": ended, "status": status})
    assert schedule.last_success(s) == date(2026, 3, 2)  # failed and interrupted nights don't count


def test_serve_plan_prints_schedule_and_runs_nothing(home, monkeypatch) -> None:
    import typer
    from typer.testing import CliRunner

    from nightshift.serve_cli import serve_command

    monkeypatch.setenv("NIGHTSHIFT_TIMEZONE", BERLIN)
    monkeypatch.setenv("NIGHTSHIFT_CATCH_UP", "latest")
    s = load_settings()
    yesterday = datetime.now(UTC).date() - timedelta(days=5)
    runs.save_attempt(s, yesterday, {"run_id": "a", "started": "x", "ended": "y", "status": "success"})
    app = typer.Typer()
    app.command()(serve_command)
    out = CliRunner().invoke(app, ["--plan"])
    assert out.exit_code == 0, out.output
    assert "0 2 * * *" in out.output and "Europe/Berlin" in out.output
    assert "policy=latest" in out.output and "would run:" in out.output
    assert "make backfill START=" in out.output
    assert not (home / "reports").exists()  # nothing ran


def test_scheduled_night_runs_missed_nights_oldest_first_then_yesterday_and_alerts(home, monkeypatch) -> None:
    import flows.scheduled
    from nightshift import alerts

    monkeypatch.setenv("NIGHTSHIFT_TIMEZONE", BERLIN)
    monkeypatch.setenv("NIGHTSHIFT_CATCH_UP_LIMIT", "2")
    s = load_settings()
    runs.save_attempt(s, date(2026, 3, 5), {"run_id": "a", "started": "x", "ended": "y", "status": "success"})
    calls: list[tuple[date, str]] = []

    def fake_nightly(run_date, trigger, lock_wait_s):
        calls.append((run_date, trigger))
        if run_date == date(2026, 3, 8):
            raise runs.DateLocked("2026-03-08 is being processed by pid 1 (backfill)")
        return {"run_date": run_date.isoformat(), "status": "success", "jobs": {}}

    sent: list[dict] = []
    monkeypatch.setattr(flows.scheduled, "nightly", fake_nightly)
    monkeypatch.setattr(alerts, "notify", lambda settings, event: sent.append(event) or [])
    monkeypatch.setattr(flows.scheduled, "_scheduled_start", lambda default: NOW)  # fired 10 March, 09:00 Berlin
    results = flows.scheduled.scheduled_nightly.fn()
    # missed 6..8 March, limit 2 -> 7 and 8 caught up; 9 March is the night this fire is for
    assert calls == [(date(2026, 3, 7), "catch-up"), (date(2026, 3, 8), "catch-up"), (date(2026, 3, 9), "schedule")]
    assert [r["status"] for r in results] == ["success", "failed", "success"]  # a locked date does not stop the rest
    assert len(sent) == 1 and sent[0]["run_date"] == "2026-03-08" and "backfill" in sent[0]["error"]
