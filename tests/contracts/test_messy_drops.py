"""Messy drops as users deliver them: each is loaded right, quarantined with a reason, or reported and
skipped, and the rest of the table loads (issue: no drop can crash or corrupt a night)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from nightshift import ingest
from nightshift.settings import load_settings
from nightshift.warehouse import Warehouse

D = date(2026, 3, 1)
SALES = {"date": "2026-03-01", "store_id": "s1", "product_id": "p1", "units": 3, "unit_price_cents": 250,
         "on_promotion": False}


def _energy(ts: list, meters: list[str] | None = None, kwh: list | None = None) -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame({"ts": ts, "meter_id": meters or [f"m{i}" for i in range(n)], "region": ["north"] * n,
                         "kwh": kwh or [1.5] * n, "temperature_c": [10.0] * n, "is_holiday": [False] * n})


def _drop(home: Path, table: str, day: date | str = D) -> Path:
    folder = home / "data" / "landing" / table / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _load(table: str, run_date: date = D) -> tuple[ingest.TableLoad, pl.DataFrame]:
    settings = load_settings()
    with Warehouse(settings.warehouse_path) as wh:
        load = ingest.load_table(settings, wh, table, run_date)
        return load, wh.as_of(table, run_date)


def test_a_csv_beside_a_parquet_file_with_other_types_loads_as_one_drop(home):
    folder = _drop(home, "sales")
    pl.DataFrame([SALES]).write_parquet(folder / "part-0.parquet")
    pl.DataFrame([{**SALES, "product_id": "p2", "units": "4"}]).write_csv(folder / "extra.csv")  # units as text
    pl.DataFrame(schema={k: pl.String for k in SALES}).write_csv(folder / "header-only.csv")
    load, rows = _load("sales")
    assert load.usable and (load.rows_read, load.rows_loaded) == (2, 2)
    assert sorted(rows["units"].to_list()) == [3, 4]


def test_an_upper_case_suffix_is_read_not_called_empty(home):
    pl.DataFrame([SALES]).write_parquet(_drop(home, "sales") / "PART-0.PARQUET")
    load, rows = _load("sales")
    assert load.usable and rows.height == 1


def test_a_file_that_cannot_be_read_is_rejected_with_its_reason_and_the_rest_loads(home):
    folder = _drop(home, "sales")
    pl.DataFrame([SALES]).write_parquet(folder / "good.parquet")
    (folder / "broken.parquet").write_bytes(b"not parquet at all")
    (folder / "notes.txt").write_text("hello")
    load, rows = _load("sales")
    assert load.usable and rows.height == 1
    assert any("broken.parquet is not a readable Parquet file" in e for e in load.errors)
    assert any("notes.txt" in e and "ignored" in e for e in load.errors)
    listed = json.loads((home / "data" / "quarantine" / "sales" / f"date={D}" / "files.json").read_text())
    assert {Path(f["file"]).name for f in listed} == {"broken.parquet", "notes.txt"}


@pytest.mark.parametrize("name", ["date=2026-13-45", "date=2026-02-30", "date=yesterday"])
def test_a_folder_that_is_no_date_is_reported_and_skipped(home, name):
    pl.DataFrame([SALES]).write_parquet(_drop(home, "sales") / "part-0.parquet")
    (home / "data" / "landing" / "sales" / name).mkdir()
    load, rows = _load("sales")
    assert load.usable and rows.height == 1
    assert any(name in e and "skipped" in e for e in load.errors)


@pytest.mark.parametrize(("column", "value", "rule"), [
    ("units", 28.5, "wrong type in units"),  # would be rounded to 28
    ("units", 9e18, "out of range in units"),  # would publish forecasts of 1e18
    ("date", "1900-01-01", "date before the earliest plausible date"),
    ("date", "2024-06-01", "dated long before its drop"),
])
def test_silently_wrong_values_are_quarantined_with_a_reason(home, column, value, rule):
    bad = {**SALES, "product_id": "p2", column: value}
    pl.DataFrame([{k: str(v) for k, v in SALES.items()}, {k: str(v) for k, v in bad.items()}]) \
        .write_csv(_drop(home, "sales") / "part-0.csv")
    load, rows = _load("sales")
    assert load.reasons == {rule: 1} and rows["product_id"].to_list() == ["p1"]


@pytest.mark.parametrize("kwh", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_reading_is_quarantined_not_a_job_failure(home, kwh):
    frame = _energy([datetime(2026, 3, 1, 1), datetime(2026, 3, 1, 2)], kwh=[1.5, kwh])
    frame.write_parquet(_drop(home, "energy") / "part-0.parquet")
    load, rows = _load("energy")
    assert load.reasons == {"not a finite number in kwh": 1} and rows.height == 1


def test_a_timestamp_with_an_offset_is_stored_in_utc(home):
    _energy(["2026-03-01T06:00:00+05:00", "2026-03-01 06:00:00"]).write_csv(_drop(home, "energy") / "part-0.csv")
    _, rows = _load("energy")
    assert sorted(rows["ts"].to_list()) == [datetime(2026, 3, 1, 1), datetime(2026, 3, 1, 6)]


@pytest.fixture
def new_york(monkeypatch):
    """The host's clock in New York: a time-zone-aware timestamp must not be read in it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def test_a_time_zone_aware_parquet_column_is_utc_whatever_the_host_zone(home, new_york):
    assert os.environ["TZ"] == "America/New_York"
    aware = [datetime(2026, 3, 1, h, tzinfo=UTC) for h in range(24)]
    folder = _drop(home, "energy")
    _energy(aware).write_parquet(folder / "part-0.parquet")
    _energy([datetime(2026, 3, 1, 12)], meters=["naive"]).write_parquet(folder / "part-1.parquet")  # naive beside
    load, rows = _load("energy")
    assert load.rows_quarantined == 0 and rows.height == 25
    assert rows.filter(pl.col("meter_id") == "m5")["ts"].item() == datetime(2026, 3, 1, 5)
