"""What a load records: the counts of a `TableLoad`, one line per drop in `_ingest_log`, the quarantine
files beside each drop, and the verdict on the run date's own drop (issue 16: every row read is
accounted for, and a mutant of `ingest.py` that breaks any of that fails a test here).

Each test builds a few hand-made `sales` (or `users`/`events`) drops in a fresh home, small enough to read.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from nightshift import contracts, ingest
from nightshift.settings import load_settings
from nightshift.sources import partitions
from nightshift.tables import LOAD_ORDER
from nightshift.warehouse import Warehouse

D = date(2026, 3, 10)
SCHEMA = {"date": pl.Date, "store_id": pl.String, "product_id": pl.String, "units": pl.Int64,
          "unit_price_cents": pl.Int64, "on_promotion": pl.Boolean}


def rows(day: date, n: int = 3, first: int = 0, **over) -> list[dict]:
    """`n` good sales rows for `day` (products p<first>..), with fields overridden."""
    return [{"date": day, "store_id": "s1", "product_id": f"p{i}", "units": 5 + i, "unit_price_cents": 199,
             "on_promotion": False, **over} for i in range(first, first + n)]


def drop(s, day: date, data: list[dict], table: str = "sales", schema: dict | None = None) -> str:
    folder = s.landing_dir / table / f"date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(data, schema=SCHEMA if schema is None else schema).write_parquet(folder / "part-0.parquet")
    return str(folder)


def log(wh: Warehouse, table: str = "sales") -> dict[date, dict]:
    frame = wh.frame("select partition_date, input_hash, rows_read, rows_loaded, rows_quarantined, reasons, source "
                     "from _ingest_log where table_name = $t order by partition_date", {"t": table})
    return {r.pop("partition_date"): r | {"reasons": json.loads(r["reasons"])} for r in frame.to_dicts()}


def quarantine(s, day: date, name: str = "rows.parquet", table: str = "sales"):
    return s.quarantine_dir / table / f"date={day.isoformat()}" / name


@pytest.fixture
def env(home):
    s = load_settings()
    with Warehouse(s.warehouse_path) as wh:
        yield s, wh


def test_each_drop_gets_its_own_line_in_the_ingest_log_and_the_counts_add_up(env):
    s, wh = env
    d1, d2 = D - timedelta(days=2), D - timedelta(days=1)
    folders = {d1: drop(s, d1, rows(d1, 3) + rows(d1, 1, first=7, units=-1)),
               d2: drop(s, d2, rows(d2, 2)),
               D: drop(s, D, rows(D, 4) + rows(D, 1, first=8, units=-2) + rows(D, 1))}
    out = ingest.load_table(s, wh, "sales", D)
    assert (out.partitions_loaded, out.partitions_unchanged) == (3, 0)
    assert (out.rows_read, out.rows_loaded, out.rows_quarantined) == (12, 9, 3)
    assert out.reasons == {"out of range in units": 2, "duplicate row": 1}  # summed over the drops
    assert (out.day_rows_read, out.day_rows_quarantined) == (6, 2)
    assert out.problem is None and out.usable and out.errors == []
    hashes = {p.day: p.input_hash for p in partitions(s, "sales", D)}
    assert log(wh) == {
        d1: {"input_hash": hashes[d1], "rows_read": 4, "rows_loaded": 3, "rows_quarantined": 1,
             "reasons": {"out of range in units": 1}, "source": folders[d1]},
        d2: {"input_hash": hashes[d2], "rows_read": 2, "rows_loaded": 2, "rows_quarantined": 0,
             "reasons": {}, "source": folders[d2]},
        D: {"input_hash": hashes[D], "rows_read": 6, "rows_loaded": 4, "rows_quarantined": 2,
            "reasons": {"out of range in units": 1, "duplicate row": 1}, "source": folders[D]},
    }
    loaded = wh.frame("select _partition, count(*) as n from sales group by 1 order by 1")
    assert loaded.rows() == [(d1, 3), (d2, 2), (D, 4)]
    assert pl.read_parquet(quarantine(s, d1))["product_id"].to_list() == ["p7"]
    assert sorted(pl.read_parquet(quarantine(s, D))["_rule"].to_list()) == ["duplicate row", "out of range in units"]
    assert "_partition" not in pl.read_parquet(quarantine(s, D)).columns
    assert not quarantine(s, d2).exists()  # a clean drop has no quarantine file


def test_a_second_load_reads_nothing_but_still_knows_and_judges_the_day(env):
    s, wh = env
    drop(s, D - timedelta(days=1), rows(D - timedelta(days=1)))
    drop(s, D, rows(D, 1) + rows(D, 2, first=5, units=-1))  # 2 of 3 bad: over the limit of one half
    first = ingest.load_table(s, wh, "sales", D)
    again = ingest.load_table(s, wh, "sales", D)
    assert (again.partitions_loaded, again.partitions_unchanged) == (0, 2)
    assert (again.rows_read, again.rows_loaded, again.rows_quarantined, again.reasons) == (0, 0, 0, {})
    assert (again.day_rows_read, again.day_rows_quarantined) == (3, 2)  # read back from the log
    assert again.problem == first.problem and "67% of the rows" in again.problem
    assert wh.frame("select count(*) as n from sales")["n"][0] == 4


def test_a_redelivered_drop_replaces_only_its_rows_its_line_and_its_quarantine(env):
    s, wh = env
    d1, d2 = D - timedelta(days=2), D - timedelta(days=1)
    drop(s, d1, rows(d1))
    drop(s, d2, rows(d2, 2) + rows(d2, 1, first=4, units=-1))
    drop(s, D, rows(D))
    ingest.load_table(s, wh, "sales", D)
    assert quarantine(s, d2).exists()
    drop(s, d2, rows(d2, 4, units=1))  # re-delivered, clean, one row more
    out = ingest.load_table(s, wh, "sales", D)
    assert (out.partitions_loaded, out.partitions_unchanged) == (1, 2)
    assert (out.rows_read, out.rows_loaded, out.rows_quarantined) == (4, 4, 0)
    assert (out.day_rows_read, out.day_rows_quarantined) == (3, 0)  # the run date's drop, from the log
    assert not quarantine(s, d2).exists()  # the old quarantine is cleared
    units = wh.frame("select _partition, list(units order by product_id) as u from sales group by 1 order by 1")
    assert units.rows() == [(d1, [5, 6, 7]), (d2, [1, 1, 1, 1]), (D, [5, 6, 7])]
    line = log(wh)[d2]
    assert (line["rows_read"], line["rows_loaded"], line["rows_quarantined"], line["reasons"]) == (4, 4, 0, {})
    assert line["input_hash"] == {p.day: p.input_hash for p in partitions(s, "sales", D)}[d2]


def test_files_left_out_of_a_drop_are_listed_beside_it_until_it_is_delivered_clean(env):
    s, wh = env
    folder = drop(s, D, rows(D))
    (s.landing_dir / "sales" / f"date={D}" / "notes.txt").write_text("hello")
    out = ingest.load_table(s, wh, "sales", D)
    note = f"{folder}/notes.txt"
    assert out.errors == [f"{note}: not a CSV or Parquet file: ignored"]
    assert out.usable and out.rows_loaded == 3
    assert json.loads(quarantine(s, D, "files.json").read_text()) == [
        {"file": note, "reason": "not a CSV or Parquet file: ignored"}]
    (s.landing_dir / "sales" / f"date={D}" / "notes.txt").unlink()
    out = ingest.load_table(s, wh, "sales", D)
    assert out.errors == [] and out.partitions_loaded == 1
    assert not quarantine(s, D, "files.json").exists()


def test_a_reason_that_names_its_file_is_not_prefixed_with_it_again(env):
    s, wh = env
    drop(s, D, rows(D))
    bad = s.landing_dir / "sales" / f"date={D}" / "part-1.parquet"
    bad.write_bytes(b"PAR1 not really")
    out = ingest.load_table(s, wh, "sales", D)
    assert len(out.errors) == 1 and str(bad) in out.errors[0]
    assert not out.errors[0].startswith(f"{bad}: ")  # the reader's reason already names the file
    assert json.loads(quarantine(s, D, "files.json").read_text())[0]["file"] == str(bad)


def test_an_unreadable_old_drop_is_reported_but_leaves_the_run_date_usable(env):
    s, wh = env
    old = D - timedelta(days=1)
    drop(s, old, rows(old))
    (s.landing_dir / "sales" / f"date={old}" / "part-0.parquet").write_bytes(b"garbage")
    drop(s, D, rows(D))
    out = ingest.load_table(s, wh, "sales", D)
    assert out.usable and out.problem is None
    assert out.errors and all(f"date={old}" in e and "not a readable Parquet" in e for e in out.errors)
    assert len(out.errors) == len(set(out.errors)) == 1  # the drop's one file, said once
    assert (out.partitions_loaded, out.rows_loaded, out.day_rows_read) == (1, 3, 3)
    assert list(log(wh)) == [D]  # the unreadable drop is not recorded as loaded: the next run tries it again


def test_an_unreadable_drop_on_the_run_date_is_the_days_problem(env):
    s, wh = env
    drop(s, D, rows(D))
    (s.landing_dir / "sales" / f"date={D}" / "part-0.parquet").write_bytes(b"garbage")
    out = ingest.load_table(s, wh, "sales", D)
    assert not out.usable and out.errors == [out.problem]  # said once, as the reason the day can't be used
    assert f"date={D}" in out.problem and "not a readable Parquet" in out.problem


def test_a_bad_share_of_exactly_the_limit_is_still_usable(env):
    s, wh = env
    drop(s, D, rows(D, 2) + rows(D, 2, first=5, units=-1))
    out = ingest.load_table(s, wh, "sales", D)
    assert (out.day_rows_read, out.day_rows_quarantined) == (4, 2) and out.usable


def test_the_verdicts_on_the_run_date_say_what_to_do(env):
    s, wh = env
    drop(s, D - timedelta(days=1), rows(D - timedelta(days=1)))
    where = f"{s.landing_dir / 'sales'}/date={D}"
    missing = ingest.load_table(s, wh, "sales", D)
    assert missing.problem == (f"table sales: no data for {D} (expected {where}); deliver it, then run the date again")
    drop(s, D, [])
    empty = ingest.load_table(s, wh, "sales", D)
    assert empty.problem == f"table sales: the drop for {D} is empty ({where}); deliver it, then run the date again"
    drop(s, D, rows(D, 1) + rows(D, 2, first=5, units=-1))
    bad = ingest.load_table(s, wh, "sales", D)
    assert bad.problem == (f"table sales: 67% of the rows for {D} broke the contract "
                           f"(see {s.quarantine_dir / 'sales'}/date={D}); fix the source, then run the date again")


def test_a_user_source_verdict_names_the_source_not_the_landing_zone(home, monkeypatch):
    (home / "sales.csv").write_text("date,store_id,product_id,units,unit_price_cents,on_promotion\n"
                                    f"{D - timedelta(days=1)},s1,p1,3,250,false\n")
    monkeypatch.setenv("NIGHTSHIFT_SOURCES", '{"sales": {"path": "sales.csv"}}')
    s = load_settings()
    (s.landing_dir / "sales" / "date=yesterday").mkdir(parents=True)
    with Warehouse(s.warehouse_path) as wh:
        out = ingest.load_table(s, wh, "sales", D)
    assert out.problem == (f"table sales: no data for {D} (expected {s.sources['sales'].path}); "
                           "deliver it, then run the date again")
    assert out.errors == []  # a folder in the unused landing zone is not reported


def test_a_table_that_is_not_daily_needs_no_drop_on_the_run_date(env):
    s, wh = env
    users = {"user_id": pl.Int64, "signup_date": pl.Date, "signup_channel": pl.String, "country": pl.String}
    drop(s, D - timedelta(days=3), [{"user_id": 1, "signup_date": D - timedelta(days=3), "signup_channel": "email",
                                     "country": "DE"}], "users", users)
    out = ingest.load_table(s, wh, "users", D)
    assert out.usable and out.rows_loaded == 1 and out.day_rows_read == 0


def test_ingest_loads_the_tables_asked_for_in_load_order(env):
    s, wh = env
    drop(s, D, rows(D))
    assert list(ingest.ingest(s, wh, D, ["sales", "events", "users"])) == ["users", "events", "sales"]
    everything = ingest.ingest(s, wh, D)
    assert list(everything) == list(LOAD_ORDER)
    assert everything["sales"].usable and everything["sales"].partitions_unchanged == 1
    assert not everything["events"].usable  # no drop: daily tables say so


USERS = {"user_id": pl.Int64, "signup_date": pl.Date, "signup_channel": pl.String, "country": pl.String}
EVENTS = {"event_id": pl.String, "user_id": pl.Int64, "ts": pl.Datetime, "event_type": pl.String,
          "channel": pl.String}


def _user(uid: int, day: date) -> dict:
    return {"user_id": uid, "signup_date": day, "signup_channel": "email", "country": "DE"}


def _event(eid: str, uid: int, day: date) -> dict:
    return {"event_id": eid, "user_id": uid, "ts": datetime(day.year, day.month, day.day, 12), "event_type": "visit", "channel": "email"}


def test_events_of_an_unknown_user_are_checked_again_once_users_change(env):
    s, wh = env
    old = D - timedelta(days=5)
    drop(s, old, [_user(1, old)], "users", USERS)
    drop(s, D, [_event("e1", 1, D), _event("e2", 2, D)], "events", EVENTS)
    first = ingest.ingest(s, wh, D, ["users", "events"])
    assert first["events"].reasons == {"unknown user_id": 1}
    assert ingest.load_table(s, wh, "events", D).partitions_loaded == 0  # by default references are unchanged
    unchanged = ingest.ingest(s, wh, D, ["users", "events"])["events"]
    assert unchanged.partitions_loaded == 0 and unchanged.partitions_unchanged == 1  # users did not change
    drop(s, old + timedelta(days=1), [_user(2, old)], "users", USERS)  # user 2 arrives in a new drop
    again = ingest.ingest(s, wh, D, ["users", "events"])
    assert again["users"].partitions_loaded == 1
    assert again["events"].partitions_loaded == 1 and again["events"].rows_loaded == 2
    assert again["events"].rows_quarantined == 0 and not quarantine(s, D, table="events").exists()
    alone = ingest.ingest(s, wh, D, ["events"])["events"]  # nothing changed: no reference loaded anything
    assert alone.partitions_loaded == 0


def test_drops_are_checked_and_loaded_in_chunks_of_days_and_of_rows(env, monkeypatch):
    s, wh = env
    days = [D - timedelta(days=i) for i in range(3, -1, -1)]
    sizes = []
    check = contracts.check

    def counting(table, raw, *a, **k):
        sizes.append(raw.num_rows)
        return check(table, raw, *a, **k)

    def load(chunk: int, chunk_rows: int, units: int | None) -> ingest.TableLoad:
        for d in days:  # (re-)delivered: every drop has changed; 2 rows each, one bad unless units is given
            drop(s, d, rows(d, 2, units=units) if units else rows(d, 1) + rows(d, 1, first=5, units=-1))
        monkeypatch.setattr(ingest, "CHUNK", chunk)
        monkeypatch.setattr(ingest, "CHUNK_ROWS", chunk_rows)
        sizes.clear()
        return ingest.load_table(s, wh, "sales", D)

    monkeypatch.setattr(contracts, "check", counting)
    out = load(2, 100, None)  # two drops a chunk
    assert sizes == [4, 4] and out.partitions_loaded == 4
    assert (out.rows_read, out.rows_loaded, out.rows_quarantined) == (8, 4, 4)
    assert out.reasons == {"out of range in units": 4}  # summed over the chunks
    assert set(log(wh)) == set(days) and (out.day_rows_read, out.day_rows_quarantined) == (2, 1)
    out = load(100, 4, 1)  # a chunk is full once it has 4 rows
    assert sizes == [4, 4] and (out.rows_read, out.rows_loaded, out.rows_quarantined) == (8, 8, 0)
    out = load(100, 3, 2)  # ... or more: 3 rows; every chunk counts its rows afresh
    assert sizes == [4, 4] and out.partitions_loaded == 4
    assert wh.frame("select sum(units) as u from sales")["u"][0] == 16


def test_a_chunk_meets_the_keys_of_the_chunk_before_even_while_that_one_is_still_being_written(env, monkeypatch):
    """Chunks are written on a second thread; the next chunk's check must wait for that write, or a key
    delivered again the next day would slip in twice."""
    s, wh = env
    d1, d2, d3, d4 = (D - timedelta(days=i) for i in (4, 3, 2, 1))
    drop(s, d1, [_user(1, d1)], "users", USERS)
    drop(s, d2, [_user(2, d2)], "users", USERS)
    drop(s, d3, [_user(2, d3), _user(3, d3)], "users", USERS)  # user 2 again, in the next chunk
    drop(s, d4, [_user(4, d4)], "users", USERS)
    drop(s, D, [_user(4, D), _user(5, D)], "users", USERS)  # user 4 again, in the last chunk
    store = ingest._store

    def slow(*a, **k):
        time.sleep(0.5)
        return store(*a, **k)

    monkeypatch.setattr(ingest, "_store", slow)
    monkeypatch.setattr(ingest, "CHUNK", 2)  # chunks d1+d2, d3+d4 (in the loop) and D (the one left after it)
    out = ingest.load_table(s, wh, "users", D)
    assert out.reasons == {"duplicate key across days": 2} and out.rows_loaded == 5
    assert wh.frame("select user_id, _partition from users order by 1").rows() == [
        (1, d1), (2, d2), (3, d3), (4, d4), (5, D)]


def test_a_failed_write_stops_the_load_and_later_chunks_are_not_stored(env, monkeypatch):
    s, wh = env
    days = [D - timedelta(days=i) for i in range(2, -1, -1)]
    for d in days:
        drop(s, d, rows(d))
    store, calls = ingest._store, []

    def failing(*a, **k):
        calls.append(a[2])
        if len(calls) == 1:
            raise OSError("disk full")
        return store(*a, **k)

    monkeypatch.setattr(ingest, "_store", failing)
    monkeypatch.setattr(ingest, "CHUNK", 1)
    with pytest.raises(OSError, match="disk full"):
        ingest.load_table(s, wh, "sales", D)
    assert len(calls) == 1  # the second chunk waited for the first write, saw it fail and stored nothing
    assert wh.frame("select count(*) as n from sales")["n"][0] == 0 and log(wh) == {}


def test_the_plausible_window_comes_from_the_settings(home):
    (home / "nightshift.toml").write_text('earliest_date = 2026-01-01\nmax_days_before_drop = 5\n')
    s = load_settings()
    drop(s, D, rows(D, 2) + rows(D - timedelta(days=6), 1, first=4) + rows(date(2025, 12, 31), 1, first=5))
    with Warehouse(s.warehouse_path) as wh:
        out = ingest.load_table(s, wh, "sales", D)
    assert out.reasons == {"dated long before its drop": 1, "date before the earliest plausible date": 1}
    assert out.rows_loaded == 2


def test_a_load_leaves_no_views_behind_on_the_warehouse(env):
    s, wh = env

    def views() -> list:
        return wh.cursor.sql("select view_name from duckdb_views() where temporary and not internal").fetchall()

    drop(s, D, rows(D))
    before = views()
    assert ingest.load_table(s, wh, "sales", D).rows_loaded == 3
    assert views() == before  # the rows inserted and the log lines are not left registered


def test_a_source_that_cannot_be_listed_makes_the_table_unusable_and_says_why(home, monkeypatch):
    monkeypatch.setenv("NIGHTSHIFT_SOURCES", '{"sales": {"path": "nowhere/*.csv"}}')
    s = load_settings()
    with Warehouse(s.warehouse_path) as wh:
        out = ingest.load_table(s, wh, "sales", D)
    assert "no file matches" in out.problem and out.errors == [out.problem]
    assert (out.partitions_loaded, out.rows_read) == (0, 0)


def test_a_withdrawn_drop_is_not_counted_as_the_days_rows(env):
    s, wh = env
    drop(s, D - timedelta(days=1), rows(D - timedelta(days=1)))
    drop(s, D, rows(D))
    assert ingest.load_table(s, wh, "sales", D).day_rows_read == 3
    for f in (s.landing_dir / "sales" / f"date={D}").iterdir():
        f.unlink()
    (s.landing_dir / "sales" / f"date={D}").rmdir()
    out = ingest.load_table(s, wh, "sales", D)
    assert (out.day_rows_read, out.day_rows_quarantined) == (0, 0) and "no data for" in out.problem
