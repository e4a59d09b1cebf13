"""Benchmark data: demo drops for one scale, generated once and reused while size and seed match."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from nightshift import __version__, demo

RUN_DATE = date(2026, 3, 1)  # fixed, so the same scale and seed always mean the same files
TABLES = ("users", "events", "sales")  # what the A/B workload reads


@dataclass(frozen=True)
class BenchData:
    """Where one scale's demo drops live, and for which date and seed they were made."""

    root: Path  # <bench home>/<scale>: data/landing/... below it
    size: str
    seed: int
    run_date: date

    @property
    def landing(self) -> Path:
        return self.root / "data" / "landing"

    def files(self, table: str) -> list[Path]:
        """The drop files of a table up to the run date, oldest first."""
        return sorted(p for d in sorted((self.landing / table).glob("date=*"))
                      if date.fromisoformat(d.name[5:]) <= self.run_date for p in d.glob("*.parquet"))

    def bytes_on_disk(self, tables: tuple[str, ...] = TABLES) -> int:
        """Compressed Parquet bytes of the tables the workload reads."""
        return sum(p.stat().st_size for t in tables for p in self.files(t))


def ensure(bench_home: Path, size: str, seed: int = 7, *, rebuild: bool = False) -> tuple[BenchData, float]:
    """The demo data for `size` and `seed` under `bench_home/<size>`; generate it when missing or stale."""
    import time

    root = bench_home / size
    stamp = root / "bench-data.json"
    want = {"size": size, "seed": seed, "end": RUN_DATE.isoformat(), "generator": __version__,
            "dimensions": asdict(demo.get_size(size))}  # a resized demo is generated again
    if not rebuild and stamp.exists() and json.loads(stamp.read_text()) == want:
        return BenchData(root, size, seed, RUN_DATE), 0.0
    t0 = time.perf_counter()
    stamp.unlink(missing_ok=True)
    counts = demo.generate(root / "data" / "landing", end=RUN_DATE, size=size, seed=seed)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(want))
    os.replace(tmp, stamp)  # written last: a half-generated folder is never taken as complete
    (root / "bench-rows.json").write_text(json.dumps(counts))
    return BenchData(root, size, seed, RUN_DATE), time.perf_counter() - t0


def row_counts(data: BenchData) -> dict[str, int]:
    """Rows per table as generated (recorded next to the data)."""
    path = data.root / "bench-rows.json"
    return json.loads(path.read_text()) if path.exists() else {}
