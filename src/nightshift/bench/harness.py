"""The benchmark run: data, interleaved A/B reps in child processes, summaries, re-run and extras.

Ratios are B/A (pandas seconds over nightshift seconds): above 1 nightshift is faster. Medians
over reps; min–max shows the spread (these shared 2-core machines drift run to run).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nightshift import __version__
from nightshift.bench import data as bench_data
from nightshift.bench import extras, rerun, workload
from nightshift.bench.memory import memory_bandwidth_gbs

SIDES = ("nightshift", "pandas")


def _run_rep(side: str, data: bench_data.BenchData, work: workload.Workload, workdir: Path, history: Path | None = None) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{side}.json"
    cmd = [sys.executable, "-m", "nightshift.bench.worker", side, str(data.root), data.size, str(data.seed),
           str(workdir), str(out), json.dumps(work.to_dict()), *([str(history)] if history else [])]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark side {side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def summarise(values: list[float]) -> dict[str, float]:
    """Median, min and max of one measurement over reps."""
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def stage_table(reps: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Per stage (and end to end): each side's time and peak memory over reps, and the ratio B/A."""
    out = {}
    for stage in (*workload.STAGES, "end_to_end"):
        row: dict[str, Any] = {}
        for side in SIDES:
            runs = [r["stages"][stage] if stage != "end_to_end" else r["end_to_end"] for r in reps[side]]
            row[side] = {"seconds": summarise([x["seconds"] for x in runs]),
                         "peak_mib": max(x["peak_mib"] for x in runs)}
        a, b = row["nightshift"]["seconds"]["median"], row["pandas"]["seconds"]["median"]
        row["ratio_b_over_a"] = round(b / a, 3) if a > 0 else None
        out[stage] = row
    return out


def cold_start(cold: dict, reads: list[dict], kept: dict) -> dict[str, Any]:
    """nightshift's first night (all history into an empty warehouse) against pandas' load stage run
    right before and right after it: on a machine whose speed drifts over minutes, only neighbours compare."""
    a = cold["stages"]["history"]
    b = statistics.median(r["stages"]["load"]["seconds"] for r in reads)
    bare = statistics.median(r["checks"]["read_seconds"] for r in reads)  # the files read, nothing cleaned
    return {"nightshift_seconds": a["seconds"], "nightshift_peak_mib": a["peak_mib"], "pandas_load_seconds": round(b, 4),
            "pandas_load_each": [r["stages"]["load"]["seconds"] for r in reads],
            "ratio_b_over_a": round(b / a["seconds"], 3) if a["seconds"] else None,
            "pandas_bare_read_seconds": round(bare, 4),
            "bare_read_ratio": round(bare / a["seconds"], 3) if a["seconds"] else None,
            "rows_loaded": cold["checks"]["rows_loaded"], "kept_history_seconds": kept["stages"]["kept"]["seconds"],
            "kept_history_peak_mib": kept["stages"]["kept"]["peak_mib"]}


def agreement(reps: dict[str, list[dict]]) -> dict[str, Any]:
    """Whether both sides computed the same things (first rep of each): exact counts, close metrics.

    Above `CTR_MAX_ROWS` impressions each side samples the click-through rows its own way (a hash
    order in SQL, `DataFrame.sample` in pandas): then the click counts are compared as rates.
    """
    a, b = reps["nightshift"][0]["checks"], reps["pandas"][0]["checks"]
    keys = ["rows_loaded", "user_day_rows", "visits", "revenue_cents", "impression_rows", "clicks",
            "series_rows", "units", "series"]
    exact = {k: a.get(k) == b.get(k) for k in keys}
    if a.get("impression_rows") == b.get("impression_rows") == workload.CTR_MAX_ROWS:
        exact["clicks"] = abs(a["clicks"] - b["clicks"]) <= 0.005 * workload.CTR_MAX_ROWS
    return {"same_counts": all(exact.values()), "per_check": exact, "nightshift": a, "pandas": b}


def bandwidth_figures(table: dict, data: bench_data.BenchData, scanned: dict[str, int], bw: dict) -> dict[str, Any]:
    """Bytes per second of the load (Parquet on disk) and aggregate (columns in memory) stages."""
    out = {}
    for stage, nbytes in (("load", scanned["parquet_bytes"]), ("aggregate", scanned["aggregate_bytes"])):
        out[stage] = {"bytes": nbytes}
        for side in SIDES:
            s = table[stage][side]["seconds"]["median"]
            gbs = nbytes / s / 1e9 if s else None
            out[stage][side] = {"gb_s": round(gbs, 4) if gbs else None,
                                "of_copy_bandwidth": round(gbs / bw["copy_gb_s"], 5) if gbs else None}
    return out


