"""The night: `run_night` owns the whole sequence for one run date; its steps are plain functions.

The sequence is lock, attempt record, sweep of killed builds, ingest, the jobs, data quality,
publish, record. Where each step runs is the caller's choice, passed in as `submit`: the CLI,
backfill and the bench use `LocalSteps` (threads here, transient failures retried), the Prefect
flow in `flows/` passes Prefect's task submission (or Dask's, through its task runner). Every step
opens the warehouse by its path, so it may run in another process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from nightshift import (
    __version__,
    alerts,
    estimate,
    ingest,
    nightlog,
    publish,
    reporting,
    runs,
    shareable,
    trends,
)
from nightshift.jobs import JOBS, JobContext, get_job, preload
from nightshift.night_pages import (
    JobOutcome,
    carry_over,
    failed,
    overall_status,
    previous_manifest,
    publish_night,
)
from nightshift.settings import Settings
from nightshift.sources import input_stamp, latest_complete_date, latest_drop
from nightshift.steps import Submit, steps_for
from nightshift.tables import DAILY_TABLES
from nightshift.warehouse import Warehouse

log = logging.getLogger(__name__)

WAREHOUSE_WAIT_S = 3600.0  # a step in another process waits its turn for the warehouse's write lock

class NoCompleteDate(RuntimeError):
    """There is no date for which every daily table has data."""


def job_input_hash(settings: Settings, warehouse: Warehouse, job: str, run_date: date) -> str:
    """A fingerprint of what a job's result depends on: its tables' drops, the settings, the code version."""
    prints = table_fingerprints(warehouse, run_date, list(get_job(job).tables))
    text = (f"{__version__}|{job}|{run_date}|{settings.model_dump_json(exclude={'home', 'jobs'})}|"
            + "|".join(f"{t}={h}" for t, h in sorted(prints.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_job(settings: Settings, warehouse: Warehouse, run_date: date, job: str, build: Path,
            loads: dict[str, ingest.TableLoad], force: bool = False) -> JobOutcome:
    """Run one job into `build/<job>/` and `build/<job>.html`; reuse the last result if nothing changed."""
    spec = get_job(job)
    start = time.perf_counter()
    bad = [loads[t].problem for t in spec.tables if t in loads and not loads[t].usable]
    if bad:
        return JobOutcome(job, "skipped", error="; ".join(p for p in bad if p))
    digest = job_input_hash(settings, warehouse, job, run_date)
    prev = previous_manifest(settings, run_date)
    prev_job = (prev or {}).get("jobs", {}).get(job)
    if not force and prev_job and prev_job["status"] in ("success", "reused") and prev_job["input_hash"] == digest:
        carry_over(settings, run_date, job, build)
        out = JobOutcome(**{**prev_job, "status": "reused", "seconds": time.perf_counter() - start})
        return out
    preload([job])  # only a job that computes imports its libraries: a reused energy job never loads TensorFlow
    ctx = JobContext(job=job, run_date=run_date, settings=settings, warehouse=warehouse, out_dir=build / job)
    result = spec.run(ctx)
    context = {**result.context}
    if "privacy" in ctx.__dict__:  # the job used the privacy layer: its page shows the Privacy section
        context.setdefault("privacy", ctx.privacy.section())
    tonight = trends.measures(job, {"status": "success", "summary": result.summary,
                                    "seconds": time.perf_counter() - start}, _day_rows(loads))
    reporting.write_page(build / f"{job}.html", f"{job}.html.j2", run_date=run_date, job=job,
                         title=spec.title, warnings=result.warnings, selections=result.selections,
                         answer=result.headline, **context,
                         trends=trends.job_trends(job, trends.earlier_nights(settings.reports_dir, run_date), run_date,
                                                  tonight))
    outputs = sorted(str(p.relative_to(build)) for p in (build / job).glob("*")) if (build / job).exists() else []
    releases = ctx.privacy.results if "privacy" in ctx.__dict__ else []
    return JobOutcome(job, "success", time.perf_counter() - start, digest, result.summary, result.models,
                      result.warnings, outputs=[*outputs, f"{job}.html"], extra=result.extra,
                      selections=result.selections, shareable=shareable.collect(build, job, releases, spec.shareable),
                      headline=result.headline)


def _day_rows(loads: dict[str, ingest.TableLoad]) -> dict[str, dict[str, int]]:
    """The date's own drop per table, as the manifest's `inputs` hold it (what `trends.measures` reads)."""
    return {t: {"day_rows_read": load.day_rows_read, "day_rows_quarantined": load.day_rows_quarantined}
            for t, load in loads.items()}


def table_fingerprints(warehouse: Warehouse, run_date: date, tables: list[str]) -> dict[str, str]:
    """Per table, a hash over the input hashes of every drop loaded up to the run date."""
    rows = warehouse.run_sql("staging/ingest_fingerprint", tables=tables, run_date=run_date)
    return dict(zip(rows["table_name"].to_list(), rows["fingerprint"].to_list(), strict=True))


def data_quality(warehouse: Warehouse, run_date: date, loads: dict[str, ingest.TableLoad]) -> dict[str, dict]:
    """Per table: rows read, loaded and quarantined over every drop up to D, reasons, missing drops."""
    out = {}
    for row in warehouse.run_sql("staging/ingest_summary", run_date=run_date).iter_rows(named=True):
        reasons: dict[str, int] = {}
        for text in row["reasons"] or []:
            for rule, n in json.loads(text).items():
                reasons[rule] = reasons.get(rule, 0) + n
        missing = []
        if row["table_name"] in DAILY_TABLES:
            have = set(row["days"])
            span = (row["last_drop"] - row["first_drop"]).days
            missing = [d for i in range(span + 1) if (d := row["first_drop"] + timedelta(days=i)) not in have]
        load = loads.get(row["table_name"])
        out[row["table_name"]] = {
            "drops": row["drops"], "rows_read": row["rows_read"], "rows_loaded": row["rows_loaded"],
            "rows_quarantined": row["rows_quarantined"], "first_drop": row["first_drop"], "last_drop": row["last_drop"],
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])), "missing_drops": missing,
            "usable": load.usable if load else True, "problem": load.problem if load else None,
            "errors": load.errors if load else [], "day_rows_read": load.day_rows_read if load else 0,
            "day_rows_quarantined": load.day_rows_quarantined if load else 0,
            "drops_loaded_now": load.partitions_loaded if load else 0,
        }
    return out


def new_attempt(trigger: str) -> dict[str, Any]:
    """A fresh attempt record."""
    return {"run_id": uuid.uuid4().hex[:12], "started": runs.now(), "ended": None, "trigger": trigger}


def ingest_step(settings: Settings, run_date: date, tables: list[str] | None = None) -> dict[str, ingest.TableLoad]:
    """Ingest every table (or `tables`) up to `run_date`, opening the warehouse by its path."""
    with Warehouse.open(settings, wait_s=WAREHOUSE_WAIT_S) as wh:
        return ingest.ingest(settings, wh, run_date, tables)


def job_step(settings: Settings, run_date: date, job: str, build: Path, loads: dict[str, ingest.TableLoad],
             force: bool = False) -> JobOutcome:
    """Run one job into the build, opening the warehouse by its path (the step may run on a worker)."""
    with Warehouse.open(settings, wait_s=WAREHOUSE_WAIT_S) as wh:
        return run_job(settings, wh, run_date, job, Path(build), loads, force)


def publish_step(settings: Settings, run_date: date, build: Path, outcomes: list[JobOutcome],
                 attempt: dict[str, Any], fingerprints: dict[str, str], quality: dict[str, dict]) -> str:
    """Publish the night's build; the path of its page."""
    return str(publish_night(settings, run_date, build, outcomes, attempt, fingerprints, quality))


