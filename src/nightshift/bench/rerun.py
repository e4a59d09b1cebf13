"""Cold night vs an unchanged re-run of the same date: how much completed work is reused.

The cold run ingests every table into an empty warehouse and runs the jobs; the re-run of the
same date, with the same drops, finds every partition's hash unchanged (`ingest` skips it) and
every job's input hash unchanged (`night.run_job` answers "reused" and carries the outputs over).
Both are `night.run_night`, as `nightshift run` calls it.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from nightshift.bench.data import BenchData


def _night(settings, run_date, jobs: list[str]) -> tuple[float, dict[str, str]]:
    from nightshift import night

    t0 = time.perf_counter()
    result = night.run_night(settings, run_date, jobs, trigger="bench")
    return time.perf_counter() - t0, {job: j["status"] for job, j in result.jobs.items()}


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
