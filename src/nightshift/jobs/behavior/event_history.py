"""The behavior job's event history, kept in the warehouse between nights (an incremental mart).

Why: the click-through rows need, for every impression, the user's counts and session before it in
a window of `days` days, and the daily channel trends need every session's first event.
Recomputing that from every event of the window is a sort of all of them each night (most of the
night at scale); kept from the night before, a night sorts only its new events. The table and its
steps are `sql/state/event_history_*.sql`; the impressions and user_day marts read it.

The kept history is a cache of the events as of one date, never a source: `ensure` checks it
against the events it was made from (a count and a checksum of them, which any change to a kept
date's events alters, however it was made) and rebuilds it when they differ, when its date is
later than the run date (a backfill of an earlier date) or when its window is another. So a run
for D reads exactly what a rebuild from the events known by D would give, whatever ran before.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from nightshift.warehouse import Warehouse, sql_text

IMPRESSIONS, USER_DAY = "marts/behavior/impressions", "marts/behavior/user_day"
READERS = (IMPRESSIONS, USER_DAY)  # the marts that read the kept history
DAYS = 120  # the window kept when no reader asked for another: the behavior job's click-through history


def read(wh: Warehouse, mart: str, run_date: date, **params: Any) -> pl.DataFrame:
    """A mart of READERS as of `run_date` with its `params`, the kept history brought to that date first.

    The impressions need the kept window to be their `history_days`; user_day needs one of at least
    its `days` and reads the same from any, so it takes the window kept (widened if too short)
    instead of rebuilding it for its own.
    """
    if mart == IMPRESSIONS:
        days = params["history_days"]
    else:
        with wh.transaction() as cur:
            kept = _kept(cur)
        days = max(params["days"], kept[1] if kept else DAYS)
    ensure(wh, run_date, days)
    return wh.run_sql(mart, run_date=run_date, **params)


def ensure(wh: Warehouse, run_date: date, days: int) -> str:
    """Bring the kept history to `run_date` over `days` days; how: "kept", "advanced" or "rebuilt"."""
    with wh.transaction() as cur:
        kept = _kept(cur)
        since = kept[0] if kept is not None and kept[1] == days and kept[0] < run_date else None
        events, checksum, events_since, checksum_since = cur.execute(
            sql_text("state/event_history_checksum"), {"run_date": run_date, "since": since, "days": days}).fetchone()
        if kept == (run_date, days, events, checksum):
            return "kept"
        if since is not None and (kept[2], kept[3]) != (events_since, checksum_since):
            since = None  # the events of the kept date changed since: they are not what it was made from
        if since is None:
            cur.execute(sql_text("state/event_history_reset"))
        else:
            cur.execute(sql_text("state/event_history_prune"), {"run_date": run_date, "days": days})
        cur.execute(sql_text("state/event_history_new"), {"run_date": run_date, "since": since, "days": days})
        cur.execute(sql_text("state/event_history_apply"))
        cur.execute(sql_text("state/event_history_mark"),
                    {"as_of": run_date, "days": days, "events": events, "checksum": checksum})
    return "rebuilt" if since is None else "advanced"


def _kept(cur: Any) -> tuple | None:
    """(as of, days, events, checksum) of the kept history, creating its tables on first use; None if none."""
    cur.execute(sql_text("state/event_history_create"))
    return cur.execute(sql_text("state/event_history_kept")).fetchone()
