"""Earlier nights' results that a job reads back: one store per job, written atomically, read point in time.

A job keeps what it learned on a night (the sales orders and parameters, the segment centroids,
the orders placed) with `ctx.state.save(name, run_date, ...)` and reads it back with
`ctx.state.latest(name, before=D)` or `ctx.state.frames(name, since=..., before=D)`. Reads see only
what was saved for dates *before* D, so a backfill of D never sees its own or a later night's
state, and a rerun of D replaces D's. Files live in `models/<job>/state/<name>/<date>.json|.parquet`.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from nightshift.publish import write_json_atomic, write_parquet_atomic


class JobState:
    """The state store of one job."""

    def __init__(self, models_dir: Path, job: str):
        self.root = Path(models_dir) / job / "state"

    def _dated(self, name: str, suffix: str) -> list[tuple[date, Path]]:
        folder = self.root / name
        out = []
        for path in folder.glob(f"*{suffix}") if folder.is_dir() else []:
            try:
                out.append((date.fromisoformat(path.name.removesuffix(suffix)), path))
            except ValueError:  # a temporary file or a stranger: not state
                continue
        return sorted(out)

    def save(self, name: str, run_date: date, payload: dict[str, Any], keep: int | None = None) -> Path:
        """Save `payload` as `name` for `run_date` (replacing a rerun's); keep the newest `keep` nights."""
        path = self.root / name / f"{run_date.isoformat()}.json"
        write_json_atomic(payload, path)
        if keep is not None:
            for _, old in self._dated(name, ".json")[:-keep]:
                old.unlink(missing_ok=True)
        return path

    def days(self, name: str) -> list[date]:
        """The dates `name` was saved for, oldest first."""
        return [d for d, _ in self._dated(name, ".json")]

    def latest(self, name: str, before: date) -> tuple[date, dict[str, Any]] | None:
        """The newest `name` saved for a date before `before`, with that date; None if there is none."""
        earlier = [(d, p) for d, p in self._dated(name, ".json") if d < before]
        if not earlier:
            return None
        day, path = earlier[-1]
        return day, json.loads(path.read_text())

    def save_frame(self, name: str, run_date: date, frame: pl.DataFrame) -> Path:
        """Save a table as `name` for `run_date` (replacing a rerun's)."""
        path = self.root / name / f"{run_date.isoformat()}.parquet"
        write_parquet_atomic(frame, path)
        return path

    def frames(self, name: str, *, since: date, before: date) -> list[tuple[date, pl.DataFrame]]:
        """Every `name` table saved for dates in [since, before), oldest first."""
        return [(d, pl.read_parquet(p)) for d, p in self._dated(name, ".parquet") if since <= d < before]
