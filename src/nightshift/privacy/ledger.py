"""The persistent budget ledger and the stored releases, both in the warehouse DuckDB file.

Why this is safe against double spending: DuckDB lets one process at a time open the file for
writing (`Warehouse` waits for that lock), `Warehouse.transaction()` serialises writers inside a
process, and the charge transaction re-reads the spent budget and the stored release before it
inserts. A charge and its stored values are committed together, before anything is returned.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb
import polars as pl

from nightshift.privacy.spec import BudgetExceeded
from nightshift.warehouse import Warehouse, sql_text

TOLERANCE = 1e-9  # float slack when comparing sums of ε with the budget


def ensure_tables(wh: Warehouse) -> None:
    """Create the ledger tables if they do not exist (idempotent; a no-op once they do)."""
    if has_tables(wh.cursor):  # also lets a read-only warehouse re-serve stored releases
        return
    with wh.transaction() as cur:
        cur.execute(sql_text("privacy/ledger"))


def has_tables(cur: duckdb.DuckDBPyConnection) -> bool:
    """Whether this warehouse has a ledger yet (a read-only one may not)."""
    row = cur.sql("select count(*) from duckdb_tables() where table_name = '_privacy_ledger'").fetchall()
    return bool(row and row[0][0])


@dataclass(frozen=True)
class WindowUse:
    """The fullest budget window containing a date: its bounds and the ε spent in it."""

    window_start: date
    window_end: date
    spent: float
    releases: int


def window_use(cur: duckdb.DuckDBPyConnection, dataset: str, run_date: date, window_days: int) -> WindowUse:
    """The most ε spent on `dataset` in any `window_days` window that contains `run_date`."""
    row = cur.sql(
        sql_text("privacy/window_spent"),
        params={"dataset": dataset, "run_date": run_date, "window_days": window_days},
    ).fetchall()
    if not row:  # no charges: the window ending on the run date is empty
        return WindowUse(run_date - timedelta(days=window_days - 1), run_date, 0.0, 0)
    ws, we, spent, n = row[0]
    return WindowUse(ws, we, float(spent), int(n))


@dataclass(frozen=True)
class Stored:
    """A stored release: its released table, its metadata and where it came from."""

    release_id: str
    run_date: date
    epsilon: float
    table: pl.DataFrame
    meta: dict[str, Any]


def _stored(rows: list[tuple[Any, ...]]) -> Stored | None:
    if not rows:
        return None
    release_id, run_date, epsilon, meta, payload = rows[0]
    return Stored(release_id, run_date, float(epsilon), pl.read_ipc(io.BytesIO(payload)), json.loads(meta))


_SELECT = "select release_id, run_date, epsilon, meta, payload from _privacy_releases "


def find(cur: duckdb.DuckDBPyConnection, release_id: str) -> Stored | None:
    """The stored release with this id, if any."""
    return _stored(cur.sql(_SELECT + "where release_id = $id", params={"id": release_id}).fetchall())


def last_good(cur: duckdb.DuckDBPyConnection, job: str, name: str, run_date: date) -> Stored | None:
    """The newest stored release of `job`/`name` dated on or before `run_date` (for a refusal)."""
    return _stored(cur.sql(
        _SELECT + "where job = $job and release_name = $name and run_date <= $d "
        "order by run_date desc, created_at desc limit 1",
        params={"job": job, "name": name, "d": run_date},
    ).fetchall())


def nightly(cur: duckdb.DuckDBPyConnection, job: str, name: str, start: date, end: date) -> list[tuple[date, pl.DataFrame]]:
    """The stored releases of `job`/`name` made on the nights `start`..`end`, oldest first; when a
    night released more than once (changed input), its newest."""
    rows = cur.sql(
        "select run_date, payload from _privacy_releases where job = $job and release_name = $name "
        "and run_date between $start and $end qualify row_number() over "
        "(partition by run_date order by created_at desc) = 1 order by run_date",
        params={"job": job, "name": name, "start": start, "end": end},
    ).fetchall()
    return [(night, pl.read_ipc(io.BytesIO(payload))) for night, payload in rows]


@dataclass(frozen=True)
class Charge:
    """What one release costs and where it is recorded."""

    release_id: str
    job: str
    release_name: str
    run_date: date
    input_hash: str
    dataset: str
    privacy_unit: str
    epsilon: float
    budget: float
    window_days: int


def commit(wh: Warehouse, charge: Charge, table: pl.DataFrame, meta: dict[str, Any]) -> tuple[Stored, bool]:
    """Charge ε and store the noisy table in one transaction; returns (stored, charged_now).

    Inside the transaction the stored release is looked up again (another run may have made the
    same release meanwhile: serve that one, charge nothing) and the budget is re-checked (another
    release may have spent it: raise BudgetExceeded, nothing is written).
    """
    buf = io.BytesIO()
    table.write_ipc(buf)
    with wh.transaction() as cur:
        existing = find(cur, charge.release_id)
        if existing is not None:
            return existing, False
        use = window_use(cur, charge.dataset, charge.run_date, charge.window_days)
        if use.spent + charge.epsilon > charge.budget + TOLERANCE:
            raise BudgetExceeded(
                dataset=charge.dataset, release=f"{charge.job}/{charge.release_name}", needed=charge.epsilon,
                spent=use.spent, budget=charge.budget, window_start=use.window_start,
                window_end=use.window_end, window_days=charge.window_days,
            )
        window_start = charge.run_date - timedelta(days=charge.window_days - 1)
        cur.execute(
            "insert into _privacy_ledger (release_id, job, release_name, run_date, dataset, privacy_unit, "
            "window_start, window_end, window_days, epsilon, budget) values "
            "($id, $job, $name, $d, $dataset, $unit, $ws, $d, $wd, $eps, $budget)",
            {"id": charge.release_id, "job": charge.job, "name": charge.release_name, "d": charge.run_date,
             "dataset": charge.dataset, "unit": charge.privacy_unit, "ws": window_start,
             "wd": charge.window_days, "eps": charge.epsilon, "budget": charge.budget},
        )
        cur.execute(
            "insert into _privacy_releases (release_id, job, release_name, run_date, input_hash, dataset, "
            "epsilon, meta, payload) values ($id, $job, $name, $d, $hash, $dataset, $eps, $meta, $payload)",
            {"id": charge.release_id, "job": charge.job, "name": charge.release_name, "d": charge.run_date,
             "hash": charge.input_hash, "dataset": charge.dataset, "eps": charge.epsilon,
             "meta": json.dumps(meta), "payload": buf.getvalue()},
        )
    return Stored(charge.release_id, charge.run_date, charge.epsilon, table, meta), True


def ledger_rows(cur: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every charge in the ledger, oldest first."""
    return cur.sql(
        "select run_date, dataset, privacy_unit, job, release_name, epsilon, window_start, window_end, "
        "release_id, charged_at from _privacy_ledger order by charged_at, release_id"
    ).pl()
