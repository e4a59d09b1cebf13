"""Loading: every partition up to the run date, checked, into the warehouse; bad rows to quarantine.

A partition is loaded again only when its input changed (its hash), so a re-run is cheap and
loading twice gives the same warehouse. Every row read is accounted for: loaded or quarantined.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date

import polars as pl

from nightshift import contracts, publish
from nightshift.settings import Settings
from nightshift.sources import SourceError, partitions
from nightshift.tables import LOAD_ORDER
from nightshift.warehouse import Warehouse

# Tables that get a drop every business day; the others (sign-ups, outcomes) only when something happened.
DAILY = frozenset({"events", "sales", "loans", "inventory", "energy"})


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


def load_table(settings: Settings, warehouse: Warehouse, table: str, run_date: date) -> TableLoad:
    """Load every changed partition of `table` up to `run_date`; judge the run date's own drop."""
    out = TableLoad(table)
    seen = _previous_hashes(warehouse, table)
    day_seen = False
    try:
        parts = list(partitions(settings, table, run_date))
    except SourceError as e:
        out.problem = str(e)
        out.errors.append(str(e))
        return out
    for part in parts:
        day_seen |= part.day == run_date
        if seen.get(part.day) == part.input_hash:
            out.partitions_unchanged += 1
            logged = warehouse.run_sql("staging/ingest_day", table=table, day=part.day).row(0, named=True)
            if part.day == run_date:
                out.day_rows_read, out.day_rows_quarantined = logged["rows_read"], logged["rows_quarantined"]
            continue
        try:
            checked = contracts.check(table, part.read(), part.day, warehouse)
        except SourceError as e:
            out.errors.append(str(e))
            if part.day == run_date:
                out.problem = str(e)
            continue
        read = checked.good.height + checked.bad.height
        warehouse.replace_partition(table, part.day, checked.good)
        _quarantine(settings, table, part.day, checked.bad)
        with warehouse.transaction() as cur:
            cur.execute(
                "insert or replace into _ingest_log (table_name, partition_date, input_hash, rows_read, rows_loaded,"
                " rows_quarantined, reasons, source, loaded_at)"
                " values ($t, $d, $h, $r, $l, $q, $reasons, $s, current_timestamp)",
                {"t": table, "d": part.day, "h": part.input_hash, "r": read, "l": checked.good.height,
                 "q": checked.bad.height, "reasons": json.dumps(checked.reasons), "s": part.origin},
            )
        out.partitions_loaded += 1
        out.rows_read += read
        out.rows_loaded += checked.good.height
        out.rows_quarantined += checked.bad.height
        for k, v in checked.reasons.items():
            out.reasons[k] = out.reasons.get(k, 0) + v
        if part.day == run_date:
            out.day_rows_read, out.day_rows_quarantined = read, checked.bad.height
    if out.problem is None:
        out.problem = _judge_day(settings, table, run_date, day_seen, out)
    return out


def _judge_day(settings: Settings, table: str, run_date: date, day_seen: bool, out: TableLoad) -> str | None:
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
    return {t: load_table(settings, warehouse, t, run_date) for t in wanted}


def as_dict(load: TableLoad) -> dict:
    """A table load as plain data for the manifest."""
    return {**asdict(load), "usable": load.usable}
