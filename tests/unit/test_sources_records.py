"""What a source yields: the partitions of the landing zone and of a user's own source, their days,
hashes, origins and rejected files, the text a drop is read as, the newest days and the input stamp
(issue 16: a mutant of `sources.py` that changes any of that fails a test here).

Each test builds a few hand-made files in a fresh home and calls `nightshift.sources` directly (no
warehouse, no night), so the whole file runs in seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nightshift import sources
from nightshift.settings import SettingsError, load_settings
from nightshift.sources import SourceError
from nightshift.tables import spec

D = date(2026, 3, 1)
SALES = {"date": "2026-03-01", "store_id": "s1", "product_id": "p1", "units": "3", "unit_price_cents": "250",
         "on_promotion": "false"}
SALES_COLUMNS = spec("sales").column_names


def _drop(settings, day: date | str, table: str = "sales") -> Path:
    folder = settings.landing_dir / table / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sales(path: Path, *rows: dict) -> Path:
    """Sales rows (canonical names) as a Parquet or CSV file, by the suffix."""
    frame = pl.DataFrame([{**SALES, **r} for r in rows or [{}]])
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return path


def _toml(home: Path, text: str):
    (home / "nightshift.toml").write_text(text)
    return load_settings()


# --- the landing zone -------------------------------------------------------------------------------


def test_landing_partitions_are_the_real_date_folders_up_to_the_run_date_oldest_first(home):
    s = load_settings()
    assert list(sources.landing_partitions(s, "sales", D)) == []  # no landing folder for the table yet
    for day in ("2026-03-02", "2026-03-01", "2026-02-27"):
        _sales(_drop(s, day) / "part-0.parquet", {"date": day})
    _drop(s, "2026-02-30")  # no real date
    _drop(s, "yesterday")
    (s.landing_dir / "sales" / "date=2026-02-28").write_text("a file, not a drop folder")
    parts = list(sources.landing_partitions(s, "sales", D))
    assert [p.day for p in parts] == [date(2026, 2, 27), D]  # the run date's own drop is in, the day after is not
    assert {p.table for p in parts} == {"sales"}
    assert parts[1].origin == str(s.landing_dir / "sales" / "date=2026-03-01")
    assert [len(p.input_hash) for p in parts] == [16, 16]
    assert parts[1].read().column("date").to_pylist() == ["2026-03-01"]
    assert [p.day for p in sources.partitions(s, "sales", D)] == [date(2026, 2, 27), D]


def test_the_folders_that_are_no_real_date_are_named_with_what_to_do(home):
    s = load_settings()
    assert sources.invalid_drop_folders(s, "sales") == []  # no landing folder for the table
    _drop(s, D)
    for name in ("date=2026-02-30", "date=yesterday", ".hidden", "date=2026-3-1"):
        (s.landing_dir / "sales" / name).mkdir()
    folder = s.landing_dir / "sales"
    assert sources.invalid_drop_folders(s, "sales") == [
        f"table sales: skipped the folder {folder / n}: its name is not date=YYYY-MM-DD with a real date; "
        "rename or remove it" for n in ("date=2026-02-30", "date=2026-3-1", "date=yesterday")]


def _write(path: Path, data: str | bytes, mtime_s: int) -> Path:
    """Write a file and set its modification time (a hash is cached by path, size, mtime and inode)."""
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.utime(path, ns=(mtime_s * 10**9, mtime_s * 10**9))
    return path


def test_a_drops_hash_covers_its_files_names_and_contents_and_not_its_folder_or_hidden_files(home):
    s = load_settings()
    a, b = _drop(s, "2026-02-28"), _drop(s, D)
    for folder in (a, b):
        _write(folder / "part-0.csv", "x\n1\n", 1)
    (b / ".DS_Store").write_text("finder")

    def hashes() -> list[str]:
        return [p.input_hash for p in sources.landing_partitions(s, "sales", D)]

    first = hashes()
    assert first[0] == first[1]  # the same files on another day: only names and bytes count
    _write(b / "part-0.csv", "x\n2\n", 2)  # same name and size, other bytes
    assert hashes()[1] not in first
    _write(b / "part-0.csv", "x\n1\n", 3)
    assert hashes() == first
    (b / "part-0.csv").rename(b / "part-1.csv")
    assert hashes()[1] not in first
    (b / "part-1.csv").rename(b / "part-0.csv")
    _write(b / "notes.txt", "", 4)  # not loaded, but part of what was delivered
    assert hashes()[1] not in first


def test_a_big_file_is_hashed_to_its_last_block(home):
    s = load_settings()
    data = bytearray(b"a" * ((1 << 20) + 10))
    path = _write(_drop(s, D) / "part-0.csv", bytes(data), 1)
    first = next(sources.landing_partitions(s, "sales", D)).input_hash
    data[-1:] = b"b"  # a change past the first MiB
    _write(path, bytes(data), 2)
    assert next(sources.landing_partitions(s, "sales", D)).input_hash != first


def test_an_unchanged_drop_is_hashed_once_and_a_file_put_in_its_place_again(home):
    s = load_settings()
    path = _write(_drop(s, D) / "part-0.csv", "x\n1\n", 1)
    first = next(sources.landing_partitions(s, "sales", D)).input_hash
    # Same path, size, modification time and inode: taken as the file already hashed, not read again.
    _write(path, "x\n2\n", 1)
    assert next(sources.landing_partitions(s, "sales", D)).input_hash == first
    # A new file moved into its place with the sender's time kept (rsync -t): another inode, read again.
    os.replace(_write(path.with_name("incoming.tmp"), "x\n2\n", 1), path)
    assert next(sources.landing_partitions(s, "sales", D)).input_hash != first


def test_files_that_are_not_csv_or_parquet_are_listed_as_ignored_and_hidden_ones_not_at_all(home):
    s = load_settings()
    folder = _drop(s, D)
    _sales(folder / "good.parquet")
    (folder / "notes.txt").write_text("hello")
    (folder / ".part-1.parquet").write_text("half-written by the sender")
    (folder / "sub.csv").mkdir()  # a folder, not a file
    part = next(sources.landing_partitions(s, "sales", D))
    assert part.rejected == []  # filled when the drop is read
    assert part.read().num_rows == 1
    assert part.rejected == [(str(folder / "notes.txt"), "not a CSV or Parquet file: ignored")]
    part.read()
    assert len(part.rejected) == 1  # reading again does not list it twice


def test_a_drop_whose_every_file_is_unreadable_fails_with_every_reason(home):
    s = load_settings()
    folder = _drop(s, D)
    (folder / "a.parquet").write_bytes(b"not parquet at all")
    (folder / "b.csv").write_text("x,y\n1,2,3\n")
    (folder / "c.txt").write_text("")
    part = next(sources.landing_partitions(s, "sales", D))
    with pytest.raises(SourceError) as e:
        part.read()
    assert [f for f, _ in part.rejected] == [str(folder / "c.txt"), str(folder / "a.parquet"), str(folder / "b.csv")]
    ignored, parquet, csv = (reason for _, reason in part.rejected)
    assert ignored == "not a CSV or Parquet file: ignored"
    assert parquet.startswith(f"table sales: {folder / 'a.parquet'} is not a readable Parquet file (Parquet magic")
    assert csv == (f"table sales: {folder / 'b.csv'} is not a readable CSV file (CSV parse error: Expected 2 "
                   "columns, got 3: 1,2,3); re-deliver the file or remove it, then run the date again")
    assert str(e.value) == "; ".join((ignored, parquet, csv))
    assert "\n" not in parquet  # the first line of the reader's error only


def test_a_drop_file_missing_a_column_is_rejected_by_name_and_the_others_are_mapped(home):
    s = load_settings()
    folder = _drop(s, D)
    pl.DataFrame([{"extra": "x", **SALES}]).write_csv(folder / "a.csv")  # an unknown column first: dropped
    pl.DataFrame({"date": ["2026-03-01"], "store_id": ["s1"]}).write_csv(folder / "b.csv")
    part = next(sources.landing_partitions(s, "sales", D))
    rows = part.read()
    assert rows.column_names == SALES_COLUMNS and rows.num_rows == 1
    assert part.rejected == [(str(folder / "b.csv"), (
        f"table sales: {folder / 'b.csv'} has no column(s) product_id, units, unit_price_cents, on_promotion "
        "(it has: date, store_id); map them with [sources.sales.columns] their_name = \"our_name\" in nightshift.toml"))]


def test_a_drop_of_only_ignored_files_reads_as_no_rows_with_the_tables_columns(home):
    s = load_settings()
    (_drop(s, D) / "readme.md").write_text("no data today")
    rows = next(sources.landing_partitions(s, "sales", D)).read()
    assert rows.num_rows == 0 and rows.column_names == SALES_COLUMNS
    assert set(rows.schema.types) == {pa.string()}


def test_a_csv_is_read_as_text_with_empty_fields_as_null(home):
    s = load_settings()
    (_drop(s, D) / "part-0.csv").write_text(
        "date,store_id,product_id,units,unit_price_cents,on_promotion\n2026-03-01,007,p1,,250,true\n")
    rows = next(sources.landing_partitions(s, "sales", D)).read()
    assert set(rows.schema.types) == {pa.string()}
    assert rows.to_pylist() == [{"date": "2026-03-01", "store_id": "007", "product_id": "p1", "units": None,
                                 "unit_price_cents": "250", "on_promotion": "true"}]


def test_files_with_one_schema_keep_their_types_and_files_with_two_are_compared_as_text(home):
    s = load_settings()
    folder = _drop(s, D)
    pl.DataFrame([{**SALES, "units": 3}]).write_parquet(folder / "a.parquet")
    pl.DataFrame([{**SALES, "units": 4, "product_id": "p2"}]).write_parquet(folder / "b.parquet")
    same = next(sources.landing_partitions(s, "sales", D)).read()
    assert same.schema.field("units").type == pa.int64() and same.column("units").to_pylist() == [3, 4]
    pl.DataFrame([{**SALES, "units": "5", "product_id": "p3"}]).write_parquet(folder / "c.parquet")
    mixed = next(sources.landing_partitions(s, "sales", D)).read()
    assert mixed.schema.field("units").type == pa.string() and mixed.column("units").to_pylist() == ["3", "4", "5"]
    assert sources.one_relation([pa.table({"a": [1]}), pa.table({"a": [2]})]).schema.field("a").type == pa.int64()


def test_as_text_keeps_the_drop_date_a_date():
    frame = pa.table({"_partition": pa.array([D], pa.date32()), "units": pa.array([3], pa.int64()),
                      "ok": pa.array([True])})
    text = sources.as_text(frame)
    assert text.schema == pa.schema([("_partition", pa.date32()), ("units", pa.string()), ("ok", pa.string())])
    assert text.to_pylist() == [{"_partition": D, "units": "3", "ok": "true"}]


def test_time_zone_aware_timestamps_are_read_as_utc_wall_time_in_their_own_unit(tmp_path):
    table = pa.table({
        "ts": pa.array([datetime(2026, 3, 1, 12, tzinfo=UTC)], pa.timestamp("ms", tz="America/New_York")),
        "naive": pa.array([datetime(2026, 3, 1, 12)], pa.timestamp("ms")),
        "aware_us": pa.array([datetime(2026, 3, 1, 13, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, tmp_path / "part-0.parquet")
    rows = sources._read_one("energy", tmp_path / "part-0.parquet")
    assert rows.schema.types == [pa.timestamp("ms"), pa.timestamp("ms"), pa.timestamp("us")]
    assert rows.to_pylist() == [{"ts": datetime(2026, 3, 1, 12), "naive": datetime(2026, 3, 1, 12),
                                 "aware_us": datetime(2026, 3, 1, 13)}]


# --- mapping a source's columns ---------------------------------------------------------------------


def test_a_mapping_renames_drops_unknown_columns_orders_them_and_adds_missing_optional_ones():
    raw = pa.table({"extra": ["x"], "amount": [100], "app": ["a1"], "applicant_id": ["p1"],
                    "application_date": ["2026-03-01"], "income": [5]})
    out = sources._rename("loans", raw, {"app": "application_id", "amount": "amount_cents",
                                          "income": "annual_income_cents"}, "l.csv")
    assert out.column_names == spec("loans").column_names
    row = out.to_pylist()[0]
    assert (row["application_id"], row["amount_cents"], row["annual_income_cents"]) == ("a1", 100, 5)
    assert row["credit_score"] is None and out.schema.field("credit_score").type == pa.string()


def test_a_missing_required_column_names_what_the_file_has_and_the_mapping_to_add():
    raw = pa.table({"day": ["2026-03-01"], "shop": ["s1"], "extra": ["x"]})
    with pytest.raises(SourceError) as e:
        sources._rename("sales", raw, {"day": "date", "shop": "store_id"}, "s.csv")
    assert str(e.value) == (
        "table sales: s.csv has no column(s) product_id, units, unit_price_cents, on_promotion "
        "(it has: day, shop, extra); map them with [sources.sales.columns] their_name = \"our_name\" "
        "in nightshift.toml")


# --- a user's own source ----------------------------------------------------------------------------


def test_a_user_sources_partitions_name_the_table_and_where_they_came_from(home):
    _sales(home / "sales.csv", {"date": "2026-02-28"}, {})
    con = duckdb.connect(str(home / "erp.duckdb"))
    con.execute("create table sales as select * from read_csv($p, all_varchar = true)", {"p": str(home / "sales.csv")})
    con.close()
    for how, origin in [('path = "sales.csv"', "sales.csv"),
                        ('path = "erp.duckdb"\ntable = "sales"', "sales"),
                        ('path = "erp.duckdb"\nquery = "select * from sales"', "select * from sales"),
                        ('path = "sales.csv"\nquery = "select * from source"', "select * from source")]:
        s = _toml(home, f"[sources.sales]\n{how}\n")
        parts = list(sources.partitions(s, "sales", D))
        assert [(p.table, p.day, p.origin) for p in parts] == [("sales", date(2026, 2, 28), origin), ("sales", D, origin)]


def test_a_user_sources_rows_without_a_readable_date_go_with_the_newest_day_up_to_the_run_date(home):
    _sales(home / "sales.csv", {"date": "2026-02-28", "product_id": "p1"}, {"date": "soon", "product_id": "p2"},
           {"date": "2026-03-01 10:00", "product_id": "p3"}, {"date": "2026-03-02", "product_id": "p4"})
    s = _toml(home, '[sources.sales]\npath = "sales.csv"\n')
    parts = list(sources.user_partitions(s, "sales", D))
    assert [p.day for p in parts] == [date(2026, 2, 28), D]
    assert [pl.from_arrow(p.read())["product_id"].to_list() for p in parts] == [["p1"], ["p2", "p3"]]
    assert "_day" not in parts[1].read().column_names


def test_a_user_source_without_any_readable_date_says_which_column_and_shows_the_first_row(home):
    pl.DataFrame({"date": ["soon", "later"], "store_id": ["s1", "s2"], "product_id": ["p1", "p2"],
                  "units": ["3", "4"], "unit_price_cents": ["250", "260"], "on_promotion": ["false", "true"]}) \
        .write_csv(home / "sales.csv")
    s = _toml(home, '[sources.sales]\npath = "sales.csv"\n')
    with pytest.raises(SourceError) as e:
        list(sources.user_partitions(s, "sales", D))
    assert str(e.value) == ("table sales: no row of sales.csv has a readable date in column 'date' "
                            "(first: ('soon', 's1', 'p1', '3')); fix or map that column")


def test_a_user_source_with_no_row_up_to_the_run_date_has_no_partitions_and_no_crash(home):
    """A header-only file, or a run date before the source's first day (an undated row beside)."""
    s = _toml(home, '[sources.sales]\npath = "sales.csv"\n')
    (home / "sales.csv").write_text(",".join(SALES_COLUMNS) + "\n")
    assert list(sources.user_partitions(s, "sales", D)) == []
    assert sources.latest_drop(s, ["sales"]) is None
    _sales(home / "sales.csv", {"date": "2026-03-05"}, {"date": "soon"})
    assert list(sources.user_partitions(s, "sales", D)) == []
    assert [p.day for p in sources.user_partitions(s, "sales", date(2026, 3, 5))] == [date(2026, 3, 5)]


