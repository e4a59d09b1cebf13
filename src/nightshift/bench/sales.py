"""Benchmark of the sales fitter: series per second, nightshift's night vs a naive loop and vs a peer.

Every side forecasts the same series, built by the job's own SQL and gridding from demo data, with
`run_task` (the model menu's backtest, the choice and tonight's forecast). The naive side is what a first script does every night: one process
with the default BLAS threads, selecting every series' order from scratch. nightshift's night runs
in the job's process pool (one worker per core, BLAS held to one thread each, pool start-up
included) with what the night before left in the job's state: each series' order (re-selected
weekly, `sales_reselect_days`) and its parameters as the fit's starting point. The night before is
run first and not timed. The same pool doing the naive side's cold work is reported too, so the
gain from parallel processes and the gain from reusing state are both visible. Repetitions
alternate which side goes first; medians are reported. The peer (`bench/sales_peer.py`,
statsforecast's AutoARIMA, AutoETS and AutoTheta, when installed) runs on the first `PEER_SERIES`
series with the job's backtest protocol, and the job's MASE on those series is reported beside it.
The platform's `make bench` calls `bench_sales`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nightshift.bench import sales_peer
from nightshift.jobs.sales import backtest, frequency, job, state
from nightshift.jobs.sales.parallel import ProcessMapper, blas_threads
from nightshift.jobs.sales.series import build_tasks
from nightshift.jobs.sales.task import SeriesResult, SeriesTask, run_task

TARGET_SPEEDUP = 5.0
TARGET_MASE_REL = 0.02
TARGET_PEER_SPEED = 10.0  # the job's series per second over the peer's, at a MASE no worse than its best
MAX_SERIES = 100  # per-series work is linear: a rate needs no more, and the large demo has 10,000
PEER_SERIES = 40  # the peer's AutoARIMA takes seconds per fit: a rate and a MASE need no more


def night_inputs(size: str, seed: int, end: date) -> dict[date, tuple[pl.DataFrame, pl.DataFrame]]:
    """The job's SQL inputs (series, future promotions) as of the night before `end` and as of `end`.

    One demo draw up to `end` in one warehouse: the night before sees the same history, a day shorter.
    """
    from nightshift.demo import get_size
    from nightshift.demo.sales import generate
    from nightshift.warehouse import Warehouse

    s = get_size(size)
    sales = generate(np.random.default_rng([seed, 1]), end - timedelta(days=s.sales_days - 1), end, s)["sales"]
    out = {}
    with tempfile.TemporaryDirectory() as tmp, Warehouse(Path(tmp) / "bench.duckdb") as wh:
        wh.cursor.register("_rows", sales.with_columns(pl.col("date").alias("_partition")).to_arrow())
        wh.execute("insert into sales select * from _rows")
        wh.cursor.unregister("_rows")
        history_days, retire_days = frequency.window_days(None)
        for d in (end - timedelta(days=1), end):
            rows = wh.run_sql("marts/sales/series", run_date=d, history_days=history_days,
                              retire_days=retire_days).with_columns(job.series_key())
            freqs, _ = frequency.assign(rows, None)
            out[d] = (frequency.grid(rows, freqs, d),
                      wh.run_sql("marts/sales/future_promotions", run_date=d,
                                 horizon=frequency.FREQUENCIES["daily"].horizon))
    return out


def night_tasks(inputs: tuple[pl.DataFrame, pl.DataFrame], run_date: date, max_series: int | None,
                cache: dict[str, state.Cached] | None = None) -> list[SeriesTask]:
    """One night's tasks, as the job builds them (cold without a `cache`)."""
    frame, future = inputs
    tasks = build_tasks(frame, future, cache or {}, run_date=run_date)
    return tasks[:max_series] if max_series else tasks


def _naive(tasks: list[SeriesTask]) -> tuple[float, list[SeriesResult]]:
    t0 = time.perf_counter()
    results = [run_task(t) for t in tasks]  # default BLAS threads, one process
    return time.perf_counter() - t0, results


def _parallel(tasks: list[SeriesTask], workers: int) -> tuple[float, list[SeriesResult]]:
    t0 = time.perf_counter()
    with ProcessMapper(workers) as mapper:  # pool start-up counted
        results = mapper.map(run_task, tasks)
    return time.perf_counter() - t0, results


def _mase_by_method(results: list[SeriesResult]) -> dict[str, float]:
    """The scorecard's MASE per method: the published model, each menu member, the mean baseline."""
    overall = backtest.overall(backtest.per_series(backtest.long_frame(results)))
    return dict(overall.select("method", "mase").iter_rows())


def _mase(results: list[SeriesResult]) -> float:
    return _mase_by_method(results)["model"]


