"""Stored releases of earlier nights, read back from the privacy ledger (read-only).

Why: a noisy number is released once and then only re-served. The daily trend is the sequence of
the one-day releases each night made (never re-noised: re-noising the same day would let anyone
average the noise away and would cost ε again), and window aggregates are re-used between their
weekly releases. Nothing here draws noise or writes to the ledger; it only reads what was stored.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl

from nightshift.privacy import ledger


def stored_series(cur: Any, job: str, name: str, run_date: date, days: int, columns: list[str]) -> pl.DataFrame | None:
    """The stored one-day releases `job`/`name` of the `days` nights up to `run_date`, stacked.

    Each night's table is kept only for its own day (`day == run_date of the release`) and only
    if it has `columns`; when a date was released more than once (changed input), the newest wins.
    """
    if not ledger.has_tables(cur):
        return None
    parts = []
    for night, t in ledger.nightly(cur, job, name, run_date - timedelta(days=days - 1), run_date):
        if not set(columns) <= set(t.columns):
            continue  # a release of an older declaration: not part of this series
        parts.append(t.filter(pl.col("day") == night).select(columns))
    return pl.concat(parts) if parts else None


def latest(cur: Any, job: str, name: str, run_date: date, columns: list[str], k: int) -> Any:
    """The newest stored release of `job`/`name` on or before `run_date` of the same shape (or None).

    Same shape: tonight's output columns and the same contribution bound K, so a release of an older
    declaration is never passed off as tonight's.
    """
    if not ledger.has_tables(cur):
        return None
    last = ledger.last_good(cur, job, name, run_date)
    if last is None or not set(columns) <= set(last.table.columns) or last.meta.get("k") != k:
        return None
    return last


def due(last: Any, run_date: date, cadence_days: int) -> bool:
    """Whether a window release is due tonight: none yet, tonight's own, or the last is a cadence old."""
    return last is None or last.run_date == run_date or (run_date - last.run_date).days >= cadence_days
