"""How long a backfill will take: training nights and scoring nights, each at its own median pace.

A night on which a job trains (`nightshift.cadence`) costs several times one on which all only
score, so the plan's dates are split the way the cadence will split them, and each kind is priced
at the median wall time of the nights of that kind already run in this home (from the run records
and the jobs' state stores). While the backfill runs, the nights it has finished take over.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime

from nightshift import cadence, runs
from nightshift.settings import Settings
from nightshift.state import JobState

RECENT = 30  # past nights of each kind that price the next ones


def training_nights(settings: Settings, jobs: list[str]) -> set[date]:
    """Nights on which one of `jobs` trained, from their state stores."""
    out: set[date] = set()
    for job in jobs:
        out |= set(JobState(settings.models_dir, job).days(cadence.NAME))
    return out


def will_train(settings: Settings, jobs: list[str], days: list[date]) -> dict[date, bool]:
    """For each of `days` (oldest first), whether a cadence job trains on it when they run in order."""
    out = {}
    last: dict[str, date | None] = {}
    for job in jobs:
        done = sorted(d for d in training_nights(settings, [job]) if d < days[0]) if days else []
        last[job] = done[-1] if done else None
    for day in days:
        training = [job for job in jobs if cadence.trains(settings.cadence(job), last[job], day)]
        last.update(dict.fromkeys(training, day))
        out[day] = bool(training)
    return out


@dataclass
class Pace:
    """Seconds per night of each kind (True: a training night), from the past and from this run."""

    past: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})
    now: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})

    def seconds(self, trains: bool) -> float | None:
        """The median of this run's nights of that kind, else the past's, else the other kind's."""
        for pool in (self.now[trains], self.past[trains], self.now[not trains], self.past[not trains]):
            if pool:
                return statistics.median(pool[-RECENT:])
        return None

    def left(self, kinds: list[bool]) -> float | None:
        """Seconds for nights of these kinds; None with nothing to go on."""
        each = [self.seconds(k) for k in kinds]
        return None if any(s is None for s in each) else sum(each)  # type: ignore[misc]


def past_pace(settings: Settings, jobs: list[str], trainers: list[str]) -> Pace:
    """Wall seconds of the nights recorded in this home that computed all of `jobs`, by kind."""
    trained = training_nights(settings, trainers)
    pace = Pace()
    for record in runs.all_records(settings):
        attempt = runs.last_attempt(record)
        if attempt is None or runs.attempt_status(attempt) != "success" or not _computed(attempt, jobs):
            continue
        seconds = (datetime.fromisoformat(attempt["ended"]) - datetime.fromisoformat(attempt["started"])).total_seconds()
        pace.past[date.fromisoformat(record["run_date"]) in trained].append(seconds)
    return pace


def _computed(attempt: dict, jobs: list[str]) -> bool:
    """Whether the night computed every job (none reused from an earlier run, none left out)."""
    ran = attempt.get("jobs", {})
    return all(ran.get(j, {}).get("status") == "success" for j in jobs)


def longest_first(settings: Settings, jobs: list[str], run_date: date) -> list[str]:
    """`jobs` in the order a night starts them: the longest first. A night lasts as long as its
    busiest thread, and a long job started last, after the short ones, runs on alone (the listed
    order started energy, the second longest on a training night, last: the small demo's training
    night of 2026-11-23 took 63 s that way, 55 s longest first). Each job is priced by its seconds
    on its newest earlier night of tonight's kind for it (training or scoring); a job with no such
    night starts first (it may be long), in the given order."""
    states = {job: JobState(settings.models_dir, job) for job in jobs}
    trained = {job: set(states[job].days(cadence.NAME)) for job in jobs}
    trains = {job: job in cadence.JOBS and cadence.plan(states[job], settings.cadence(job), run_date).trains
              for job in jobs}
    seconds: dict[str, float] = {}
    for record in runs.all_records(settings):  # newest first
        day, attempt = date.fromisoformat(record["run_date"]), runs.last_attempt(record)
        if day >= run_date or attempt is None:
            continue
        for job, ran in attempt.get("jobs", {}).items():
            if (job in trains and job not in seconds and ran.get("status") == "success"
                    and (day in trained[job]) == trains[job]):
                seconds[job] = ran["seconds"]
        if len(seconds) == len(jobs):
            break
    return sorted(jobs, key=lambda job: -seconds.get(job, float("inf")))


def cadence_jobs(jobs: list[str] | None) -> list[str]:
    """The jobs of the run that train on a cadence."""
    return [j for j in cadence.JOBS if jobs is None or j in jobs]


def describe(seconds: float | None) -> str:
    """'about 12 min', for the terminal."""
    if seconds is None:
        return "unknown (no night has run in this home yet)"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    minutes = seconds / 60
    return f"about {minutes:.0f} min" if minutes < 90 else f"about {minutes / 60:.1f} h"