def test_a_user_sources_hash_follows_its_rows(home):
    s = _toml(home, '[sources.sales]\npath = "sales.csv"\n')

    def hashes(*rows) -> dict[date, str]:
        _sales(home / "sales.csv", *rows)
        return {p.day: p.input_hash for p in sources.user_partitions(s, "sales", D)}

    first = hashes({"date": "2026-02-28"}, {})
    assert [len(h) for h in first.values()] == [16, 16]
    assert hashes({"date": "2026-02-28"}, {}) == first
    again = hashes({"date": "2026-02-28"}, {"units": "4"})
    assert again[date(2026, 2, 28)] == first[date(2026, 2, 28)] and again[D] != first[D]


def test_the_unreadable_files_of_a_glob_are_reported_once_with_the_newest_day(home):
    (home / "exports").mkdir()
    _sales(home / "exports" / "a.csv", {"date": "2026-02-28"}, {})
    (home / "exports" / "b.csv").write_text("x,y\n1,2,3\n")
    s = _toml(home, '[sources.sales]\npath = "exports/*.csv"\n')
    parts = list(sources.user_partitions(s, "sales", D))
    assert [p.day for p in parts] == [date(2026, 2, 28), D]
    assert parts[0].rejected == []
    assert [f for f, _ in parts[1].rejected] == [str(home / "exports" / "b.csv")]
    assert parts[1].rejected[0][1].startswith(f"table sales: {home / 'exports' / 'b.csv'} is not a readable CSV file")


