"""When nights run: the cron schedule in local time, catch-up after downtime, and Prefect `serve`.

The date logic is pure (`fire_times`, `run_date_for`, `due_dates`, `catch_up_plan`): it takes
`now`, the time zone, the cron line, the last good night and the policy, and returns dates.
Cron fields are matched against *wall-clock* time and then placed in the zone, so a daylight
saving change neither skips a night (02:30 that does not exist in spring fires at 03:30, just
after the gap) nor doubles one (02:30 that happens twice in autumn fires once, the first time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from nightshift import runs
from nightshift.settings import Settings, SettingsError

Policy = Literal["all", "latest", "none"]
DONE = ("success", "partial")  # a night that ran to the end; failed jobs are for `backfill --mode failed`


def zone(name: str) -> ZoneInfo:
    """The time zone `name`, or a settings error that says what to write instead."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"timezone {name!r} is not an IANA time zone (for example Europe/Berlin or UTC)") from None


def check_cron(cron: str) -> str:
    """The cron line if it parses, else a settings error naming it."""
    try:
        CronSim(cron, datetime(2000, 1, 1))
    except (CronSimError, ValueError) as e:
        raise SettingsError(f"schedule_cron {cron!r} is not a cron line ({e}); the default is '0 2 * * *'") from None
    return cron


def _place(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in `tz` as UTC. fold=0: in an autumn fold the first pass; in a spring gap
    the old offset, i.e. as long after the jump as the time was after its start (02:30 -> 03:30)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def fire_times(cron: str, tz_name: str, start: datetime, end: datetime) -> Iterator[datetime]:
    """Scheduled instants in (start, end], as aware UTC datetimes, oldest first."""
    tz = zone(tz_name)
    local_start = start.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)  # cover a DST shift
    last: datetime | None = None
    for wall in CronSim(check_cron(cron), local_start):
        at = _place(wall, tz)
        if last is not None and at <= last:  # a gap-shifted time that meets the next one
            continue
        if at > end:
            return
        last = at
        if at > start:
            yield at


def run_date_for(fire: datetime, tz_name: str) -> date:
    """The business date a scheduled run processes: the local day before the one it fires on."""
    return fire.astimezone(zone(tz_name)).date() - timedelta(days=1)


def due_dates(cron: str, tz_name: str, now: datetime, since: date) -> list[date]:
    """Run dates whose scheduled run fell after the night of `since` and by `now`, oldest first."""
    tz = zone(tz_name)
    # Start the search at local midnight of the day after `since`: its fire (the day after that) counts.
    start = datetime.combine(since + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
    out: list[date] = []
    for at in fire_times(cron, tz_name, start - timedelta(seconds=1), now):
        d = run_date_for(at, tz_name)
        if d > since and (not out or d != out[-1]):
            out.append(d)
    return out


@dataclass(frozen=True)
class Plan:
    """What to run at a start or a scheduled fire: dates oldest first; `caught_up` are the missed ones."""

    dates: list[date]
    caught_up: list[date]
    left_out: list[date]  # missed, but past the limit or the policy: for `make backfill`
    why: str


def catch_up_plan(now: datetime, tz_name: str, cron: str, last_success: date | None, policy: Policy,
                  limit: int, current: date | None = None) -> Plan:
    """Which dates to run now: the current night (if any) plus missed ones per policy and limit.

    `current` is the date the running fire is for (None at a start-up without a fire). With no
    good night on record there is nothing to catch up: only the newest due date runs.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if last_success is None:
        recent = due_dates(cron, tz_name, now, run_date_for(now, tz_name) - timedelta(days=3))
        newest = current or (recent[-1] if recent else None)
        return Plan([newest] if newest else [], [], [], "no good night on record: only the newest date")
    missed = [d for d in due_dates(cron, tz_name, now, last_success) if d != current]
    if current is not None:
        missed = [d for d in missed if d < current]
    if policy == "none" or limit == 0:
        chosen: list[date] = []
    elif policy == "latest":
        chosen = missed[-1:]
    else:
        chosen = missed[-limit:]
    left = [d for d in missed if d not in chosen]
    dates = sorted({*chosen, *([current] if current else [])})
    why = (f"last good night {last_success}; {len(missed)} missed, policy={policy}, limit={limit}: "
           f"catching up {len(chosen)}" + (f", {len(left)} left for `make backfill`" if left else ""))
    return Plan(dates, chosen, left, why)


def last_success(settings: Settings) -> date | None:
    """The newest date whose last attempt ran to the end (success or partial)."""
    for rec in runs.all_records(settings):
        a = runs.last_attempt(rec)
        if a and runs.attempt_status(a) in DONE:
            return date.fromisoformat(rec["run_date"])
    return None


def next_fires(settings: Settings, now: datetime, n: int = 3) -> list[datetime]:
    """The next `n` scheduled instants after `now` (UTC)."""
    out = []
    for at in fire_times(settings.schedule_cron, settings.timezone, now, now + timedelta(days=400)):
        out.append(at)
        if len(out) == n:
            break
    return out


# -- running a plan, and the Prefect deployment ---------------------------------------------------------
# The scheduled Prefect flow lives in flows/scheduled.py; a deployment names it by entrypoint, as
# prefect.yaml does, so this module imports nothing from flows/ (it is the floor below).
ENTRYPOINT = "flows.scheduled:scheduled_nightly"

RunOne = Callable[..., dict[str, Any]]  # run_one(run_date=, trigger=, lock_wait_s=) -> the night's result


def plan_for_fire(settings: Settings, fired: datetime) -> tuple[date, Plan]:
    """The night a scheduled fire is for, and the plan: it plus missed nights per the catch-up policy."""
    current = run_date_for(fired, settings.timezone)
    return current, catch_up_plan(fired, settings.timezone, settings.schedule_cron, last_success(settings),
                                  settings.catch_up, settings.catch_up_limit, current=current)


def run_plan(settings: Settings, plan: Plan, run_one: RunOne, current_trigger: str = "schedule") -> list[dict[str, Any]]:
    """Run a plan's dates oldest first with `run_one`; alert on each night that did not succeed.

    A night that ends with a result has alerted already (`night.run_night`); one that raised is
    alerted here, unless `run_one` is a Prefect flow whose failure hooks alert.
    """
    from nightshift import alerts

    alerts_itself = bool(getattr(run_one, "on_failure_hooks", None))
    results = []
    for d in plan.dates:
        trigger = "catch-up" if d in plan.caught_up else current_trigger
        try:
            res = run_one(run_date=d, trigger=trigger, lock_wait_s=600.0)
        except Exception as e:  # a locked or broken date must not stop the others
            res = {"run_date": d.isoformat(), "status": "failed", "error": f"{type(e).__name__}: {e}", "jobs": {},
                   "alerted": alerts_itself}
        if res["status"] != "success" and not res.get("alerted"):
            alerts.notify(settings, alerts.event_from_result(res, trigger))
        results.append(res)
    return results


def serve(settings: Settings) -> None:
    """Serve the nightly deployment (flows/scheduled.py) in this process until stopped (Ctrl-C)."""
    from prefect import serve as prefect_serve
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron

    zone(settings.timezone)
    check_cron(settings.schedule_cron)
    flow = load_flow_from_entrypoint(ENTRYPOINT, use_placeholder_flow=False)
    prefect_serve(flow.to_deployment(name="nightly", schedules=[Cron(settings.schedule_cron, timezone=settings.timezone)],
                                     description="nightshift: yesterday's night, plus missed nights per catch_up"))