def bench_sales(size: str = "small", workers: int | None = None, repeats: int = 1, max_series: int | None = MAX_SERIES,
                seed: int = 7, end: date | None = None, log: Callable[[str], Any] = print,
                peer_series: int = PEER_SERIES) -> dict[str, Any]:
    """Series/second of nightshift's night and of the cold pool vs the naive loop, with MASE of each,
    and the peer's MASE and series/second beside the night's on the peer's series."""
    workers = workers or os.cpu_count() or 1
    end = end or date.today() - timedelta(days=1)
    inputs = night_inputs(size, seed, end)
    before = end - timedelta(days=1)
    tasks = night_tasks(inputs[end], end, max_series)
    # The night before, untimed: its results are the state tonight starts from.
    _, last_night = _parallel(night_tasks(inputs[before], before, max_series), workers)
    warm = night_tasks(inputs[end], end, max_series, cache=job.next_state(last_night, {}, before))
    n = len(tasks)
    sides: dict[str, Callable[[], tuple[float, list[SeriesResult]]]] = {
        "naive": lambda: _naive(tasks),
        "parallel": lambda: _parallel(tasks, workers),
        "nightly": lambda: _parallel(warm, workers),
    }
    secs: dict[str, list[float]] = {k: [] for k in sides}
    res: dict[str, list[SeriesResult]] = {}
    for rep in range(repeats):
        for side in (list(sides) if rep % 2 == 0 else list(sides)[::-1]):
            t, res[side] = sides[side]()
            secs[side].append(t)
            log(f"sales bench rep {rep + 1}/{repeats} {side}: {n} series in {t:.1f} s")
    peer = _peer(tasks[:peer_series], res["nightly"][:peer_series], seconds_per_series=statistics.median(secs["nightly"]) / n,
                 workers=workers, log=log)
    med = {k: statistics.median(v) for k, v in secs.items()}
    mase = {k: _mase(v) for k, v in res.items()}
    speedup = {k: med["naive"] / med[k] if med[k] > 0 else float("nan") for k in ("parallel", "nightly")}
    rel = {k: abs(mase[k] - mase["naive"]) / mase["naive"] if mase["naive"] else float("nan")
           for k in ("parallel", "nightly")}
    return {
        "size": size,
        "series": n,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "default_blas_threads": blas_threads(),
        "repeats": repeats,
        "reselected_tonight": sum(t.spec is None for t in warm),
        **{f"{k}_seconds": round(v, 3) for k, v in med.items()},
        **{f"{k}_series_per_s": round(n / v, 3) if v else None for k, v in med.items()},
        **{f"{k}_runs_s": [round(t, 3) for t in v] for k, v in secs.items()},
        "speedup_parallel_same_work": round(speedup["parallel"], 3),
        "speedup": round(speedup["nightly"], 3),
        **{f"mase_{k}": round(v, 4) for k, v in mase.items()},
        "mase_nightly_by_method": {k: round(v, 4) for k, v in _mase_by_method(res["nightly"]).items()},
        "mase_rel_diff_parallel": round(rel["parallel"], 4),
        "mase_rel_diff": round(rel["nightly"], 4),
        **{f"fallbacks_{k}": sum(r.kind == "fallback" for r in v) for k, v in res.items()},
        "target_speedup": TARGET_SPEEDUP,
        "target_mase_rel": TARGET_MASE_REL,
        "meets_target": bool(speedup["nightly"] >= TARGET_SPEEDUP and rel["nightly"] <= TARGET_MASE_REL),
        "peer": peer,
    }


def _peer(tasks: list[SeriesTask], night: list[SeriesResult], seconds_per_series: float, workers: int,
          log: Callable[[str], Any]) -> dict[str, Any]:
    """The peer on `tasks` beside the night's results on the same series (MASE, series per second)."""
    if not sales_peer.available():
        log(f"sales bench: peer skipped: {sales_peer.MISSING}")
        return {"skipped": sales_peer.MISSING}
    out = sales_peer.run(tasks, workers)
    log(f"sales bench peer: {len(tasks)} series in {out['seconds']:.1f} s")
    job_rate = 1 / seconds_per_series if seconds_per_series > 0 else float("nan")
    best = min(out["mase"].values())
    mase_job = _mase(night)
    return {
        "series": len(tasks), "seconds": round(out["seconds"], 3), "series_per_s": round(out["series_per_s"], 4),
        **{f"mase_{k}": round(v, 4) for k, v in out["mase"].items()},
        "mase_job": round(mase_job, 4), "job_series_per_s": round(job_rate, 3),
        "mase_job_by_method": {k: round(v, 4) for k, v in _mase_by_method(night).items()},
        "speed_ratio": round(job_rate / out["series_per_s"], 2),
        "meets_target": bool(mase_job <= best and job_rate >= TARGET_PEER_SPEED * out["series_per_s"]),
    }
