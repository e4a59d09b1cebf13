"""Stored releases of earlier nights, read back from the privacy ledger (read-only).

Why: a noisy number is released once and then only re-served. The daily trend is the sequence of
the one-day releases each night made (never re-noised: re-noising the same day would let anyone
average the noise away and would cost ε again); window aggregates are re-served between their
releases by the privacy layer itself (`PrivacyLayer.release_every`). Nothing here draws noise or
writes to the ledger; it only reads what was stored.
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

