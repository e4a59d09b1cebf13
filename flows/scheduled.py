"""The scheduled Prefect flow (the deployment's entrypoint): yesterday's night plus missed nights.

`nightshift serve` and `prefect deploy` (prefect.yaml) both run this flow on the cron line and
time zone from the settings; each night runs as the `nightly` flow (a subflow, with its tasks).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow

from flows.nightly import nightly
from nightshift import schedule
from nightshift.settings import load_settings


def _scheduled_start(default: datetime) -> datetime:
    """When this run was scheduled to start (the fire it is for); `default` outside a Prefect run."""
    try:
        from prefect.runtime import flow_run

        at = flow_run.scheduled_start_time
        return at if at is not None and at.tzinfo is not None else default
    except Exception:  # not inside a Prefect run
        return default


@flow(name="nightly-scheduled", log_prints=True)
def scheduled_nightly() -> list[dict[str, Any]]:
    """The flow a schedule fires: yesterday (local to the schedule) plus missed nights per the catch-up policy."""
    settings = load_settings()
    current, plan = schedule.plan_for_fire(settings, _scheduled_start(datetime.now(UTC)))
    print(f"scheduled night {current}: {plan.why}")
    return schedule.run_plan(settings, plan, nightly)
