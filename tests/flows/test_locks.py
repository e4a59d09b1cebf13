"""Per-date locks between processes, stale locks after kill -9, backfill dry runs and resuming."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date

import pytest

from nightshift import backfill, runs
from nightshift.settings import load_settings

D = date(2026, 3, 1)


def hold_lock(purpose: str, seconds: float = 60) -> subprocess.Popen:
    """A separate process that takes D's lock (as `purpose`), says so, then sleeps."""
    code = textwrap.dedent(f"""
        import sys, time
        from datetime import date
        from nightshift import runs
        from nightshift.settings import load_settings
        with runs.date_lock(load_settings(), date({D.year}, {D.month}, {D.day}), purpose={purpose!r}):
            print("locked", flush=True)
            time.sleep({seconds})
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def test_same_date_is_refused_with_a_clear_message(home) -> None:
    holder = hold_lock("backfill")
    try:
        with pytest.raises(runs.DateLocked) as e, runs.date_lock(load_settings(), D, purpose="schedule"):
            pytest.fail("took a lock another process holds")
        msg = str(e.value)
        assert f"pid {holder.pid} (backfill" in msg and "a schedule for the same date" in msg
        assert "nightshift status" in msg
        with runs.date_lock(load_settings(), date(2026, 3, 2), purpose="schedule"):
            pass  # another date is free
    finally:
        holder.kill()
        holder.wait()


def test_waiter_gets_the_date_when_the_holder_finishes(home, capsys) -> None:
    holder = hold_lock("run", seconds=1.5)
    t0 = time.monotonic()
    with runs.date_lock(load_settings(), D, wait_s=30, purpose="backfill"):
        waited = time.monotonic() - t0
    holder.wait()
    assert 1.0 < waited < 30  # it got the date only once the holder had let go (after ~1.5 s)
    assert "waiting for pid" in capsys.readouterr().out


def test_stale_lock_of_a_killed_process_is_cleared(home) -> None:
    s = load_settings()
    holder = hold_lock("run", seconds=600)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = s.state_dir / "locks" / f"{D}.lock"
    assert f"pid {holder.pid}" in lock.read_text()  # the dead holder's note is still there
    t0 = time.monotonic()
    with runs.date_lock(s, D, purpose="backfill"):
        assert time.monotonic() - t0 < 1  # the kernel dropped the flock with the process
        assert lock.read_text().startswith(f"pid {os.getpid()} (backfill")


def _attempt(s, day: date, status: str | None, jobs=("loans",)) -> None:
    ended = None if status is None else "2026-03-05T00:00:00+00:00"
    runs.save_attempt(s, day, {"run_id": f"r{day}", "started": "2026-03-05T00:00:00+00:00", "ended": ended,
                               "status": status, "trigger": "backfill", "jobs": {j: {} for j in jobs}})


def test_killed_backfill_resumes_where_it_stopped(home) -> None:
    s = load_settings()
    # a backfill of 1..5 March was killed during the 3rd: 1 and 2 done, 3 never finished
    _attempt(s, date(2026, 3, 1), "success")
    _attempt(s, date(2026, 3, 2), "success")
    _attempt(s, date(2026, 3, 3), None)
    plan = backfill.plan(s, date(2026, 3, 1), date(2026, 3, 5), "missing", jobs=["loans"])
    assert [(p.day.day, p.run) for p in plan] == [(1, False), (2, False), (3, True), (4, True), (5, True)]
    assert plan[2].why == "last run interrupted" and plan[3].why == "never ran"
    failed_only = backfill.plan(s, date(2026, 3, 1), date(2026, 3, 5), "failed", jobs=["loans"])
    assert [p.day.day for p in failed_only if p.run] == [3]  # interrupted; never-run dates are mode=missing's
    wider = backfill.plan(s, date(2026, 3, 1), date(2026, 3, 2), "missing", jobs=["loans", "sales"])
    assert all(p.run for p in wider)  # a job that was not in the earlier run still needs running


def test_backfill_dry_run_prints_the_plan_and_runs_nothing(home) -> None:
    from typer.testing import CliRunner

    from nightshift.cli import app

    s = load_settings()
    _attempt(s, date(2026, 3, 1), "success")
    _attempt(s, date(2026, 3, 2), "partial")
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    out = CliRunner().invoke(app, ["backfill", "--start", "2026-03-01", "--end", "2026-03-03", "--jobs", "loans",
                                   "--dry-run"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    lines = {line.split("│")[1].strip(): line for line in out.output.splitlines() if "│ 2026-03-0" in line}
    assert "skip" in lines["2026-03-01"] and "already succeeded" in lines["2026-03-01"]
    assert "run" in lines["2026-03-02"] and "last run partial" in lines["2026-03-02"]
    assert "run" in lines["2026-03-03"] and "never ran" in lines["2026-03-03"]
    assert "dry run: nothing was run" in out.output
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before  # no file written, no Prefect home


def test_mode_failed_reruns_only_failed_dates_and_missing_only_unrun_ones(home) -> None:
    s = load_settings()
    _attempt(s, date(2026, 3, 1), "failed")
    _attempt(s, date(2026, 3, 2), "success")
    missing = backfill.plan(s, date(2026, 3, 1), date(2026, 3, 3), "missing", jobs=["loans"])
    assert [p.day.day for p in missing if p.run] == [3] and "mode=failed" in missing[0].why
    failed = backfill.plan(s, date(2026, 3, 1), date(2026, 3, 3), "failed", jobs=["loans"])
    assert [p.day.day for p in failed if p.run] == [1]
