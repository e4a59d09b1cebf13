"""Benchmark of the sales fitter: series per second, parallel processes vs a naive loop.

Both sides run the identical per-series work (`run_task`: order selection, fit, forecast and
backtest, cold) on identical series built by the job's own SQL from demo data. The naive side is
one process with the default BLAS threads, the way a first script would do it; the parallel side
is the job's process pool (one worker per core, BLAS held to one thread each), pool start-up
included. Repetitions alternate which side goes first; medians are reported. The platform's
`make bench` calls `bench_sales`.
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

from nightshift.forecasting import backtest
from nightshift.forecasting.parallel import ProcessMapper, blas_threads
from nightshift.forecasting.series import build_tasks
from nightshift.forecasting.task import SeriesResult, SeriesTask, run_task
from nightshift.jobs import sales as job

TARGET_SPEEDUP = 5.0
TARGET_MASE_REL = 0.02


def bench_tasks(size: str = "small", seed: int = 7, end: date | None = None,
                max_series: int | None = None) -> list[SeriesTask]:
    """The night's tasks for a demo size, built through the job's SQL (cold: no cached orders)."""
    from nightshift.demo import get_size
    from nightshift.demo.sales import generate
    from nightshift.warehouse import Warehouse

    end = end or date.today() - timedelta(days=1)
    s = get_size(size)
    sales = generate(np.random.default_rng([seed, 1]), end - timedelta(days=s.sales_days - 1), end, s)["sales"]
    with tempfile.TemporaryDirectory() as tmp, Warehouse(Path(tmp) / "bench.duckdb") as wh:
        wh.cursor.register("_rows", sales.with_columns(pl.col("date").alias("_partition")).to_arrow())
        wh.execute("insert into sales select * from _rows")
        wh.cursor.unregister("_rows")
        frame = wh.run_sql("marts/sales_series", run_date=end, history_days=job.HISTORY_DAYS,
                           retire_days=job.RETIRE_DAYS)
        future = wh.run_sql("marts/sales_future_promotions", run_date=end, horizon=job.HORIZON)
    tasks = build_tasks(frame, future, {}, run_date=end, horizon=job.HORIZON, fit_days=job.FIT_DAYS,
                        origins=backtest.origins(job.N_ORIGINS, job.HORIZON))
    return tasks[:max_series] if max_series else tasks


def _naive(tasks: list[SeriesTask]) -> tuple[float, list[SeriesResult]]:
    t0 = time.perf_counter()
    results = [run_task(t) for t in tasks]  # default BLAS threads, one process
    return time.perf_counter() - t0, results


def _parallel(tasks: list[SeriesTask], workers: int) -> tuple[float, float, list[SeriesResult]]:
    t0 = time.perf_counter()
    with ProcessMapper(workers) as mapper:
        mapper.map(blas_threads, range(workers))  # start-up: counted in the total, also reported alone
        t_ready = time.perf_counter()
        results = mapper.map(run_task, tasks)
    return time.perf_counter() - t0, t_ready - t0, results


def _mase(results: list[SeriesResult]) -> float:
    overall = backtest.overall(backtest.per_series(backtest.long_frame(results)))
    return float(overall.filter(pl.col("method") == "sarima")["mase"][0])


def bench_sales(size: str = "small", workers: int | None = None, repeats: int = 1, max_series: int | None = None,
                seed: int = 7, end: date | None = None, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Series/second of the parallel fitter vs the naive loop on the same fits, with MASE of both."""
    workers = workers or os.cpu_count() or 1
    tasks = bench_tasks(size, seed, end, max_series)
    n = len(tasks)
    naive_s, par_s, startup_s = [], [], []
    naive_res: list[SeriesResult] = []
    par_res: list[SeriesResult] = []
    for rep in range(repeats):
        order = ("naive", "parallel") if rep % 2 == 0 else ("parallel", "naive")
        for side in order:
            if side == "naive":
                secs, naive_res = _naive(tasks)
                naive_s.append(secs)
            else:
                secs, ready, par_res = _parallel(tasks, workers)
                par_s.append(secs)
                startup_s.append(ready)
            log(f"sales bench rep {rep + 1}/{repeats} {side}: {n} series in {secs:.1f} s")
    naive_med, par_med = statistics.median(naive_s), statistics.median(par_s)
    mase_naive, mase_par = _mase(naive_res), _mase(par_res)
    speedup = naive_med / par_med if par_med > 0 else float("nan")
    mase_rel = abs(mase_par - mase_naive) / mase_naive if mase_naive else float("nan")
    return {
        "size": size,
        "series": n,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "default_blas_threads": blas_threads(),
        "repeats": repeats,
        "naive_seconds": round(naive_med, 3),
        "parallel_seconds": round(par_med, 3),
        "parallel_startup_seconds": round(statistics.median(startup_s), 3),
        "naive_series_per_s": round(n / naive_med, 3) if naive_med else None,
        "parallel_series_per_s": round(n / par_med, 3) if par_med else None,
        "speedup": round(speedup, 3),
        "naive_runs_s": [round(v, 3) for v in naive_s],
        "parallel_runs_s": [round(v, 3) for v in par_s],
        "mase_naive_loop": round(mase_naive, 4),
        "mase_parallel": round(mase_par, 4),
        "mase_rel_diff": round(mase_rel, 4),
        "fallbacks_naive_loop": sum(r.kind == "fallback" for r in naive_res),
        "fallbacks_parallel": sum(r.kind == "fallback" for r in par_res),
        "target_speedup": TARGET_SPEEDUP,
        "target_mase_rel": TARGET_MASE_REL,
        "meets_target": bool(speedup >= TARGET_SPEEDUP and mase_rel <= TARGET_MASE_REL),
    }