# -- the night ---------------------------------------------------------------------------------------
@dataclass
class NightResult:
    """How one night ended: its status, its page, and per job how it ended."""

    run_date: date
    status: str
    report: str
    jobs: dict[str, dict[str, Any]]
    alerted: bool = False
    log: str = ""  # the night's log file (nightlog)

    def as_dict(self) -> dict[str, Any]:
        """The result as plain data (what the Prefect flow returns and alerts read)."""
        return {"run_date": self.run_date.isoformat(), "status": self.status, "report": self.report,
                "jobs": self.jobs, "log": self.log, **({"alerted": True} if self.alerted else {})}


def run_night(settings: Settings, run_date: date | None = None, jobs: list[str] | None = None, *,
              submit: Submit | None = None, force: bool = False, trigger: str = "manual",
              lock_wait_s: float = 0.0, progress: Callable[[str], None] | None = None) -> NightResult:
    """Run one night: every table up to `run_date` (default: the latest complete date), then the jobs.

    The date's lock is held throughout; a job that fails does not stop the others; the build is
    published in one swap; the attempt is recorded; a night that did not succeed raises an alert.
    `progress` hears one line per finished stage and job (the terminal shows them as they come); the
    night's log file gets them whoever listens.
    """
    if submit is None:
        with steps_for(settings) as steps:
            return run_night(settings, run_date, jobs, submit=steps, force=force, trigger=trigger,
                             lock_wait_s=lock_wait_s, progress=progress)
    names = jobs or settings.jobs or list(JOBS)
    run_date = _checked_date(settings, run_date, sorted({t for n in names for t in get_job(n).tables}), names)
    with runs.date_lock(settings, run_date, wait_s=lock_wait_s, purpose=trigger):
        attempt = new_attempt(trigger)
        attempt["log"] = str(nightlog.log_path(settings, run_date, attempt["run_id"]))
        with nightlog.night_log(Path(attempt["log"])):
            _run_locked(settings, run_date, names, submit, force, attempt, _told(progress))
    report = attempt["report"]
    log.info("night of %s: %s — %s", run_date, attempt["status"], report)
    result = NightResult(run_date, attempt["status"], report, attempt["jobs"], log=attempt["log"])
    if result.status != "success":
        alerts.on_result(settings, result.as_dict(), trigger)
        result.alerted = True
    return result


