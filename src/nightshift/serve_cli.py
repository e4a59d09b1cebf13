"""`nightshift serve`: catch up missed nights, then serve the nightly schedule with Prefect."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from nightshift import lifeline
from nightshift.cli_args import prefect_env, read_settings
from nightshift.settings import Settings

console = Console()


def _run_one(settings: Settings, **kwargs: Any) -> dict[str, Any]:
    from nightshift import night

    return night.run_night(settings, **kwargs).as_dict()


def serve_command(
    plan_only: Annotated[bool, typer.Option("--plan", help="Print the schedule and the catch-up plan; run nothing")] = False,
    no_catch_up: Annotated[bool, typer.Option("--no-catch-up", help="Skip the catch-up at start")] = False,
) -> None:
    """Serve the nightly deployment (cron and time zone from settings); first run missed nights per catch_up."""
    from nightshift import schedule
    from nightshift.settings import SettingsError

    s = read_settings()
    now = datetime.now(UTC)
    try:
        fires = schedule.next_fires(s, now)
        plan = schedule.catch_up_plan(now, s.timezone, s.schedule_cron, schedule.last_success(s), s.catch_up,
                                      s.catch_up_limit)
    except SettingsError as e:
        console.print(f"[red]settings error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    console.print(f"schedule: [bold]{s.schedule_cron}[/bold] in {s.timezone}; each run processes the day before")
    for at in fires:
        local = at.astimezone(schedule.zone(s.timezone))
        console.print(f"  next: {local:%Y-%m-%d %H:%M %Z} → night of {schedule.run_date_for(at, s.timezone)}")
    console.print(f"catch-up: {plan.why}")
    if plan.caught_up:
        console.print("  would run: " + ", ".join(d.isoformat() for d in plan.caught_up))
    if plan.left_out:
        console.print(f"  left out: {plan.left_out[0]} … {plan.left_out[-1]} "
                      f"(make backfill START={plan.left_out[0]} END={plan.left_out[-1]})")
    if plan_only:
        return
    prefect_env(s)
    lifeline.start()  # the run's children (process pools, Prefect's server) end with it, even on kill -9
    if plan.caught_up and not no_catch_up:
        catch = schedule.Plan(plan.caught_up, plan.caught_up, [], plan.why)
        for res in schedule.run_plan(s, catch, partial(_run_one, s)):
            console.print(f"  caught up {res['run_date']}: {res['status']}")
    console.print("serving: Ctrl-C to stop")
    schedule.serve(s)
