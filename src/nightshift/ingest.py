"""Loading: every partition up to the run date, checked, into the warehouse; bad rows to quarantine.

A partition is loaded again only when its input changed (its hash), so a re-run is cheap and
loading twice gives the same warehouse. Every row read is accounted for: loaded or quarantined.
"""

from __future__ import annotations

import json
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import polars as pl
import pyarrow as pa

from nightshift import contracts, publish
from nightshift.settings import Settings
from nightshift.sources import Partition, SourceError, invalid_drop_folders, one_relation, partitions
from nightshift.tables import DAILY_TABLES as DAILY
from nightshift.tables import LOAD_ORDER, spec
from nightshift.warehouse import Warehouse, sql_text


@dataclass
class TableLoad:
    """What loading one table up to the run date did, and whether jobs may use it for that date."""

    table: str
    partitions_loaded: int = 0
    partitions_unchanged: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    day_rows_read: int = 0  # the run date's own drop
    day_rows_quarantined: int = 0
    problem: str | None = None  # why jobs must not use this table for the run date
    errors: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.problem is None


def _previous_hashes(warehouse: Warehouse, table: str) -> dict[date, str]:
    rows = warehouse.run_sql("staging/ingest_hashes", table=table)
    return dict(zip(rows["partition_date"].to_list(), rows["input_hash"].to_list(), strict=True))


CHUNK = 31  # drops checked and loaded together: at most a month of daily drops per transaction
CHUNK_ROWS = 2_000_000  # ... and at most about this many rows, so memory stays flat on big tables


def load_table(settings: Settings, warehouse: Warehouse, table: str, run_date: date,
               references_changed: bool = False) -> TableLoad:
    """Load every changed partition of `table` up to `run_date`; judge the run date's own drop.

    When a table this one references has changed (loans re-mapped, say), its drops with rows
    quarantined for an unknown reference are checked again, though their own input is the same.
    """
    out = TableLoad(table)
    out.errors.extend(invalid_drop_folders(settings, table) if table not in settings.sources else [])
    seen = _previous_hashes(warehouse, table)
    if references_changed:
        for day in warehouse.run_sql("staging/ingest_unresolved", table=table)["partition_date"].to_list():
            seen.pop(day, None)
    try:
        parts = list(partitions(settings, table, run_date))
    except SourceError as e:
        out.problem = str(e)
        out.errors.append(str(e))
        return out
    changed = [p for p in parts if seen.get(p.day) != p.input_hash]
    out.partitions_unchanged = len(parts) - len(changed)
    batch: list[tuple[Partition, pa.Table]] = []
    rows = 0
    # A chunk is written to the warehouse on a second thread while the next one is read and typed
    # (DuckDB and Polars release the GIL); its check waits for the write before looking for keys
    # already loaded.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-store") as writer:
        stored: Future[None] | None = None
        for part in changed:
            raw = _read(settings, part, out, run_date)
            if raw is not None:
                batch.append((part, raw))
                rows += raw.num_rows
            if len(batch) >= CHUNK or rows >= CHUNK_ROWS:
                stored = _load_chunk(settings, warehouse, batch, out, run_date, writer, stored)
                batch, rows = [], 0
        if batch:
            stored = _load_chunk(settings, warehouse, batch, out, run_date, writer, stored)
        if stored is not None:
            stored.result()
    if any(p.day == run_date for p in parts) and not out.day_rows_read and not out.problem:
        day = warehouse.run_sql("staging/ingest_day", table=table, day=run_date)
        if day.height:
            out.day_rows_read, out.day_rows_quarantined = day["rows_read"][0], day["rows_quarantined"][0]
    if out.problem is None:
        out.problem = _judge_day(settings, table, run_date, any(p.day == run_date for p in parts), out)
    return out


def _read(settings: Settings, part: Partition, out: TableLoad, run_date: date) -> pa.Table | None:
    """One drop's rows with `_partition`; an unreadable drop is reported (and None)."""
    try:
        raw = part.read()
    except SourceError as e:
        if not part.rejected:  # a rejected file's reason is reported with it (below), once
            out.errors.append(str(e))
        if part.day == run_date:
            out.problem = str(e)
        return None
    finally:
        _reject_files(settings, out, part)
    return raw.append_column("_partition", pa.repeat(pa.scalar(part.day, pa.date32()), raw.num_rows))


def _reject_files(settings: Settings, out: TableLoad, part: Partition) -> None:
    """Files of a drop that were not loaded: on the night page, and listed beside the drop's quarantine."""
    path = settings.quarantine_dir / out.table / f"date={part.day.isoformat()}" / "files.json"
    if not part.rejected:
        path.unlink(missing_ok=True)
        return
    out.errors.extend(f"{file}: {reason}" if file not in reason else reason for file, reason in part.rejected)
    publish.write_text_atomic(json.dumps([{"file": f, "reason": r} for f, r in part.rejected], indent=1), path)


