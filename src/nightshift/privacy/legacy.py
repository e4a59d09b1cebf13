"""Adopt the charges of the old in-warehouse ledger (`_privacy_ledger`, `_privacy_releases`) once.

Before the file ledger, charges and stored releases lived in the warehouse. A home upgraded with
such a warehouse must not start from an empty ledger: that would be the very reset the file
ledger exists to prevent. So the first layer to open an empty store copies them over, oldest first,
with the budget the last of them was charged against recorded as the one in force.
"""

from __future__ import annotations

import io
import json
from typing import Any

import polars as pl

from nightshift.privacy.budget import Limit, budget_record
from nightshift.privacy.store import Store

_ROWS = (
    "select l.release_id, l.job, l.release_name, l.run_date, l.dataset, l.privacy_unit, l.epsilon, l.budget, "
    "l.window_days, r.input_hash, r.meta, r.payload, l.charged_at from _privacy_ledger l "
    "join _privacy_releases r using (release_id) order by l.charged_at, l.release_id"
)


def adopt(store: Store, cur: Any) -> int:
    """Copy the warehouse's old ledger into an empty store; returns how many charges were copied."""
    if store.anchor() is not None or store.ledger_path.exists():
        return 0  # the file ledger has begun (or must be restored): never mix the two
    if not cur.sql("select count(*) from duckdb_tables() where table_name = '_privacy_ledger'").fetchall()[0][0]:
        return 0
    rows = cur.sql(_ROWS).fetchall()
    if not rows:
        return 0
    with store.writing() as entries:
        if entries:
            return 0  # another thread or process adopted them first
        budgets: dict[str, dict[str, Any]] = {}
        charges = []
        for rid, job, name, day, dataset, unit, eps, budget, window, input_hash, meta, payload, at in rows:
            saved = store.save_table(rid, pl.read_ipc(io.BytesIO(payload)))
            budgets[dataset] = budget_record(dataset, Limit(float(budget), int(window)), "warehouse ledger",
                                             "adopted from _privacy_ledger", at)
            charges.append({"kind": "charge", "release_id": rid, "job": job, "release": name,
                            "run_date": day.isoformat(), "dataset": dataset, "unit": unit, "epsilon": float(eps),
                            "budget": float(budget), "window_days": int(window), "input_hash": input_hash,
                            "meta": json.loads(meta), "at": str(at), **saved})
        store.append(entries, [*budgets.values(), *charges])
    return len(charges)

