"""The synthetic demo data: all source tables as daily Parquet drops in the landing zone.

Each domain has a generator module (`events`, `sales`, `loans`, `inventory`, `energy`) with
`generate(rng, start, end, size) -> dict[str, pl.DataFrame]`, returning whole canonical tables
for [start, end] (plus an optional `"_truth"` entry: frames of planted ground truth for tests).
This module seeds them, splits rows into one folder per table and business day, and writes.
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from nightshift.demo.faults import drop_day, inject
from nightshift.tables import TABLES

GENERATORS = ("events", "sales", "loans", "inventory", "energy")


@dataclass(frozen=True)
class DemoSize:
    """How much demo data to make. Days are counted back from the end date."""

    name: str
    users: int  # users signing up over `event_days`
    event_days: int
    stores: int
    products: int  # sales series = stores * products
    sales_days: int
    warehouses: int
    skus: int
    inventory_days: int
    meters: int
    regions: int
    energy_days: int
    loans_per_day: int
    loan_days: int


SIZES = {
    s.name: s
    for s in (
        DemoSize("tiny", users=400, event_days=60, stores=2, products=3, sales_days=400, warehouses=2, skus=5,
                 inventory_days=400, meters=12, regions=3, energy_days=120, loans_per_day=30, loan_days=500),
        DemoSize("small", users=20_000, event_days=120, stores=4, products=10, sales_days=730, warehouses=3, skus=20,
                 inventory_days=730, meters=60, regions=4, energy_days=365, loans_per_day=40, loan_days=730),
        DemoSize("medium", users=60_000, event_days=180, stores=20, products=50, sales_days=730, warehouses=5,
                 skus=200, inventory_days=730, meters=500, regions=6, energy_days=365, loans_per_day=300,
                 loan_days=730),
        DemoSize("large", users=660_000, event_days=180, stores=100, products=100, sales_days=730, warehouses=10,
                 skus=1000, inventory_days=730, meters=2000, regions=8, energy_days=365, loans_per_day=2000,
                 loan_days=730),
    )
}


def get_size(name: str) -> DemoSize:
    """A named size, or a clear error listing the sizes."""
    try:
        return SIZES[name]
    except KeyError:
        raise ValueError(f"unknown demo size {name!r}; sizes: {', '.join(SIZES)}") from None


def _day_of(frame: pl.DataFrame, table: str) -> pl.Series:
    col = TABLES[table].time_column
    return frame[col].cast(pl.Date) if frame[col].dtype != pl.Date else frame[col]


def write_partitions(frame: pl.DataFrame, table: str, landing: Path, part_col: str = "_drop_day") -> int:
    """Write `frame` as one Parquet file per drop day: `<landing>/<table>/date=D/part-0.parquet`.

    Rows land in the drop of their own business day unless `_drop_day` says otherwise (late rows).
    """
    if part_col not in frame.columns:
        frame = frame.with_columns(_day_of(frame, table).alias(part_col))
    cols = TABLES[table].column_names
    n = 0
    for (day,), part in frame.partition_by(part_col, as_dict=True, maintain_order=True).items():
        folder = landing / table / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        part.select(cols).write_parquet(folder / "part-0.parquet")
        n += 1
    return n


def generate(landing: Path, *, end: date, size: str = "small", seed: int = 7,
             faults: bool = False, truth_dir: Path | None = None) -> dict[str, int]:
    """Generate every table up to `end` into `landing` (replacing what was there); rows per table."""
    demo_size = get_size(size)
    if landing.exists():
        shutil.rmtree(landing)
    landing.mkdir(parents=True)
    counts: dict[str, int] = {}
    for i, name in enumerate(GENERATORS):
        module = importlib.import_module(f"nightshift.demo.{name}")
        rng = np.random.default_rng([seed, i])  # one stream per domain: sizes of one don't shift another
        tables = module.generate(rng, end - timedelta(days=_days(demo_size, name) - 1), end, demo_size)
        truth = tables.pop("_truth", None)
        for table, frame in tables.items():
            if faults:
                fault_rng = np.random.default_rng([seed, i, 99])
                frame = inject(frame, table, fault_rng)
                if table == "sales":  # one missing drop in the history
                    frame = drop_day(frame, table, fault_rng)
            write_partitions(frame, table, landing)
            counts[table] = frame.height
        if truth and truth_dir is not None:
            truth_dir.mkdir(parents=True, exist_ok=True)
            for key, frame in truth.items():
                frame.write_parquet(truth_dir / f"{name}_{key}.parquet")
    return counts


def _days(size: DemoSize, generator: str) -> int:
    return {
        "events": size.event_days,
        "sales": size.sales_days,
        "loans": size.loan_days,
        "inventory": size.inventory_days,
        "energy": size.energy_days,
    }[generator]