def test_a_source_whose_format_cannot_be_told_or_whose_database_is_missing_says_what_to_set(home):
    (home / "sales.txt").write_text("x\n")
    s = _toml(home, '[sources.sales]\npath = "sales.txt"\n')
    with pytest.raises(SourceError) as e:
        sources.read_user_source(s, "sales", s.sources["sales"])
    assert str(e.value) == f"table sales: can't tell the format of {home / 'sales.txt'}; set sources.sales.format"
    s = _toml(home, '[sources.sales]\npath = "erp.db"\ntable = "sales"\n')
    with pytest.raises(SourceError) as e:
        sources.read_user_source(s, "sales", s.sources["sales"])
    assert str(e.value) == f"table sales: database {home / 'erp.db'} does not exist; check sources.sales.path"
    duckdb.connect(str(home / "erp.db")).close()
    s = _toml(home, '[sources.sales]\npath = "erp.db"\n')
    with pytest.raises(SourceError) as e:
        sources.read_user_source(s, "sales", s.sources["sales"])
    assert str(e.value) == "table sales: a DuckDB source needs sources.sales.table or .query"
    s = _toml(home, '[sources.sales]\npath = "exports/*.csv"\n')
    with pytest.raises(SourceError) as e:
        sources.read_user_source(s, "sales", s.sources["sales"])
    assert str(e.value) == (f"table sales: no file matches {home / 'exports' / '*.csv'}; "
                            "check sources.sales.path")


