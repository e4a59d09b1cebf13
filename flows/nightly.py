"""The nightly Prefect flow: ingest every table up to D, run the jobs in parallel, publish the night.

Thin wiring only: the work is in `nightshift.night`, `nightshift.ingest` and the jobs.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from nightshift import alerts, ingest, night, publish, runs
from nightshift.dask_runner import run_job_at, select_runner
from nightshift.jobs import JOBS, preload
from nightshift.settings import Settings, load_settings
from nightshift.sources import input_stamp, latest_complete_date
from nightshift.warehouse import Warehouse, WarehouseBusy

TRANSIENT = (OSError, TimeoutError, duckdb.IOException, WarehouseBusy)


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass by itself: I/O errors, a locked file, a timeout."""
    try:
        state.result()
    except TRANSIENT as e:
        return not isinstance(e, FileNotFoundError | PermissionError)
    except BaseException:
        return False
    return False


RETRY = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_condition_fn=_transient,
             cache_policy=NO_CACHE)


@task(name="ingest", **RETRY)
def ingest_task(settings: Settings, warehouse: Warehouse, run_date: date) -> dict[str, ingest.TableLoad]:
    return ingest.ingest(settings, warehouse, run_date)


@task(name="job", task_run_name="{job}", **RETRY)
def job_task(settings: Settings, run_date: date, job: str, build: Any,
             loads: dict[str, ingest.TableLoad], force: bool) -> night.JobOutcome:
    # By path, not the flow's connection: the task may run on a Dask worker in another process.
    return run_job_at(settings, run_date, job, build, loads, force)


@task(name="publish", **RETRY)
def publish_task(settings: Settings, run_date: date, build: Any, outcomes: list, attempt: dict,
                 fingerprints: dict, quality: dict) -> str:
    return str(night.publish_night(settings, run_date, build, outcomes, attempt, fingerprints, quality))


@flow(name="nightly", log_prints=True, on_failure=[alerts.prefect_on_failure],
      on_crashed=[alerts.prefect_on_failure])
def nightly(run_date: date | None = None, jobs: list[str] | None = None, force: bool = False,
            trigger: str = "manual", lock_wait_s: float = 0.0) -> dict[str, Any]:
    """Run one night: every table up to `run_date` (default: the latest complete date), then the jobs."""
    logger = get_run_logger()
    settings = load_settings()
    run_date = run_date or latest_complete_date(settings)
    if run_date is None:
        raise RuntimeError(f"no complete date in {settings.landing_dir}: run `make demo` or configure sources")
    names = jobs or settings.jobs or list(JOBS)
    with runs.date_lock(settings, run_date, wait_s=lock_wait_s, purpose=trigger):
        attempt = night.new_attempt(trigger)
        attempt["input_stamp"] = input_stamp(settings, run_date)
        runs.save_attempt(settings, run_date, attempt)
        publish.sweep_orphans(settings.reports_dir, run_date.isoformat())
        build = publish.new_build_dir(settings.reports_dir, run_date.isoformat())
        with Warehouse.open(settings) as wh:
            loads = ingest_task(settings, wh, run_date)
        preload(names)
        futures = {j: job_task.submit(settings, run_date, j, build, loads, force) for j in names}
        outcomes = []
        for j, fut in futures.items():
            try:
                outcomes.append(fut.result())
            except Exception as e:  # one job's failure must not stop the night
                logger.error("job %s failed: %s", j, e)
                outcomes.append(night.failed(j, e))
        wh = Warehouse.open(settings)
        prints = night.table_fingerprints(wh, run_date, list(loads))
        quality = night.data_quality(wh, run_date, loads)
        wh.close()
        index = publish_task(settings, run_date, build, outcomes, attempt, prints, quality)
        attempt.update(ended=runs.now(), status=night.overall_status(outcomes), report=index,
                       jobs={o.job: {"status": o.status, "seconds": round(o.seconds, 2), "error": o.error,
                                     "input_hash": o.input_hash} for o in outcomes},
                       tables={t: {"read": q["rows_read"], "loaded": q["rows_loaded"],
                                   "quarantined": q["rows_quarantined"], "problem": q["problem"]}
                               for t, q in quality.items()})
        runs.save_attempt(settings, run_date, attempt)
    logger.info("night of %s: %s — %s", run_date, attempt["status"], index)
    result = {"run_date": run_date.isoformat(), "status": attempt["status"], "report": index, "jobs": attempt["jobs"]}
    if result["status"] != "success":
        alerts.on_result(settings, result, trigger)
        result["alerted"] = True
    return result


def run_nightly(**kwargs: Any) -> dict[str, Any]:
    """Run `nightly` on the task runner the settings ask for: Dask at `dask_address`, else local threads."""
    return nightly.with_options(task_runner=select_runner(load_settings()))(**kwargs)


if __name__ == "__main__":
    run_nightly()
