"""The demo generator: deterministic for a seed, canonical columns and types, daily drops."""

from __future__ import annotations

import importlib
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.demo import GENERATORS, SIZES, write_partitions
from nightshift.tables import TABLES

POLARS_TYPES = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "INTEGER": pl.Int32, "DOUBLE": pl.Float64,
                "BOOLEAN": pl.Boolean, "DATE": pl.Date, "TIMESTAMP": pl.Datetime("us")}
END = date(2026, 3, 1)


def _make(name: str, seed: int) -> dict[str, pl.DataFrame]:
    module = importlib.import_module(f"nightshift.demo.{name}")
    tables = module.generate(np.random.default_rng([seed, 0]), END - timedelta(days=119), END, SIZES["tiny"])
    tables.pop("_truth", None)
    return tables


@pytest.mark.parametrize("name", GENERATORS)
def test_deterministic_for_a_seed_and_canonical(name):
    first, again, other = _make(name, 7), _make(name, 7), _make(name, 8)
    assert first.keys() == again.keys()
    for table, frame in first.items():
        assert frame.equals(again[table]), f"{name}/{table} differs between two runs with the same seed"
        spec = TABLES[table]
        assert frame.columns == spec.column_names
        for c in spec.columns:
            assert frame.schema[c.name] == POLARS_TYPES[c.type], (table, c.name)
        assert frame.height > 0
        day = frame[spec.time_column].cast(pl.Date)
        assert day.max() <= END
    assert any(not f.equals(other[t]) for t, f in first.items()), "another seed gives other data"


def test_drops_are_one_folder_per_day(tmp_path):
    frame = _make("sales", 1)["sales"]
    n = write_partitions(frame, "sales", tmp_path)
    folders = sorted(p.name for p in (tmp_path / "sales").iterdir())
    assert n == len(folders) == frame["date"].n_unique()
    one = pl.read_parquet(tmp_path / "sales" / folders[-1] / "part-0.parquet")
    assert one["date"].unique().to_list() == [date.fromisoformat(folders[-1][5:])]