def _run_locked(settings: Settings, run_date: date, names: list[str], submit: Submit, force: bool,
                attempt: dict[str, Any], progress: Callable[[str], None]) -> None:
    """The night under its date's lock: ingest, the jobs, publish; `attempt` is filled in and saved."""
    attempt["input_stamp"] = input_stamp(settings, run_date)
    runs.save_attempt(settings, run_date, attempt)
    publish.sweep_orphans(settings.reports_dir, run_date.isoformat())
    build = publish.new_build_dir(settings.reports_dir, run_date.isoformat())
    progress(f"{run_date}: loading the tables")
    loads = submit("ingest", ingest_step, settings, run_date).result()
    progress(_loaded(loads))
    order = estimate.longest_first(settings, names, run_date)
    futures = {j: submit(f"job {j}", job_step, settings, run_date, j, build, loads, force) for j in order}
    for job, future in futures.items():
        future.add_done_callback(lambda f, job=job: progress(_finished(job, f)))
    progress(f"running {', '.join(order)}")
    outcomes = [_outcome(j, futures[j]) for j in names]
    with Warehouse.open(settings, wait_s=WAREHOUSE_WAIT_S) as wh:
        prints = table_fingerprints(wh, run_date, list(loads))
        quality = data_quality(wh, run_date, loads)
    report = submit("publish", publish_step, settings, run_date, build, outcomes, attempt, prints,
                    quality).result()
    progress(f"published {report}")
    attempt.update(ended=runs.now(), status=overall_status(outcomes), report=report,
                   jobs={o.job: {"status": o.status, "seconds": round(o.seconds, 2), "error": o.error,
                                 "input_hash": o.input_hash, "selections": o.selections} for o in outcomes},
                   tables={t: {"read": q["rows_read"], "loaded": q["rows_loaded"],
                               "quarantined": q["rows_quarantined"], "problem": q["problem"],
                               "notes": [e for e in q["errors"] if e != q["problem"]]}
                           for t, q in quality.items()})
    runs.save_attempt(settings, run_date, attempt)


def _told(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    """A progress callback that also writes each line to the night's log file."""
    def say(line: str) -> None:
        nightlog.PROGRESS.info(line)
        if progress is not None:
            progress(line)
    return say


def _checked_date(settings: Settings, run_date: date | None, tables: list[str], names: list[str]) -> date:
    """The date to run: the one asked for, unless no table the jobs need has data that late; by default
    the newest date for which every one of those tables has data (a loans-only setup waits for no sales)."""
    if run_date is not None:
        newest = latest_drop(settings, tables)
        if newest is None or run_date > newest:
            raise NoCompleteDate(f"no data for {run_date} yet: the newest date with data for "
                                 f"{', '.join(tables)} is {newest or 'none'}; run that date or deliver {run_date}'s")
        return run_date
    latest = latest_complete_date(settings, tables)
    if latest is None:
        raise NoCompleteDate(f"no date has data for every table that {', '.join(names)} need(s) "
                             f"(in {settings.landing_dir} or [sources.*]): run `make demo` or configure sources")
    return latest


def _loaded(loads: dict[str, ingest.TableLoad]) -> str:
    rows = sum(load.rows_loaded for load in loads.values())
    bad = sum(load.rows_quarantined for load in loads.values())
    unusable = [t for t, load in loads.items() if not load.usable]
    return (f"loaded {len(loads)} table{'' if len(loads) == 1 else 's'}: {rows:,} rows new, {bad:,} quarantined"
            + (f"; not usable tonight: {', '.join(unusable)}" if unusable else ""))


def _finished(job: str, future: Any) -> str:
    try:
        outcome = future.result()
    except Exception as e:
        return f"{job}: failed ({type(e).__name__}: {e})"
    why = f" ({outcome.error})" if outcome.error else ""
    return f"{job}: {outcome.status} in {outcome.seconds:.0f} s{why}"


def _outcome(job: str, future: Any) -> JobOutcome:
    try:
        return future.result()
    except Exception as e:  # one job's failure must not stop the night
        nightlog.record_traceback(f"job {job} failed: {e}", e)
        return failed(job, e)
