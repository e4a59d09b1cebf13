"""The nightly Prefect flow: the application shell around `nightshift.night.run_night`.

The night's sequence lives in `run_night`; this flow hands it Prefect's task submission, so every
step (ingest, each job, publish) is a Prefect task run with retries of transient failures, on the
task runner the settings ask for: Dask at `dask_address`, else a local thread pool.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from nightshift import alerts, night, steps
from nightshift.settings import Settings, load_settings


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass by itself (`steps.is_transient`): I/O errors, a locked file, a timeout."""
    try:
        state.result()
    except BaseException as e:
        return steps.is_transient(e)
    return False


RETRY = dict(retries=steps.RETRIES, retry_delay_seconds=exponential_backoff(backoff_factor=steps.BACKOFF_S),
             retry_condition_fn=_transient, cache_policy=NO_CACHE)


@task(name="step", task_run_name="{step}", **RETRY)
def step_task(step: str, fn: Any, *args: Any) -> Any:
    return fn(*args)


def prefect_submit(step: str, fn: Any, *args: Any) -> Any:
    """`night.Submit` for Prefect: each step a task run on the flow's task runner."""
    return step_task.submit(step, fn, *args)


@flow(name="nightly", log_prints=True, on_failure=[alerts.prefect_on_failure],
      on_crashed=[alerts.prefect_on_failure])
def nightly(run_date: date | None = None, jobs: list[str] | None = None, force: bool = False,
            trigger: str = "manual", lock_wait_s: float = 0.0) -> dict[str, Any]:
    """Run one night: every table up to `run_date` (default: the latest complete date), then the jobs."""
    result = night.run_night(load_settings(), run_date, jobs, submit=prefect_submit, force=force, trigger=trigger,
                             lock_wait_s=lock_wait_s)
    return result.as_dict()


def select_runner(settings: Settings) -> Any:
    """The Prefect task runner the settings ask for: Dask at `dask_address`, else a local thread pool."""
    if settings.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=settings.dask_address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=settings.max_workers)


def run_nightly(**kwargs: Any) -> dict[str, Any]:
    """Run `nightly` on the task runner the settings ask for."""
    return nightly.with_options(task_runner=select_runner(load_settings()))(**kwargs)


if __name__ == "__main__":
    run_nightly()