def scanned_bytes(data: bench_data.BenchData) -> dict[str, int]:
    """Parquet bytes read by the load stage; in-memory bytes of the columns the aggregates scan."""
    import polars as pl

    ev = pl.scan_parquet([str(p) for p in data.files("events")]).select(
        "user_id", "ts", "event_id", "event_type", "channel", "campaign_id", "device", "revenue_cents").collect()
    sales = pl.scan_parquet([str(p) for p in data.files("sales")]).select(
        "date", "store_id", "product_id", "units", "on_promotion").collect()
    return {"parquet_bytes": data.bytes_on_disk(), "aggregate_bytes": int(ev.estimated_size() + sales.estimated_size())}


def run(scale: str, reps: int, bench_home: Path, reports_dir: Path, *, seed: int = 7, rerun_jobs: list[str] | None = None,
        extras_for: tuple[str, ...] = ("sales", "energy"), data: bench_data.BenchData | None = None,
        work: workload.Workload | None = None, bandwidth_mib: int = 512, log=print) -> tuple[dict, Path]:
    """The whole benchmark for one scale; the result and the path of its JSON report."""
    work = work or workload.SCALES[scale]
    t_start = time.perf_counter()
    data, gen_s = (data, 0.0) if data is not None else bench_data.ensure(bench_home, scale, seed)
    log(f"data: {data.root} ({f'generated in {gen_s:.0f} s' if gen_s else 'reused'})")
    bw = memory_bandwidth_gbs(bandwidth_mib)
    log(f"memory copy bandwidth: {bw['copy_gb_s']} GB/s")
    reps_out: dict[str, list[dict]] = {s: [] for s in SIDES}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    scratch = data.root / f"scratch-{stamp}"
    try:
        log("cold start: pandas' load, the history up to the day before into an empty warehouse, pandas' load ...")
        reads = [_run_rep("pandas_read", data, work, scratch / "read-before")]
        cold = _run_rep("history", data, work, scratch / "history")
        reads.append(_run_rep("pandas_read", data, work, scratch / "read-after"))
        log(f"  {cold['stages']['history']['seconds']:.1f} s vs pandas {reads[0]['stages']['load']['seconds']:.1f} / "
            f"{reads[1]['stages']['load']['seconds']:.1f} s; the behavior job's kept event history ...")
        kept = _run_rep("kept", data, work, scratch / "history")  # built in the cold start's warehouse
        history = Path(cold["checks"]["warehouse"])
        for i in range(reps):
            order = SIDES if i % 2 == 0 else SIDES[::-1]  # A B, B A, ...: neither side always goes first
            for side in order:
                log(f"rep {i + 1}/{reps}: {side} ...")
                reps_out[side].append(_run_rep(side, data, work, scratch / f"{side}-{i}",
                                               history if side == "nightshift" else None))
                log(f"  {side}: {reps_out[side][-1]['end_to_end']['seconds']:.1f} s")
        result: dict[str, Any] = {
            "benchmark": "nightshift vs pandas", "nightshift_version": __version__, "scale": scale, "seed": seed,
            "run_date": data.run_date.isoformat(), "reps": reps, "started": stamp, "workload": work.to_dict(),
            "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                        "memory_bandwidth": bw},
            "rows": bench_data.row_counts(data), "memory_method": reps_out["nightshift"][0]["memory_method"],
        }
        result["stages"] = stage_table(reps_out)
        result["cold_start"] = cold_start(cold, reads, kept)
        result["agreement"] = agreement(reps_out)
        scanned = scanned_bytes(data)
        result["bandwidth"] = bandwidth_figures(result["stages"], data, scanned, bw)
        jobs = rerun_jobs if rerun_jobs is not None else ["loans"]
        if jobs:
            log(f"cold night vs unchanged re-run ({', '.join(jobs)}) ...")
            result["rerun"] = rerun.cold_vs_rerun(data, scratch / "rerun", jobs)
        for name in extras_for:
            log(f"{name} throughput benchmark ...")
            result[f"{name}_bench"] = extras.run_in_child(name, scale, scratch / f"{name}.json", timeout_s=1800)
        result["reps_raw"] = reps_out
        result["seconds_total"] = round(time.perf_counter() - t_start, 1)
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    out = reports_dir / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    return result, out
