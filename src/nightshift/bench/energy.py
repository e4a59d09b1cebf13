"""Energy's candidates side by side: training seconds and holdout MAE, for `make bench`.

Runs unchanged on a CPU-only machine and on a GPU machine: the same strategy selection as the job
(MirroredStrategy + mixed precision on GPUs, the default strategy on CPU), demo data generated in
memory, every candidate fitted exactly as the job fits it (the network with early stopping) on
the same windows and scored on the same holdout. The network's throughput (windows per second)
is the Keras fit alone. `python -m nightshift.bench.energy [size]` prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl


def _series(size: str, seed: int):
    """The demo energy table for `size`, through the job's own SQL mart and gap repair."""
    from nightshift.demo import get_size
    from nightshift.demo.energy import generate
    from nightshift.jobs.energy import dataset
    from nightshift.warehouse import Warehouse

    demo = get_size(size)
    end = date(2025, 12, 31)
    tables = generate(np.random.default_rng(seed), end - timedelta(days=demo.energy_days - 1), end, demo)
    with tempfile.TemporaryDirectory() as tmp, Warehouse(Path(tmp) / "bench.duckdb") as wh:
        frame = tables["energy"].with_columns(pl.col("ts").dt.date().alias("_partition"))
        wh.cursor.register("_bench_energy", frame.to_arrow())
        wh.cursor.execute("insert into energy select * from _bench_energy")
        hourly = wh.run_sql("marts/energy/region_hourly", run_date=end)
    return dataset.to_series(dataset.clean_hourly(hourly))


def bench_energy(size: str = "small", seed: int = 7) -> dict[str, Any]:
    """Fit the job's candidates on demo data; each one's fit seconds and holdout MAE, and the device."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nightshift.jobs.energy import bakeoff, dataset

    t0 = time.perf_counter()
    series = _series(size, seed)
    split = dataset.time_split(series)
    train_w, val_w, hold_w = (dataset.make_windows(series, o) for o in (split.train, split.val, split.holdout))
    prep_s = time.perf_counter() - t0
    fitted = bakeoff.fit(train_w, val_w, seed=seed)  # imports TensorFlow, outside the timed fits
    t = fitted.trained
    return {
        "benchmark": "energy_candidates",
        "size": size,
        "windows": len(train_w),
        "holdout_forecasts": len(hold_w),
        "candidates": {c.name: {"fit_s": round(fitted.seconds.get(c.name, 0.0), 2),
                                "holdout_mae_kwh": round(bakeoff.mae(c.model, hold_w), 4)}
                       for c in fitted.candidates},
        "network_epochs": t.epochs,
        "network_members": t.params["members"],
        "windows_per_s": round(t.windows_per_s, 1),
        "prepare_s": round(prep_s, 2),
        **fitted.info.describe(),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(bench_energy(args[0] if args else "small"), indent=2))