def test_the_format_comes_from_the_suffix_in_any_case_or_from_the_settings(home):
    _sales(home / "s.csv").rename(home / "SALES.CSV")
    _sales(home / "sales.parquet").rename(home / "sales.data")
    _sales(home / "x.parquet").rename(home / "X.PARQUET")
    con = duckdb.connect(str(home / "ERP.DB"))
    con.execute("create table sales as select * from read_parquet($p)", {"p": str(home / "X.PARQUET")})
    con.close()
    for how in ('path = "SALES.CSV"', 'path = "sales.data"\nformat = "parquet"', 'path = "X.PARQUET"',
                'path = "X.PARQUET"\nquery = "select * from source"', 'path = "ERP.DB"\ntable = "sales"'):
        s = _toml(home, f"[sources.sales]\n{how}\n")
        rows = sources.read_user_source(s, "sales", s.sources["sales"])
        assert rows.num_rows == 1 and rows.column_names == SALES_COLUMNS, how


def test_a_failing_query_names_the_settings_to_check(home):
    _sales(home / "sales.csv")
    s = _toml(home, '[sources.sales]\npath = "sales.csv"\nquery = "select nope from source"\n')
    with pytest.raises(SourceError) as e:
        sources.read_user_source(s, "sales", s.sources["sales"])
    message = str(e.value)
    assert message.startswith(f"table sales: reading {home / 'sales.csv'} failed: Binder Error: ")
    assert message.endswith(" (check sources.sales.query and .columns)") and "\n" not in message


