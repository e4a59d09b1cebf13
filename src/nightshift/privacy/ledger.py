"""The budget ledger's questions and its one write: what was spent, what is stored, charge a release.

The entries live in `store` (a hash-chained file beside the warehouse, not inside it). Readers take
a `Store`, or a warehouse cursor for the store beside that warehouse file (`<data>/privacy`, with
the anchor in `<home>/reports`, exactly where `Store.for_home(settings...)` puts them).

Why a charge cannot be spent twice: `commit` holds the store's exclusive file lock while it re-reads
the ledger, looks for the same release id (another run may have made it: serve that, charge
nothing), re-checks the budget and appends. The values are written and fsynced before the caller
sees them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from nightshift.privacy.budget import TOLERANCE, BudgetExceeded, Limit, effective, to_record
from nightshift.privacy.store import Entry, Store


def store_of(source: Any) -> Store:
    """A `Store` as given, or the store beside the warehouse file a DuckDB cursor is connected to."""
    if isinstance(source, Store):
        return source
    rows = source.sql("select path from duckdb_databases() where database_name = current_database()").fetchall()
    if not rows or not rows[0][0]:
        raise ValueError("the privacy ledger lives beside a warehouse file; this DuckDB connection has none")
    data_dir = Path(rows[0][0]).resolve().parent  # settings: warehouse_path = data_dir / "warehouse.duckdb"
    return Store.for_home(data_dir, data_dir.parent / "reports")


def _charges(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if e.data["kind"] == "charge"]


def has_tables(source: Any) -> bool:
    """Whether any release was ever charged (kept for callers written for the warehouse ledger)."""
    return bool(_charges(store_of(source).entries()))


@dataclass(frozen=True)
class WindowUse:
    """The fullest budget window containing a date: its bounds and the ε spent in it."""

    window_start: date
    window_end: date
    spent: float
    releases: int
    delta_spent: float = 0.0  # the δ of key selections in the window (recorded, not budgeted)


def window_use(entries: list[Entry], dataset: str, run_date: date, window_days: int) -> WindowUse:
    """The most ε spent on `dataset` in any `window_days` window that contains `run_date`.

    A new release at `run_date` falls in all those windows, so this is what it must fit beside. The
    fullest window can be slid right until it starts at a release date or at `run_date`; the
    trailing window is a candidate too, and wins ties (it is the one people expect to see).
    """
    near = [(date.fromisoformat(e.data["run_date"]), e.data["epsilon"], e.data.get("delta", 0.0))
            for e in _charges(entries) if e.data["dataset"] == dataset]
    near = [(d, eps, delta) for d, eps, delta in near if abs((d - run_date).days) < window_days]

    def use(start: date) -> WindowUse:
        end = start + timedelta(days=window_days - 1)
        inside = [(eps, delta) for d, eps, delta in near if start <= d <= end]
        return WindowUse(start, end, math.fsum(e for e, _ in inside), len(inside), math.fsum(d for _, d in inside))

    starts = sorted({run_date - timedelta(days=window_days - 1), run_date, *(d for d, _, _ in near if d <= run_date)})
    return max(map(use, starts), key=lambda u: u.spent)  # max keeps the first: the trailing window wins ties


@dataclass(frozen=True)
class Stored:
    """A stored release: its released table, its metadata and where it came from."""

    release_id: str
    run_date: date
    epsilon: float
    table: pl.DataFrame
    meta: dict[str, Any]


def _stored(store: Store, e: Entry) -> Stored:
    d = e.data
    return Stored(d["release_id"], date.fromisoformat(d["run_date"]), float(d["epsilon"]), store.table(e), d["meta"])


def _find(entries: list[Entry], release_id: str) -> Entry | None:
    return next((e for e in _charges(entries) if e.data["release_id"] == release_id), None)


def find(source: Any, release_id: str) -> Stored | None:
    """The stored release with this id, if any."""
    store = store_of(source)
    e = _find(store.entries(), release_id)
    return None if e is None else _stored(store, e)


def _of(entries: list[Entry], job: str, name: str) -> list[Entry]:
    return [e for e in _charges(entries) if e.data["job"] == job and e.data["release"] == name]


def last_good(source: Any, job: str, name: str, run_date: date) -> Stored | None:
    """The newest stored release of `job`/`name` dated on or before `run_date` (for a refusal)."""
    store = store_of(source)
    # Entries are in charge order, so the last one of the newest date is the newest release.
    mine = [e for e in _of(store.entries(), job, name) if date.fromisoformat(e.data["run_date"]) <= run_date]
    if not mine:
        return None
    return _stored(store, max(reversed(mine), key=lambda e: e.data["run_date"]))


def nightly(source: Any, job: str, name: str, start: date, end: date) -> list[tuple[date, pl.DataFrame]]:
    """The stored releases of `job`/`name` made on the nights `start`..`end`, oldest first; when a
    night released more than once (changed input), its newest."""
    store = store_of(source)
    newest: dict[date, Entry] = {}
    for e in _of(store.entries(), job, name):
        night = date.fromisoformat(e.data["run_date"])
        if start <= night <= end:
            newest[night] = e  # later entries are newer
    return [(night, store.table(newest[night])) for night in sorted(newest)]


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
    asked: Limit  # the budget the settings ask for
    delta: float = 0.0  # > 0 only for (ε, δ) releases: a DP key selection (nightshift.privacy.keys)


def check(entries: list[Entry], charge: Charge) -> Limit:
    """The budget in force for `charge`; raises a PrivacyRefused when it asks for a raise or does not fit."""
    limit = effective(entries, charge.dataset, charge.asked)
    use = window_use(entries, charge.dataset, charge.run_date, limit.window_days)
    if use.spent + charge.epsilon > limit.epsilon + TOLERANCE:
        raise BudgetExceeded(
            dataset=charge.dataset, release=f"{charge.job}/{charge.release_name}", needed=charge.epsilon,
            spent=use.spent, budget=limit.epsilon, window_start=use.window_start,
            window_end=use.window_end, window_days=limit.window_days,
        )
    return limit


def commit(store: Store, charge: Charge, table: pl.DataFrame, meta: dict[str, Any]) -> tuple[Stored, bool]:
    """Charge ε and store the noisy table under the writer lock; returns (stored, charged_now).

    Under the lock the release is looked up again (served, free, if another run made it), the budget
    in force is settled with the settings (a raise refuses; a lowering is recorded) and re-checked.
    """
    now = datetime.now().isoformat(timespec="seconds")
    with store.writing() as entries:
        existing = _find(entries, charge.release_id)
        if existing is not None:
            return _stored(store, existing), False
        effective(entries, charge.dataset, charge.asked)  # a raise refuses before anything is written
        budget_entries = to_record(entries, charge.dataset, charge.asked, now)
        if budget_entries:  # a lowering is recorded even if this release is then refused
            entries = store.append(entries, budget_entries)
        limit = check(entries, charge)
        saved = store.save_table(charge.release_id, table)
        store.append(entries, [{
            "kind": "charge", "release_id": charge.release_id, "job": charge.job, "release": charge.release_name,
            "run_date": charge.run_date.isoformat(), "dataset": charge.dataset, "unit": charge.privacy_unit,
            "epsilon": charge.epsilon, "delta": charge.delta, "budget": limit.epsilon, "window_days": limit.window_days,
            "input_hash": charge.input_hash, "meta": meta, "at": now, **saved,
        }])
    return Stored(charge.release_id, charge.run_date, charge.epsilon, table, meta), True


def ledger_rows(source: Any) -> pl.DataFrame:
    """Every charge in the ledger, oldest first."""
    rows = [{"run_date": date.fromisoformat(d["run_date"]), "dataset": d["dataset"], "privacy_unit": d["unit"],
             "job": d["job"], "release_name": d["release"], "epsilon": float(d["epsilon"]),
             "delta": float(d.get("delta", 0.0)), "release_id": d["release_id"], "charged_at": d["at"]}
            for d in (e.data for e in _charges(store_of(source).entries()))]
    schema = {"run_date": pl.Date, "dataset": pl.String, "privacy_unit": pl.String, "job": pl.String,
              "release_name": pl.String, "epsilon": pl.Float64, "delta": pl.Float64, "release_id": pl.String, "charged_at": pl.String}
    return pl.DataFrame(rows, schema=schema)
