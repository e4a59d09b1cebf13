"""The warehouse itself: SQL file names, the as-of macros, opening (busy, broken, read-only), cursors,
reads with bound parameters and transactions. Small hand-made rows in a fresh DuckDB file per test."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

import nightshift
from nightshift import warehouse
from nightshift.tables import TABLES
from nightshift.warehouse import Warehouse, WarehouseBroken, WarehouseBusy, asof_macros, sql_text

D = date(2026, 3, 10)

_HOLDER = ("import duckdb, sys, time\n"
           "con = duckdb.connect(sys.argv[1])\n"
           "print('ready', flush=True)\n"
           "time.sleep(float(sys.argv[2]))\n")


@pytest.fixture
def wh(tmp_path: Path):
    w = Warehouse(tmp_path / "wh" / "warehouse.duckdb")
    yield w
    w.close()


@contextmanager
def _held(path: Path, seconds: float) -> Iterator[subprocess.Popen]:
    """Another process that holds the DuckDB file's lock for `seconds` (stopped on leaving)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _sales(con, rows: list[tuple[date, str, date]]) -> None:
    """Sales rows as (date, store, _partition)."""
    for day, store, partition in rows:
        con.execute("insert into sales values ($d, $s, 'p1', 1, 100, false, $p)", {"d": day, "s": store, "p": partition})


# -- SQL files ---------------------------------------------------------------------------------------

def test_the_sql_folder_is_the_checkouts_beside_src() -> None:
    checkout = Path(nightshift.__file__).resolve().parents[2]  # src/nightshift/ -> the checkout
    assert warehouse._sql_dir() == checkout / "sql" == warehouse.SQL_DIR
    assert (warehouse._sql_dir() / "staging" / "ingest_log.sql").is_file()


def test_the_sql_folder_packaged_inside_an_installed_wheel_wins(monkeypatch, tmp_path: Path) -> None:
    def files(package: str) -> Path:
        assert package == "nightshift"
        return tmp_path / "site-packages" / "nightshift"

    monkeypatch.setattr(warehouse.resources, "files", files)
    assert warehouse._sql_dir() != tmp_path / "site-packages" / "nightshift" / "sql"  # none packaged: the checkout's
    (tmp_path / "site-packages" / "nightshift" / "sql").mkdir(parents=True)
    assert warehouse._sql_dir() == tmp_path / "site-packages" / "nightshift" / "sql"


def test_sql_text_reads_the_named_file() -> None:
    assert sql_text("staging/ingest_log") == (warehouse.SQL_DIR / "staging" / "ingest_log.sql").read_text()
    assert "create table if not exists _ingest_log" in sql_text("staging/ingest_log")


@pytest.mark.parametrize("name", ["../secrets", "/etc/passwd", "staging/", "/staging/ingest_log", "Staging/x",
                                  "staging//ingest_log", "staging/ingest_log.sql", "", "staging/ingest log",
                                  "staging/ingest_log\n"])  # $ alone would let a final line break through
def test_sql_text_refuses_a_name_that_is_not_a_sql_file_name(name: str) -> None:
    with pytest.raises(ValueError, match=r"^not a SQL file name: ") as e:
        sql_text(name)
    assert repr(name) in str(e.value)


def test_sql_text_names_the_missing_file() -> None:
    with pytest.raises(FileNotFoundError) as e:
        sql_text("staging/no_such_file")
    assert str(e.value) == f"no SQL file {warehouse.SQL_DIR / 'staging' / 'no_such_file.sql'}"


# -- the as-of macros ---------------------------------------------------------------------------------

def test_asof_macros_define_known_and_asof_for_a_table() -> None:
    known, asof = asof_macros(TABLES["sales"])
    assert known.startswith("create or replace macro sales_known(run_date) as table")
    assert asof.startswith("create or replace macro sales_asof(run_date) as table")


def test_as_of_reads_rows_landed_by_the_date_and_dated_no_later(wh: Warehouse) -> None:
    _sales(wh.con, [
        (D, "on_time", D),
        (D - date.resolution, "early", D - date.resolution),
        (D, "landed_late", D + date.resolution),  # landed the day after: not known on D
        (D + date.resolution, "future", D),  # landed by D but dated after it (a planned row)
    ])
    assert sorted(wh.as_of("sales", D)["store_id"]) == ["early", "on_time"]
    known = wh.frame("select store_id from sales_known($d) order by store_id", {"d": D})
    assert known["store_id"].to_list() == ["early", "future", "on_time"]
    assert sorted(wh.as_of("sales", D + date.resolution)["store_id"]) == ["early", "future", "landed_late", "on_time"]


def test_as_of_a_timestamp_table_keeps_the_whole_run_date(wh: Warehouse) -> None:
    for ts, meter in [(datetime(2026, 3, 10, 23, 59, 59), "last_second"), (datetime(2026, 3, 11), "next_day"),
                      (datetime(2026, 3, 10), "midnight")]:
        wh.execute("insert into energy values ($ts, $m, 'r', 1.0, null, false, $p)", {"ts": ts, "m": meter, "p": D})
    assert sorted(wh.as_of("energy", D)["meter_id"]) == ["last_second", "midnight"]