def test_a_glob_source_is_read_with_columns_computed_over_every_file(home):
    (home / "exports").mkdir()
    pl.DataFrame({"day": ["2026-02-28"], "shop": ["s1"], "sku": ["p1"], "qty": [3], "dollars": [2.5]}) \
        .write_csv(home / "exports" / "a.csv")
    pl.DataFrame({"dollars": [1.0], "sku": ["p1"], "qty": [4], "day": ["2026-03-01"], "shop": ["s2"]}) \
        .write_csv(home / "exports" / "b.csv")  # the same columns in another order: matched by name
    s = _toml(home, '[sources.sales]\npath = "exports/*.csv"\n[sources.sales.columns]\nday = "date"\n'
                    'shop = "store_id"\nsku = "product_id"\nqty = "units"\nunit_price_cents = "round(dollars * 100)"\n'
                    'on_promotion = false\n')
    rows = pl.from_arrow(sources.read_user_source(s, "sales", s.sources["sales"])).sort("store_id")
    assert rows["unit_price_cents"].to_list() == [250, 100] and rows["units"].to_list() == [3, 4]
    assert rows.columns == SALES_COLUMNS


def test_a_symlink_out_of_the_home_in_a_glob_is_named_in_the_refusal(home, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    _sales(elsewhere / "b.csv")
    (home / "exports").mkdir()
    _sales(home / "exports" / "a.csv")
    (home / "exports" / "b.csv").symlink_to(elsewhere / "b.csv")
    s = _toml(home, '[sources.sales]\npath = "exports/*.csv"\n')
    with pytest.raises(SettingsError, match=r"^sources\.sales\.path match .*/exports/b\.csv resolves to .*outside"):
        sources.read_user_source(s, "sales", s.sources["sales"])


def test_a_source_missing_a_column_is_named_by_its_path(home):
    pl.DataFrame({"day": ["2026-03-01"], "shop": ["s1"]}).write_csv(home / "s.csv")
    s = _toml(home, '[sources.sales]\npath = "s.csv"\n[sources.sales.columns]\nday = "date"\nshop = "store_id"\n')
    with pytest.raises(SourceError, match=rf"^table sales: {re.escape(str(home / 's.csv'))} has no column\(s\) product_id, units"):
        sources.read_user_source(s, "sales", s.sources["sales"])


def test_a_source_mapped_by_renames_alone_is_read_as_text_for_the_contract_to_type(home):
    pl.DataFrame({"day": ["2026-03-01"], "store_id": ["007"], "product_id": ["p1"], "units": ["28.5"],
                  "unit_price_cents": ["250"], "on_promotion": ["false"]}).write_csv(home / "sales.csv")
    s = _toml(home, '[sources.sales]\npath = "sales.csv"\n[sources.sales.columns]\nday = "date"\n')
    rows = sources.read_user_source(s, "sales", s.sources["sales"])
    assert set(rows.schema.types) == {pa.string()}
    assert rows.to_pylist()[0] == {"date": "2026-03-01", "store_id": "007", "product_id": "p1", "units": "28.5",
                                   "unit_price_cents": "250", "on_promotion": "false"}


# --- a source's time zone ---------------------------------------------------------------------------


def _events(home: Path, ts: list, suffix: str = "csv") -> Path:
    frame = pl.DataFrame({"event_id": [f"e{i}" for i in range(len(ts))], "user_id": ["1"] * len(ts), "ts": ts,
                          "event_type": ["view"] * len(ts), "channel": ["email"] * len(ts)})
    path = home / f"events.{suffix}"
    frame.write_csv(path) if suffix == "csv" else frame.write_parquet(path)
    return path


def test_a_time_zone_turns_wall_times_into_utc_text_and_keeps_their_own_offsets(home):
    """events: the time column is not the first, so the columns before it must not end the conversion."""
    _events(home, ["2026-07-01 12:00:00", "2026-07-01T12:00:00Z", "2026-07-01T12:00:00+02:00",
                   "2026-10-25 01:30:00", "2026-03-29 01:30:00", "2026-07-01 12:00:00.250"])
    s = _toml(home, '[sources.events]\npath = "events.csv"\ntimezone = "Europe/London"\n')
    rows = sources.read_user_source(s, "events", s.sources["events"])
    assert rows.column("ts").to_pylist() == [
        "2026-07-01 11:00:00",  # BST is UTC+1
        "2026-07-01T12:00:00Z", "2026-07-01T12:00:00+02:00",  # left for the staging cast
        "2026-10-25 00:30:00",  # the hour that happens twice: its first time, still BST
        None,  # the hour skipped in spring
        "2026-07-01 11:00:00.250",
    ]


def test_without_a_time_zone_times_are_left_as_sent(home):
    sent = ["2026-07-01 12:00:00", "2026-07-01T12:00:00+02:00", "2026-03-29 01:30:00"]
    _events(home, sent)
    s = _toml(home, '[sources.events]\npath = "events.csv"\n')
    assert sources.read_user_source(s, "events", s.sources["events"]).column("ts").to_pylist() == sent


def test_a_time_zone_turns_typed_wall_times_into_utc(home):
    _events(home, [datetime(2026, 7, 1, 12), datetime(2026, 1, 1, 12)], "parquet")
    s = _toml(home, '[sources.events]\npath = "events.parquet"\ntimezone = "Europe/London"\n')
    rows = sources.read_user_source(s, "events", s.sources["events"])
    assert rows.schema.field("ts").type == pa.timestamp("us")
    assert rows.column("ts").to_pylist() == [datetime(2026, 7, 1, 11), datetime(2026, 1, 1, 12)]


# --- the newest days and the input stamp ------------------------------------------------------------


def test_the_newest_days_come_from_the_landing_drops_and_the_user_sources(home):
    s = load_settings()
    assert sources.latest_drop(s) is None and sources.latest_complete_date(s) is None
    for table in ("events", "sales", "inventory"):
        _drop(s, "2026-02-27", table)
    _drop(s, D, "sales")
    (s.landing_dir / "sales" / "date=2026-13-01").mkdir()  # no real date: not a day
    (home / "l.csv").write_text("application_id,applicant_id,application_date,amount_cents,annual_income_cents\n"
                                "a1,p1,2026-02-26,100,100\na2,p2,2026-02-28,100,100\n")
    s = _toml(home, '[sources.loans]\npath = "l.csv"\n')
    assert sources.latest_drop(s) == D  # sales; energy has nothing yet
    assert sources.latest_complete_date(s) is None
    assert sources.latest_complete_date(s, ["sales", "events", "loans"]) == date(2026, 2, 27)
    assert sources.latest_drop(s, ["loans", "users"]) == date(2026, 2, 28)
    assert sources.latest_drop(s, ["events", "loans"]) == date(2026, 2, 28)
    assert sources.latest_drop(s, ["users", "energy"]) is None  # users is not a daily table


def test_the_input_stamp_follows_the_drops_up_to_the_date_and_the_source_files(home):
    s = load_settings()
    _sales(_drop(s, "2026-02-28") / "part-0.parquet")
    first = sources.input_stamp(s, D)
    assert len(first) == 16
    _sales(_drop(s, "2026-03-02") / "part-0.parquet")  # after the date: not its input
    (s.landing_dir / "sales" / "date=garbage").mkdir()
    (s.landing_dir / "sales" / "date=garbage" / "x.csv").write_text("x\n")
    assert sources.input_stamp(s, D) == first
    _sales(_drop(s, D) / "part-0.parquet")
    second = sources.input_stamp(s, D)
    assert second != first
    (home / "l.csv").write_text("a\n1\n")
    s = _toml(home, '[sources.loans]\npath = "l.csv"\n')
    third = sources.input_stamp(s, D)
    assert third != second
    (home / "l.csv").write_text("a\n12\n")  # one byte more
    assert sources.input_stamp(s, D) != third


def test_the_input_stamp_is_every_entry_of_the_drops_by_relative_path_size_and_time(home):
    """The format stays what earlier versions saved (a run's stamp is compared with the last success's):
    each entry of a drop folder, hidden ones included, as `path|size|mtime_ns`, in path order."""
    s = load_settings()
    folder = _drop(s, D)
    _write(folder / "part-0.csv", "x\n1\n", 1)
    _write(folder / ".part-1.csv", "x\n", 2)
    lines = [f"data/landing/sales/date=2026-03-01/.part-1.csv|2|{2 * 10**9}",
             f"data/landing/sales/date=2026-03-01/part-0.csv|4|{10**9}"]
    assert sources.input_stamp(s, D) == hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


def test_the_input_stamp_does_not_depend_on_where_the_home_is(tmp_path, monkeypatch, tmp_path_factory):
    """Paths are stamped relative to the home; a source in an allowed root outside it by its own path."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "l.csv").write_text("a\n1\n")
    os.utime(outside / "l.csv", ns=(1_000_000_000, 1_000_000_000))
    stamps = []
    for name in ("one", "two"):
        home = tmp_path / name
        home.mkdir()
        monkeypatch.setenv("NIGHTSHIFT_HOME", str(home))
        (home / "nightshift.toml").write_text(f'allowed_roots = ["{outside}"]\n[sources.loans]\n'
                                              f'path = "{outside / "l.csv"}"\n')
        s = load_settings()
        part = _sales(_drop(s, D) / "part-0.parquet")
        os.utime(part, ns=(2_000_000_000, 2_000_000_000))
        stamps.append(sources.input_stamp(s, D))
    assert stamps[0] == stamps[1]


@pytest.mark.parametrize("polars_from", [0, sources.POLARS_FROM_BYTES], ids=["polars", "pyarrow"])
def test_a_parquet_drop_reads_the_same_by_either_reader_and_a_column_sent_twice_rejects_the_file(
        home, monkeypatch, polars_from):
    # 0: every file through Polars; the default: a file this small through pyarrow
    monkeypatch.setattr(sources, "POLARS_FROM_BYTES", polars_from)
    s = load_settings()
    folder = _drop(s, D)
    typed = pa.table({"date": pa.array([D, D]), "store_id": ["s1", None], "product_id": pa.array(["p1", "p2"]).dictionary_encode(),
                      "units": [3, 4], "unit_price_cents": [250, 99], "on_promotion": [False, True]})
    pq.write_table(typed, folder / "a.parquet")
    read = next(sources.landing_partitions(s, "sales", D)).read()
    assert read.schema.field("store_id").type == pa.string_view()  # one text type from both readers
    assert pl.from_arrow(read).equals(pl.from_arrow(pq.read_table(folder / "a.parquet")))
    # Polars refuses a file with two columns of one name; pyarrow reads it, and the file is rejected
    # for the column it has twice (not a traceback)
    pq.write_table(pa.Table.from_arrays([*typed.columns, pa.array([1, 2])], names=[*typed.column_names, "units"]),
                   folder / "a.parquet")
    part = next(sources.landing_partitions(s, "sales", D))
    with pytest.raises(SourceError):
        part.read()
    assert part.rejected == [(str(folder / "a.parquet"), f"table sales: {folder / 'a.parquet'} has more than one "
                              f"column for units (it has: {', '.join(typed.column_names)}, units); keep one, or "
                              "map only one of them in [sources.sales.columns]")]
