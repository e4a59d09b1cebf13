"""The SARIMA cache: each series' selected order and last parameters, one JSON file per night.

Files live in `<home>/models/sales/state/<D>.json`. A run for D reads the newest file dated
*before* D, so a rerun of D starts from the same state (idempotent) and a backfill never sees
orders chosen on later data. Orders are re-selected when they are older than `RESELECT_DAYS`.
The backtest's parameters (estimated at the earliest backtest origin) are kept with the order and
re-estimated with it: estimated on data before an origin that is at most `RESELECT_DAYS` older
than tonight's earliest origin, they still never see a day they are scored on.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from nightshift.jobs.sales.sarima import Spec

RESELECT_DAYS = 7  # default (settings.sales_reselect_days): orders weekly, parameters nightly
KEEP_FILES = 60


@dataclass
class Cached:
    """One series' cached model: structure, when it was selected, last night's parameters, and the
    backtest's model (its spec can differ from tonight's in the promotion regressor)."""

    spec: Spec
    selected_on: date
    params: np.ndarray | None
    backtest: tuple[Spec, np.ndarray] | None = None  # spec and parameters


def state_dir(models_dir: Path) -> Path:
    """Where the sales job keeps its nightly SARIMA state."""
    return models_dir / "sales" / "state"


def load(models_dir: Path, run_date: date) -> tuple[date | None, dict[str, Cached]]:
    """The newest state saved before `run_date` (its date and entries), or (None, {})."""
    folder = state_dir(models_dir)
    if not folder.exists():
        return None, {}
    dates = sorted(d for d in (_parse(p.stem) for p in folder.glob("*.json")) if d is not None and d < run_date)
    if not dates:
        return None, {}
    raw = json.loads((folder / f"{dates[-1].isoformat()}.json").read_text())
    out = {}
    for key, e in raw.get("series", {}).items():
        params = np.asarray(e["params"], float) if e.get("params") else None
        bt = e.get("backtest")
        out[key] = Cached(Spec.from_json(e["spec"]), date.fromisoformat(e["selected_on"]), params,
                          (Spec.from_json(bt["spec"]), np.asarray(bt["params"], float)) if bt else None)
    return dates[-1], out


def needs_selection(entry: Cached | None, run_date: date, every_days: int = RESELECT_DAYS) -> bool:
    """Whether a series' order must be (re-)selected tonight."""
    return entry is None or (run_date - entry.selected_on).days >= every_days


def save(models_dir: Path, run_date: date, entries: dict[str, Cached]) -> Path:
    """Write tonight's state atomically (replacing a rerun's) and prune old nights."""
    folder = state_dir(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
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
    path = folder / f"{run_date.isoformat()}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)
    for old in sorted(folder.glob("*.json"))[:-KEEP_FILES]:
        old.unlink(missing_ok=True)
    return path


def _parse(stem: str) -> date | None:
    try:
        return date.fromisoformat(stem)
    except ValueError:
        return None