def _load_chunk(settings: Settings, warehouse: Warehouse, batch: list[tuple[Partition, pa.Table]], out: TableLoad,
                run_date: date, writer: Executor, stored: Future[None] | None) -> Future[None]:
    """Check a chunk of drops and write its quarantine; its rows and row accounting are stored by
    `writer` (the returned future), after the previous chunk's (`stored`)."""
    table = out.table
    ok = [part for part, _ in batch]
    raw = one_relation([tb for _, tb in batch])
    checked = contracts.check(table, raw, warehouse, contracts.Plausible.of(settings, table),
                              stored.result if stored is not None else None)
    days = [p.day for p in ok]
    counts = (
        pl.DataFrame({"_partition": days}, schema={"_partition": pl.Date})
        .join(checked.good.group_by("_partition").len("loaded"), on="_partition", how="left")
        .join(checked.bad.group_by("_partition").len("quarantined"), on="_partition", how="left")
        .fill_null(0)
    )
    reasons = {
        d: dict(zip(g["_rule"].to_list(), g["len"].to_list(), strict=True))
        for (d,), g in checked.bad.group_by("_partition", "_rule").len().partition_by("_partition", as_dict=True).items()
    }
    log = counts.with_columns(
        pl.lit(table).alias("table_name"),
        pl.Series("input_hash", [p.input_hash for p in ok]),
        (pl.col("loaded") + pl.col("quarantined")).alias("rows_read"),
        pl.Series("reasons", [json.dumps(reasons.get(d, {})) for d in days]),
        pl.Series("source", [p.origin for p in ok]),
    )
    for (day,), bad in checked.bad.partition_by("_partition", as_dict=True).items():
        _quarantine(settings, table, day, bad.drop("_partition"))
    for day in set(days) - set(reasons):
        _quarantine(settings, table, day, checked.bad.clear())
    done = writer.submit(_store, warehouse, table, days, checked.good, log)
    out.partitions_loaded += len(ok)
    out.rows_read += checked.good.height + checked.bad.height
    out.rows_loaded += checked.good.height
    out.rows_quarantined += checked.bad.height
    for rule, n in checked.reasons.items():
        out.reasons[rule] = out.reasons.get(rule, 0) + n
    today = log.filter(pl.col("_partition") == run_date)
    if today.height:
        out.day_rows_read, out.day_rows_quarantined = today["rows_read"][0], today["quarantined"][0]
    return done


def _store(warehouse: Warehouse, table: str, days: list[date], good: pl.DataFrame, log: pl.DataFrame) -> None:
    """Replace the rows of these drops and their row accounting, in one transaction."""
    # `table` is a registry name (identifiers can't be bound); the partition dates are bound.
    with warehouse.transaction() as cur:
        # This thread's own cursor writes the rows with every thread without keeping their order in the
        # table (nothing reads a table's physical order: every mart orders and keys its rows): it
        # inserts in half the time, and a cold start is mostly this insert.
        cur.execute("set session preserve_insertion_order = false")
        cur.execute("delete from " + table + " where list_contains($p, _partition)", {"p": days})  # noqa: S608
        cur.register("_incoming", good.to_arrow(compat_level=pl.CompatLevel.newest()))
        cur.execute("insert into " + table + " select * from _incoming")  # noqa: S608
        cur.unregister("_incoming")
        cur.register("_log", log.to_arrow())
        cur.execute(sql_text("staging/ingest_log_upsert"))
        cur.unregister("_log")


def _judge_day(settings: Settings, table: str, run_date: date, day_seen: bool, out: TableLoad) -> str | None:
    """Why jobs must not use `table` for the run date: its drop is missing, empty or mostly bad."""
    where = settings.sources[table].path if table in settings.sources else f"{settings.landing_dir / table}/date={run_date}"
    if table in DAILY and not day_seen:
        return f"table {table}: no data for {run_date} (expected {where}); deliver it, then run the date again"
    if table in DAILY and out.day_rows_read == 0:
        return f"table {table}: the drop for {run_date} is empty ({where}); deliver it, then run the date again"
    if out.day_rows_read and out.day_rows_quarantined / out.day_rows_read > settings.bad_fraction_limit:
        share = out.day_rows_quarantined / out.day_rows_read
        return (f"table {table}: {share:.0%} of the rows for {run_date} broke the contract "
                f"(see {settings.quarantine_dir / table}/date={run_date}); fix the source, then run the date again")
    return None


def _quarantine(settings: Settings, table: str, day: date, bad: pl.DataFrame) -> None:
    """Write (or clear) the quarantine of one partition, atomically."""
    path = settings.quarantine_dir / table / f"date={day.isoformat()}" / "rows.parquet"
    if bad.height == 0:
        path.unlink(missing_ok=True)
        return
    publish.write_parquet_atomic(bad, path)


def ingest(settings: Settings, warehouse: Warehouse, run_date: date, tables: list[str] | None = None) -> dict[str, TableLoad]:
    """Load the given tables (default: all), in an order where references are loaded first."""
    wanted = [t for t in LOAD_ORDER if tables is None or t in tables]
    loads: dict[str, TableLoad] = {}
    for t in wanted:
        changed = any(loads.get(ref.table, TableLoad(ref.table)).partitions_loaded for ref in spec(t).references)
        loads[t] = load_table(settings, warehouse, t, run_date, references_changed=changed)
    return loads

