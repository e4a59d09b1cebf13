"""Cold night vs an unchanged re-run of the same date: how much completed work is reused.

The cold run ingests the jobs' tables into an empty warehouse and runs the jobs; the re-run of the
same date, with the same drops, finds every partition's hash unchanged (`ingest` skips it) and
every job's input hash unchanged (`night.run_job` answers "reused" and carries the outputs over).
Uses the library functions the flow wires together, without Prefect (its temporary server would
add ~10 s of start-up to both runs).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from nightshift.bench.data import BenchData


def _night(settings, run_date, jobs: list[str]) -> tuple[float, dict[str, str]]:
    from nightshift import ingest, night, publish
    from nightshift.jobs import get_job
    from nightshift.warehouse import Warehouse

    tables = sorted({t for j in jobs for t in get_job(j).tables})
    t0 = time.perf_counter()
    with Warehouse.open(settings) as wh:
        loads = ingest.ingest(settings, wh, run_date, tables=tables)
        build = publish.new_build_dir(settings.reports_dir, run_date.isoformat())
        outcomes = []
        for j in jobs:
            try:
                outcomes.append(night.run_job(settings, wh, run_date, j, build, loads))
            except Exception as e:  # noqa: BLE001 - a failing job is reported, not fatal to the bench
                outcomes.append(night.failed(j, e))
        prints = night.table_fingerprints(wh, run_date, list(loads))
        night.publish_night(settings, run_date, build, outcomes, night.new_attempt("bench"), prints,
                            night.data_quality(wh, run_date, loads))
    return time.perf_counter() - t0, {o.job: o.status for o in outcomes}


def cold_vs_rerun(data: BenchData, workdir: Path, jobs: list[str]) -> dict:
    """Seconds of a cold night and of an unchanged re-run, with each job's status in both."""
    from nightshift.settings import load_settings

    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "data").mkdir(parents=True)
    os.symlink(data.landing, workdir / "data" / "landing")
    settings = load_settings(home=workdir, seed=data.seed)
    try:
        cold_s, cold = _night(settings, data.run_date, jobs)
        rerun_s, rerun = _night(settings, data.run_date, jobs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"jobs": jobs, "cold_seconds": round(cold_s, 3), "rerun_seconds": round(rerun_s, 3),
            "rerun_fraction": round(rerun_s / cold_s, 4) if cold_s else None,
            "cold_status": cold, "rerun_status": rerun}
