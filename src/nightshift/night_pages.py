"""What a finished night publishes: the jobs' outcomes, the manifest, the night page, the index of nights.

`night.run_night` runs the sequence; this module turns its outcomes into the published build. A job
that failed or was left out of a subset run keeps its last good outputs for the date, carried into
the new build and marked with the run that made them; the build is swapped in whole (`publish`).
"""

from __future__ import annotations

import json
import shutil
import traceback
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

from nightshift import __version__, attention, change, publish, reporting, runs, shareable, trends
from nightshift.jobs import JOBS, get_job
from nightshift.settings import Settings


@dataclass
class JobOutcome:
    """How one job ended for one night, with what the index and manifest show about it."""

    job: str
    status: str  # success, failed, skipped (its data was unusable), reused (unchanged input)
    seconds: float = 0.0
    input_hash: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    stale_from: str | None = None  # outputs carried over from an earlier good run
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)  # see JobResult.selections
    shareable: list[dict[str, Any]] = field(default_factory=list)  # its files in the shareable tier
    headline: str = ""  # see JobResult.headline
    produced_by: str = ""  # the run whose outputs these are (an earlier one for reused and carried jobs)
    log: str = ""  # a failed job: the night's log file, which holds its full traceback (nightlog)


def previous_manifest(settings: Settings, run_date: date) -> dict[str, Any] | None:
    """The manifest of the last published build of a date, if any."""
    path = settings.reports_dir / run_date.isoformat() / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def failed(job: str, exc: BaseException, seconds: float = 0.0) -> JobOutcome:
    """The outcome of a job that raised: the error for people, the traceback for the manifest."""
    tb = "".join(traceback.format_exception(exc)[-6:])
    return JobOutcome(job, "failed", seconds, error=f"{type(exc).__name__}: {exc}", extra={"traceback": tb})


def carry_over(settings: Settings, run_date: date, job: str, build: Path) -> str | None:
    """Copy a job's outputs from the last published build of the date into the new build."""
    current = settings.reports_dir / run_date.isoformat()
    if not current.exists():
        return None
    if (current / job).is_dir():
        shutil.copytree(current / job, build / job, dirs_exist_ok=True)
    shareable.carry(current, build, job)
    if (current / f"{job}.html").exists():
        shutil.copy2(current / f"{job}.html", build / f"{job}.html")
        return str(current.resolve().name)
    return None


def publish_night(settings: Settings, run_date: date, build: Path, outcomes: list[JobOutcome],
                  attempt: dict[str, Any], fingerprints: dict[str, str], quality: dict[str, dict]) -> Path:
    """Write the manifest and run page into the build, swap it in, and refresh the index of nights."""
    prev = previous_manifest(settings, run_date) or {}
    for o in outcomes:
        o.produced_by = o.produced_by or (prev.get("run_id", "") if o.status == "reused" else attempt["run_id"])
    outcomes = [*outcomes, *_not_in_this_run(settings, run_date, build, prev, {o.job for o in outcomes})]
    for o in outcomes:
        if o.status in ("failed", "skipped"):
            # Keep the last good page of this job, marked stale, rather than losing it.
            prev_job = prev.get("jobs", {}).get(o.job, {})
            if prev_job.get("status") in ("success", "reused") and carry_over(settings, run_date, o.job, build):
                o.stale_from = prev.get("run_id")
                o.outputs = prev_job.get("outputs", [])
        if o.status == "failed" and o.produced_by == attempt["run_id"]:
            o.log = attempt.get("log", "")
            if not o.stale_from:
                _failure_page(build, run_date, o)
    status = overall_status(outcomes)
    manifest = {
        "run_date": run_date.isoformat(),
        "run_id": attempt["run_id"],
        "nightshift_version": __version__,
        "status": status,
        "started": attempt["started"],
        "finished": runs.now(),
        "trigger": attempt.get("trigger", "manual"),
        "log": attempt.get("log", ""),
        "inputs": quality,
        "input_hashes": fingerprints,
        "jobs": {o.job: asdict(o) for o in outcomes},
    }
    manifest["attention"] = attention.needs_a_look(manifest)
    manifest["change"] = change.compare(settings.reports_dir, run_date, {o.job: o.summary for o in outcomes})
    publish.write_json_atomic(manifest, build / "manifest.json")
    shareable.write_page(build, run_date, {o.job: o.shareable for o in outcomes if o.shareable
                                           and (o.status in ("success", "reused") or o.stale_from)})
    reporting.write_page(build / "index.html", "run.html.j2", run_date=run_date, manifest=manifest,
                         job_trends=trends.night_trends(settings.reports_dir, run_date, manifest),
                         root="..", assets="../assets")
    reporting.install_assets(settings.reports_dir)
    publish.swap_in(build, settings.reports_dir / run_date.isoformat())
    write_reports_index(settings)
    return settings.reports_dir / run_date.isoformat() / "index.html"


def _failure_page(build: Path, run_date: date, outcome: JobOutcome) -> None:
    """A failed job with no good page to keep gets a page that says why and names the log file."""
    reporting.write_page(build / f"{outcome.job}.html", "failed.html.j2", run_date=run_date, job=outcome.job,
                         title=get_job(outcome.job).title, outcome=outcome)
    outcome.outputs = [f"{outcome.job}.html"]


def _not_in_this_run(settings: Settings, run_date: date, build: Path, prev: dict[str, Any],
                     ran: set[str]) -> list[JobOutcome]:
    """Jobs a subset run (`--jobs sales`) left out keep their last published outputs for the date,
    carried into the new build and marked with the run that made them."""
    kept = []
    for job, record in prev.get("jobs", {}).items():
        if job in ran:
            continue
        if record.get("outputs"):  # a good page, a stale one or a failure page: each stays with its record
            carry_over(settings, run_date, job, build)
        known = {f.name for f in fields(JobOutcome)}
        kept.append(JobOutcome(**{k: v for k, v in record.items() if k in known},
                               **({} if record.get("produced_by") else {"produced_by": prev.get("run_id", "")})))
    return kept


def overall_status(outcomes: list[JobOutcome]) -> str:
    """success when every job succeeded or was reused; failed when none did; partial otherwise."""
    ok = [o.status in ("success", "reused") for o in outcomes]
    if all(ok):
        return "success"
    return "partial" if any(ok) else "failed"


def write_reports_index(settings: Settings) -> Path:
    """Rewrite `reports/index.html`: every published night, newest first, with its status."""
    nights = []
    for link in sorted(settings.reports_dir.glob("????-??-??"), reverse=True):
        mf = link / "manifest.json"
        if mf.exists():
            m = json.loads(mf.read_text())
            nights.append({
                "date": m["run_date"], "status": m["status"], "finished": m["finished"], "trigger": m.get("trigger"),
                "caught_up": m.get("trigger") == "catch-up",
                "jobs": {j: v["status"] for j, v in m["jobs"].items()},
                "attention": m.get("attention", []),
                "seconds": sum(v.get("seconds", 0.0) for v in m["jobs"].values()),
            })
    path = settings.reports_dir / "index.html"
    # One fixed column per job (registered order, then any a past night had): a partial night's
    # cells stay under their own job.
    names = list(dict.fromkeys([*JOBS, *(j for n in nights for j in n["jobs"])]))
    reporting.write_page(path, "reports_index.html.j2", nights=nights, job_names=names, root=".", assets="assets",
                         shareable_link="")
    return path

