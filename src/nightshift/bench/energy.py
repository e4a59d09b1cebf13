"""Training throughput of the energy network (windows per second), for `make bench`.

Runs unchanged on a CPU-only machine and on a GPU machine: the same strategy selection as the job
(MirroredStrategy + mixed precision on GPUs, the default strategy on CPU), demo data generated in
memory, fixed epochs without early stopping; the first epoch (tracing, warm-up) is not timed.
`python -m nightshift.bench.energy [size] [epochs]` prints the figures as JSON.
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


def bench_energy(size: str = "small", epochs: int = 3, batch_size: int | None = None, seed: int = 7,
                 train_stride: int | None = None) -> dict[str, Any]:
    """Train the energy network for `epochs` on demo data; windows/s (timed epochs) and device info."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from nightshift.jobs.energy import dataset

    t0 = time.perf_counter()
    series = _series(size, seed)
    split = dataset.time_split(series, train_stride=train_stride or dataset.TRAIN_STRIDE)
    train_w = dataset.make_windows(series, split.train)
    prep_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    import keras

    from nightshift.jobs.energy import network

    import_s = time.perf_counter() - t1
    info = network.select_strategy()
    network.set_determinism(seed, gpu=info.name == "mirrored")
    global_batch = (batch_size or network.default_batch_size(len(train_w))) * info.replicas
    model = network.compiled_model(train_w, info)  # the network the job trains, compiled as the job does
    ds = dataset.make_dataset(train_w, global_batch, shuffle=True, seed=seed)

    class _Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t)

    timer = _Timer()
    epochs = max(2, int(epochs))
    model.fit(ds, epochs=epochs, callbacks=[timer], verbose=0, shuffle=False)
    timed = timer.times[1:]
    return {
        "benchmark": "energy_training_throughput",
        "size": size,
        "windows": len(train_w),
        "epochs_timed": len(timed),
        "batch_size": global_batch,
        "seconds_per_epoch": round(float(np.median(timed)), 3),
        "first_epoch_s": round(timer.times[0], 3),
        "windows_per_s": round(len(train_w) / float(np.median(timed)), 1),
        "prepare_s": round(prep_s, 2),
        "tf_import_s": round(import_s, 2),
        **info.describe(),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(bench_energy(args[0] if args else "small", int(args[1]) if len(args) > 1 else 3), indent=2))
