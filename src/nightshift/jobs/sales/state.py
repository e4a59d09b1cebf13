"""The SARIMA cache: each series' selected order and last parameters, one JSON file per night.

It is kept in the job's state store (`nightshift.state`, name "orders"). A run for D reads the
newest state saved *before* D, so a rerun of D starts from the same state (idempotent) and a backfill never sees
orders chosen on later data. Orders are re-selected when they are older than `RESELECT_DAYS`.
The backtest's parameters (estimated at the earliest backtest origin) are kept with the order and
re-estimated with it: estimated on data before an origin that is at most `RESELECT_DAYS` older
than tonight's earliest origin, they still never see a day they are scored on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from nightshift.jobs.sales.sarima import Spec
from nightshift.state import JobState

RESELECT_DAYS = 7  # default (settings.sales_reselect_days): orders weekly, parameters nightly
KEEP_FILES = 60
NAME = "orders"  # the state's name in the job's store


@dataclass
class Cached:
    """One series' cached model: structure, when it was selected, last night's parameters, and the
    backtest's model (its spec can differ from tonight's in the promotion regressor)."""

    spec: Spec
    selected_on: date
    params: np.ndarray | None
    backtest: tuple[Spec, np.ndarray] | None = None  # spec and parameters


def load(store: JobState, run_date: date) -> tuple[date | None, dict[str, Cached]]:
    """The newest state saved before `run_date` (its date and entries), or (None, {})."""
    found = store.latest(NAME, before=run_date)
    if found is None:
        return None, {}
    day, raw = found
    out = {}
    for key, e in raw.get("series", {}).items():
        params = np.asarray(e["params"], float) if e.get("params") else None
        bt = e.get("backtest")
        out[key] = Cached(Spec.from_json(e["spec"]), date.fromisoformat(e["selected_on"]), params,
                          (Spec.from_json(bt["spec"]), np.asarray(bt["params"], float)) if bt else None)
    return day, out


def needs_selection(entry: Cached | None, run_date: date, every_days: int = RESELECT_DAYS) -> bool:
    """Whether a series' order must be (re-)selected tonight."""
    return entry is None or (run_date - entry.selected_on).days >= every_days


def save(store: JobState, run_date: date, entries: dict[str, Cached]) -> Path:
    """Write tonight's state (replacing a rerun's) and keep the newest nights only."""
    payload = {
        "run_date": run_date.isoformat(),
        "series": {
            key: {"spec": e.spec.to_json(), "selected_on": e.selected_on.isoformat(),
                  "params": None if e.params is None else [float(v) for v in e.params],
                  "backtest": None if e.backtest is None else
                  {"spec": e.backtest[0].to_json(), "params": [float(v) for v in e.backtest[1]]}}
            for key, e in sorted(entries.items())
        },
    }
    return store.save(NAME, run_date, payload, keep=KEEP_FILES)