def test_as_of_selects_the_columns_asked_for_and_refuses_unknown_ones(wh: Warehouse) -> None:
    _sales(wh.con, [(D, "s1", D)])
    assert wh.as_of("sales", D).columns == [*TABLES["sales"].column_names]  # no _partition
    assert wh.as_of("sales", D, ["units", "store_id"]).rows() == [(1, "s1")]
    with pytest.raises(KeyError, match="no column 'nope'"):
        wh.as_of("sales", D, ["store_id", "nope"])
    with pytest.raises(KeyError, match="unknown table"):
        wh.as_of("nope", D)


# -- the tables it creates ------------------------------------------------------------------------------

def test_a_new_warehouse_has_every_table_with_its_partition_and_the_shared_macros(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "warehouse.duckdb"  # parents created
    with Warehouse(path) as w:
        for t in TABLES.values():
            cols = w.frame("select column_name, data_type, is_nullable from information_schema.columns "
                           "where table_name = $t order by ordinal_position", {"t": t.name}).rows()
            assert [c[:2] for c in cols] == [*((c.name, c.type) for c in t.columns), ("_partition", "DATE")]
            assert cols[-1][2] == "NO"
            assert w.frame(f"select count(*) as n from {t.name}_asof($d)", {"d": D})["n"][0] == 0  # noqa: S608
        assert w.frame("select count(*) as n from _ingest_log")["n"][0] == 0
        functions = set(w.frame("select function_name from duckdb_functions()")["function_name"])
        assert {"starts_session", "user_event_history", "sessionized_events", "sessionized_totals"} <= functions
        assert {f"{t}_known" for t in TABLES} | {f"{t}_asof" for t in TABLES} <= functions
    assert path.is_file()


def test_opening_again_keeps_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with Warehouse(path) as w:
        _sales(w.con, [(D, "s1", D)])
    with Warehouse(path) as w:
        assert w.as_of("sales", D)["store_id"].to_list() == ["s1"]


def test_read_only_opens_an_existing_warehouse_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with Warehouse(path) as w:
        _sales(w.con, [(D, "s1", D)])
    with Warehouse(path, read_only=True) as r:
        assert r.as_of("sales", D).height == 1
        with pytest.raises(duckdb.InvalidInputException, match="read-only"):
            r.execute("delete from sales")


def test_the_memory_limit_is_set_and_open_takes_it_from_the_settings(tmp_path: Path) -> None:
    def limit(w: Warehouse) -> str:
        return w.frame("select current_setting('memory_limit') as m")["m"][0]

    with Warehouse(tmp_path / "a.duckdb", memory_limit="100MB") as w:
        assert limit(w) == "95.3 MiB"
    with Warehouse(tmp_path / "b.duckdb") as w:
        assert limit(w) == "3.7 GiB"  # the default, 4GB
    settings = SimpleNamespace(warehouse_path=tmp_path / "c" / "warehouse.duckdb", warehouse_memory_limit="200MB")
    with Warehouse.open(settings) as w:
        assert w.path == settings.warehouse_path and limit(w) == "190.7 MiB"
    with Warehouse.open(settings, read_only=True) as w:  # keywords are passed on
        with pytest.raises(duckdb.InvalidInputException, match="read-only"):
            w.execute("delete from sales")


def test_close_and_the_context_manager_close_the_connection(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "warehouse.duckdb") as w:
        assert isinstance(w, Warehouse)
    with pytest.raises(duckdb.ConnectionException):
        w.con.execute("select 1")
    w2 = Warehouse(tmp_path / "warehouse.duckdb")
    w2.close()
    with pytest.raises(duckdb.ConnectionException):
        w2.con.execute("select 1")


# -- another process holds it, or it is no database -----------------------------------------------------

def test_a_warehouse_held_by_another_process_waits_then_says_who_holds_it(tmp_path: Path, caplog) -> None:
    path = tmp_path / "warehouse.duckdb"
    Warehouse(path).close()
    with _held(path, 30) as holder:
        caplog.set_level(logging.WARNING, logger="nightshift.warehouse")
        start = time.monotonic()
        with pytest.raises(WarehouseBusy) as e:
            Warehouse(path, wait_s=1.2)
        waited = time.monotonic() - start
    assert 1.2 <= waited < 10
    assert re.fullmatch(
        rf"the warehouse {re.escape(str(path))} is in use by another nightshift process \(IO Error: Could not set lock "
        rf"on file .*\(PID {holder.pid}\)[^\n]*\); wait for it to finish or stop it", str(e.value))
    assert e.value.__cause__ is None and e.value.__suppress_context__
    waits = [r for r in caplog.records if r.name == "nightshift.warehouse"]
    assert len(waits) == 1  # said once, not at every try
    assert waits[0].levelno == logging.WARNING
    assert waits[0].getMessage().startswith(f"waiting up to 1 s for the warehouse {path}: IO Error: Could not set lock")


def test_by_default_a_busy_warehouse_is_tried_every_half_second_for_30_seconds(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "warehouse.duckdb"
    Warehouse(path).close()
    clock = [1000.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] += s

    monkeypatch.setattr(warehouse.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(warehouse.time, "sleep", sleep)
    with _held(path, 60):
        with pytest.raises(WarehouseBusy):
            Warehouse(path)
    assert set(sleeps) == {0.5}
    assert len(sleeps) == 61  # tries at 0, 0.5, ..., 30.0 and 30.5 (past the deadline): 61 waits between them


def test_a_busy_warehouse_with_no_wait_fails_at_once(tmp_path: Path, caplog) -> None:
    path = tmp_path / "warehouse.duckdb"
    Warehouse(path).close()
    with _held(path, 30):
        caplog.set_level(logging.WARNING, logger="nightshift.warehouse")
        start = time.monotonic()
        with pytest.raises(WarehouseBusy):
            Warehouse(path, wait_s=0.0)
        assert time.monotonic() - start < 0.45  # no half-second sleep
    assert not caplog.records


def test_a_queued_opener_gets_the_warehouse_once_the_other_process_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with Warehouse(path) as w:
        _sales(w.con, [(D, "s1", D)])
    with _held(path, 1.0):
        with Warehouse(path, wait_s=30) as w:
            assert w.as_of("sales", D).height == 1


def test_a_file_that_is_no_database_names_the_repair(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    path.write_bytes(b"not a database" * 1000)
    start = time.monotonic()
    with pytest.raises(WarehouseBroken) as e:
        Warehouse(path, wait_s=30)
    assert time.monotonic() - start < 10  # broken is not busy: no waiting
    assert str(e.value) == (
        f"the warehouse {path} cannot be opened (IO Error: The file \"{path}\" exists, but it is not a valid DuckDB "
        "database file!); rebuild it from the landing zone and your sources with `nightshift repair warehouse` "
        "(the privacy ledger and the models are kept)")
    assert e.value.__cause__ is None and e.value.__suppress_context__


# -- cursors, reads and writes ---------------------------------------------------------------------------

def test_each_thread_gets_its_own_cursor_and_keeps_it(wh: Warehouse) -> None:
    mine = wh.cursor
    assert wh.cursor is mine and mine is not wh.con
    other: list = []
    t = threading.Thread(target=lambda: other.extend([wh.cursor, wh.cursor]))
    t.start()
    t.join()
    assert other[0] is other[1] and other[0] is not mine


def test_frame_execute_and_run_sql_bind_parameters(wh: Warehouse) -> None:
    assert wh.frame("select 1 as a").rows() == [(1,)]
    assert wh.frame("select 2 as a", {}).rows() == [(2,)]
    assert wh.frame("select $x + 1 as a", {"x": 41}).rows() == [(42,)]
    wh.execute("insert into sales values (?, 's1', 'p1', 3, 100, false, ?)", [D, D])
    wh.execute("insert into sales values ($d, 's2', 'p1', 4, 100, false, $d)", {"d": D})
    wh.execute("insert into sales values ('2026-03-09', 's3', 'p1', 5, 100, false, '2026-03-09')")
    assert wh.frame("select store_id from sales order by store_id")["store_id"].to_list() == ["s1", "s2", "s3"]
    with pytest.raises(ValueError, match="not a SQL file name"):
        wh.run_sql("../x")


def test_run_sql_runs_the_named_file_with_its_parameters(wh: Warehouse, monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "q.sql").write_text("select count(*) as n, max(store_id) as top from sales where date <= $d")
    monkeypatch.setattr(warehouse, "SQL_DIR", tmp_path)
    _sales(wh.con, [(D, "a", D), (D + date.resolution, "b", D)])
    assert wh.run_sql("t/q", d=D).rows() == [(1, "a")]
    assert wh.run_sql("t/q", d=D + date.resolution).rows() == [(2, "b")]


def test_a_transaction_commits_and_rolls_back_on_error(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with Warehouse(path) as wh:
        with wh.transaction() as cur:
            assert cur is wh.cursor
            _sales(cur, [(D, "kept", D)])
        with pytest.raises(RuntimeError, match="boom"):
            with wh.transaction() as cur:
                _sales(cur, [(D, "undone", D)])
                raise RuntimeError("boom")
        assert wh.as_of("sales", D)["store_id"].to_list() == ["kept"]
        with wh.transaction() as cur:  # usable again: the failed one was rolled back, not left open
            _sales(cur, [(D, "after", D)])
        assert sorted(wh.as_of("sales", D)["store_id"]) == ["after", "kept"]
    with Warehouse(path, read_only=True) as again:  # committed: in the file
        assert sorted(again.as_of("sales", D)["store_id"]) == ["after", "kept"]


def test_transactions_of_two_threads_take_turns(wh: Warehouse) -> None:
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        inside.wait()
        with wh.transaction():
            order.append("second")

    t = threading.Thread(target=second)
    t.start()
    with wh.transaction():
        inside.set()
        time.sleep(0.3)
        order.append("first")
    t.join()
    assert order == ["first", "second"]
    with wh.write_lock, wh.transaction():  # re-entrant within a thread
        pass
