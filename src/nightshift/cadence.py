"""When a job trains: every night, weekly or monthly (`[retrain]` in the settings); it scores every night.

A training night fits the job's candidates and judges them on a holdout; the nights after it, up
to the next training night, score tonight's data with what that night chose. The first night a job
runs in each period trains: the first of each ISO week (Monday to Sunday) for `weekly`, of each
calendar month for `monthly`. A night also trains when nothing was trained earlier in its period
(a fresh home, a backfill that starts mid-week) or what was trained cannot be used.

Which night trained is read from the job's state store for dates before D only, so a night scores
with the model of its own period's training night, never one trained on later data, and a backfill
run in date order makes the same choices as the nightly runs of those dates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from nightshift.jobs import JobContext
    from nightshift.selection import Judge
    from nightshift.state import JobState

Cadence = Literal["nightly", "weekly", "monthly"]
DEFAULT: Cadence = "weekly"
JOBS = ("behavior", "sales", "loans", "inventory", "energy")  # behavior: its click-through model
NAME = "trained"  # state name: one entry per training night, with what it chose
KEEP = 60  # training nights kept in the state store


def period_start(cadence: str, day: date) -> date:
    """The first day of the period `day` falls in."""
    if cadence == "weekly":
        return day - timedelta(days=day.weekday())
    if cadence == "monthly":
        return day.replace(day=1)
    return day


def next_training(cadence: str, day: date) -> date:
    """The first day of the period after `day`'s: the next night that trains."""
    if cadence == "weekly":
        return period_start(cadence, day) + timedelta(days=7)
    if cadence == "monthly":
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day + timedelta(days=1)


@dataclass(frozen=True)
class Plan:
    """Tonight's part in the cadence: train or score, and with what a training night left."""

    cadence: str
    trains: bool
    last_trained: date | None  # the newest training night before tonight
    kept: dict[str, Any] | None  # what that night saved, when tonight scores with it
    note: str | None = None  # why tonight trains out of turn

    def page(self, run_date: date) -> dict[str, Any]:
        """What the job's page says about it."""
        return {"cadence": self.cadence, "trained": self.trains,
                "last_trained": str(run_date if self.trains else self.last_trained),
                "next_training": str(next_training(self.cadence, run_date)),
                **({"note": self.note} if self.note else {})}


def trains(cadence: str, last_trained: date | None, day: date) -> bool:
    """Whether `day` trains: yes on the first night of each period, or when no night earlier in the
    period trained."""
    return cadence == "nightly" or last_trained is None or last_trained < period_start(cadence, day)


def plan(store: JobState, cadence: str, run_date: date) -> Plan:
    """Tonight's plan, from the newest training night before it in the job's state store."""
    found = store.latest(NAME, before=run_date)
    last = found[0] if found else None
    if trains(cadence, last, run_date):
        return Plan(cadence, True, last, None)
    return Plan(cadence, False, last, found[1])  # type: ignore[index]


def lost_to_baseline(judge: Judge, published: str, scores: dict[str, float], baselines: list[str]) -> list[str]:
    """Between training nights: a warning when a baseline beats the model in use on tonight's holdout
    (the page says so; the next training night judges again)."""
    sign = 1 if judge.higher_is_better else -1
    best = max(baselines, key=lambda name: sign * scores[name])
    if best == published or sign * scores[best] <= sign * scores[published]:
        return []
    return [f"the model in use, {published}, lost to the baseline {best} on tonight's holdout ({judge.metric} "
            f"{scores[published]:.4g} vs {scores[best]:.4g}); the next training night judges again"]


def record(store: JobState, run_date: date, payload: dict[str, Any]) -> None:
    """Remember that tonight trained, with what later nights of the period score with."""
    store.save(NAME, run_date, payload, keep=KEEP)


def tonight(ctx: JobContext, loader: Callable[[Path], Any],
            usable: Callable[[dict[str, Any]], bool] = lambda metadata: True) -> tuple[Plan, Any]:
    """Tonight's plan for a job with one model, and the model it scores with when it does not train:
    the version its period's training night chose (saved as `{"version": ...}`), loaded by version so
    that a later night's champion never scores an earlier date. A version that is gone, does not load
    or is not `usable` (fed other inputs than tonight's) makes tonight a training night."""
    from nightshift.registry import RegistryError

    found = plan(ctx.state, ctx.settings.cadence(ctx.job), ctx.run_date)
    if found.trains:
        return found, None
    try:
        model = ctx.registry.load(str((found.kept or {}).get("version")), loader)
    except RegistryError as e:
        return replace(found, trains=True, kept=None, note=f"trained out of turn: {e}"), None
    if not usable(model.metadata):
        return replace(found, trains=True, kept=None, note=f"trained out of turn: the model chosen on "
                       f"{found.last_trained} was fed other inputs than tonight's"), None
    return found, model
