"""Backfills: plan which dates to (re)run and why, then run them oldest first, resumably.

A date that already succeeded on unchanged input is skipped, so killing a backfill and starting
it again continues where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nightshift import alerts, estimate, lifeline, runs
from nightshift.cli_args import parse_date, parse_jobs, prefect_env, read_settings
from nightshift.jobs import JOBS
from nightshift.settings import Settings

Mode = Literal["missing", "failed", "all"]
console = Console()


@dataclass(frozen=True)
class Planned:
    """One date of a backfill plan: run it or not, and why."""

    day: date
    run: bool
    why: str


def plan(settings: Settings, start: date, end: date, mode: Mode = "missing", force: bool = False,
         jobs: list[str] | None = None) -> list[Planned]:
    """Decide, date by date, what a backfill does. Pure: it reads run records only."""
    if end < start:
        raise ValueError(f"the backfill ends ({end}) before it starts ({start})")
    from nightshift.sources import input_stamp

    out = []
    day = start
    while day <= end:
        attempt = runs.last_attempt(runs.load_record(settings, day))
        status = runs.attempt_status(attempt) if attempt else None
        covers = attempt is not None and (jobs is None or set(jobs) <= set(attempt.get("jobs", {})))
        if force:
            out.append(Planned(day, True, "forced"))
        elif status is None:
            out.append(Planned(day, mode != "failed", "never ran" + (" (mode=failed)" if mode == "failed" else "")))
        elif mode == "all":
            out.append(Planned(day, True, f"mode=all (last: {status}); unchanged jobs are reused"))
        elif status == "interrupted":  # killed mid-run: it never finished, so a backfill resumes it
            out.append(Planned(day, True, "last run interrupted"))
        elif status in ("failed", "partial"):
            out.append(Planned(day, mode == "failed", f"last run {status}"
                               + ("" if mode == "failed" else " (rerun it with mode=failed)")))
        elif not covers:
            out.append(Planned(day, mode == "missing", "the last run did not include every requested job"))
        elif attempt.get("input_stamp") not in (None, input_stamp(settings, day)):
            out.append(Planned(day, mode == "missing", "its input changed since it succeeded"))
        else:
            out.append(Planned(day, False, "already succeeded" + (" (mode=failed)" if mode == "failed" else "")))
        day += timedelta(days=1)
    return out


def backfill_command(
    start: Annotated[str, typer.Option(help="First date, YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="Last date, YYYY-MM-DD")],
    jobs: Annotated[str | None, typer.Option(help="Comma-separated jobs (default: all)")] = None,
    mode: Annotated[str, typer.Option(help="missing (default): dates never run, or missing a job or a changed input; failed: only dates whose last run failed; all")] = "missing",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and run nothing")] = False,
    force: Annotated[bool, typer.Option("--force", help="Re-run every date and recompute every job")] = False,
) -> None:
    """Run a range of dates oldest first, skipping those already done; resumable after a kill."""

    s = read_settings()
    if mode not in ("missing", "failed", "all"):
        console.print(f"[red]--mode {mode!r}: use missing, failed or all[/red]")
        raise typer.Exit(2)
    first, last = parse_date(start, "--start"), parse_date(end, "--end")
    assert first and last
    names = parse_jobs(jobs)
    try:
        steps = plan(s, first, last, mode, force, names)  # type: ignore[arg-type]
    except ValueError as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(2) from None
    todo = [p for p in steps if p.run]
    run_jobs = names or s.jobs or list(JOBS)
    trainers = estimate.cadence_jobs(run_jobs)
    kinds = estimate.will_train(s, trainers, [p.day for p in todo])
    pace = estimate.past_pace(s, run_jobs, trainers)
    t = Table("date", "action", "why", title=f"backfill {first} → {last} (mode={mode})")
    for p in steps:
        action = ("run, trains" if kinds[p.day] else "run, scores") if p.run and trainers else (
            "run" if p.run else "skip")
        t.add_row(p.day.isoformat(), action, p.why)
    console.print(t)
    if todo:
        trains, seconds = sum(kinds.values()), pace.left(list(kinds.values()))
        console.print(f"{len(todo)} to run ({trains} training {_nights(trains)} for {', '.join(trainers) or 'none'}, "
                      f"{len(todo) - trains} scoring); estimated {estimate.describe(seconds)}"
                      + (" at this home's past pace" if seconds is not None else ""))
    if dry_run or not todo:
        console.print("dry run: nothing was run" if dry_run else "nothing to do")
        return
    prefect_env(s)
    lifeline.start()  # the run's children (process pools, Prefect's server) end with it, even on kill -9
    from nightshift import night
    from nightshift.jobs.sales.parallel import kept_pools

    done = failed = 0
    skipped = len(steps) - len(todo)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[left]}"), console=console) as bar, kept_pools():
        task = bar.add_task("backfill", total=len(todo), left="")
        for i, p in enumerate(todo):
            left = pace.left([kinds[q.day] for q in todo[i:]])
            bar.update(task, description=f"{p.day} (done {done}, failed {failed}, skipped {skipped})",
                       left=f"{estimate.describe(left)} left" if left is not None else "")
            started = time.perf_counter()
            try:
                result = night.run_night(s, p.day, names, force=force, trigger="backfill")
                ok = result.status == "success"
            except runs.DateLocked as e:
                console.print(f"[yellow]{escape(str(e))}[/yellow]")
                ok = False
            except Exception as e:  # keep going: the status shows the failed date
                console.print(f"[red]{p.day}: {escape(str(e))}[/red]")
                alerts.on_error(s, p.day, e, "backfill")
                ok = False
            if ok:
                pace.now[kinds[p.day]].append(time.perf_counter() - started)
            done += ok
            failed += not ok
            bar.advance(task)
        bar.update(task, description=f"done {done}, failed {failed}, skipped {skipped}", left="")
    if failed:
        raise typer.Exit(1)


def _nights(n: int) -> str:
    return "night" if n == 1 else "nights"
