"""One rep of one side, in its own process: stage times and peak memory as JSON.

A fresh process per rep keeps the sides from sharing caches, allocator pools or a warm DuckDB
buffer, so each rep's peak memory is its own. The parent interleaves A/B/A/B; the operating
system's file cache is warm for both after the first rep. Side `history` is nightshift's cold
start (the warehouse of earlier nights, built from nothing), side `kept` then builds the behavior
job's kept event history in that warehouse (same workdir), and side `pandas_read` is pandas' load
stage alone, timed right before and right after the cold start; side `nightshift` starts from a
copy of that warehouse, given as the last argument.
`python -m nightshift.bench.worker <side> <data_root> <size> <seed> <workdir> <out.json> <workload-json> [<warehouse>]`
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from nightshift.bench import workload
from nightshift.bench.data import RUN_DATE, BenchData
from nightshift.bench.memory import StagePeak

# Sides that run a part of the workload; the others (nightshift, pandas) run every stage.
PART_STAGES = {"history": ("history",), "kept": ("kept",), "pandas_read": ("load",)}
NIGHTSHIFT_SIDES = ("nightshift", "history", "kept")  # the sides that run nightshift's code


def run_side(side: str, data: BenchData, workdir: Path, work: workload.Workload, history: Path | None = None) -> dict:
    """Run every stage of one side in order; seconds and peak MiB per stage, plus the side's checks."""
    if side in NIGHTSHIFT_SIDES:
        from nightshift.bench.nightshift_side import NightshiftSide

        runner = NightshiftSide(data, workdir, work, history=history if side == "nightshift" else None)
    elif side in ("pandas", "pandas_read"):
        from nightshift.bench.pandas_side import PandasSide

        runner = PandasSide(data, workdir, work)
    else:
        raise ValueError(f"unknown side {side!r}: nightshift, pandas, history, kept or pandas_read")
    stages, method = {}, ""
    t_all = time.perf_counter()
    for stage in PART_STAGES.get(side, workload.STAGES):
        with StagePeak() as peak:
            t0 = time.perf_counter()
            getattr(runner, stage)()
            seconds = time.perf_counter() - t0
        stages[stage] = {"seconds": round(seconds, 4), "peak_mib": peak.peak_mib}
        method = peak.method
    total = time.perf_counter() - t_all
    return {
        "side": side,
        "stages": stages,
        "end_to_end": {"seconds": round(total, 4), "peak_mib": max(s["peak_mib"] for s in stages.values())},
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "memory_method": method,
        "checks": runner.checks,
    }


def main(argv: list[str]) -> None:
    side, root, size, seed, workdir, out, work, *history = argv
    if side in NIGHTSHIFT_SIDES:
        from nightshift import malloc_arenas

        malloc_arenas.limit()  # as the `nightshift` command does for itself; pandas' side keeps glibc's default
    data = BenchData(Path(root), size, int(seed), RUN_DATE)
    result = run_side(side, data, Path(workdir), workload.Workload(**json.loads(work)), Path(history[0]) if history else None)
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
