"""Small trends across stored nights: per job, model quality, rows loaded, rows quarantined and job seconds.

Read from the published manifests (`reports/<D>/manifest.json`) of the `WINDOW_DAYS` before the run
date, plus tonight's values, so a backfill of an old date shows the nights around it, as `change` does.
A trend is drawn only from `MIN_NIGHTS` nights with a value: two points are a change, not a trend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from nightshift.jobs import JOBS

WINDOW_DAYS = 30
MIN_NIGHTS = 3

# Per job, the summary key that says how good tonight's model is, and its label on the page.
QUALITY = {
    "loans": ("holdout_auc", "holdout AUC (higher is better)"),
    "behavior": ("ctr_log_loss", "click-through log loss (lower is better)"),
    "sales": ("mase", "backtest MASE (lower is better)"),
    "inventory": ("pinball", "pinball loss (lower is better)"),
    "energy": ("holdout_mae_kwh", "holdout MAE, kWh (lower is better)"),
}
ROWS_LOADED, QUARANTINED, SECONDS = "rows loaded for the date", "rows quarantined for the date", "job seconds"
DIGITS = {SECONDS: 1}  # decimals shown for tonight's value; 3 for the rest (rows are whole numbers anyway)


@dataclass(frozen=True)
class Trend:
    """One measure of one job over nights: dates (ISO) and values, oldest first."""

    label: str
    dates: list[str]
    values: list[float]
    digits: int = 3

    @property
    def last(self) -> float:
        return self.values[-1]

    @property
    def days(self) -> list[int]:
        """Each night's distance in days from the first: missing nights leave a gap in the line."""
        first = date.fromisoformat(self.dates[0])
        return [(date.fromisoformat(d) - first).days for d in self.dates]


def measures(job: str, record: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """One night's measures of a job, from its manifest record and the manifest's `inputs` (tables).

    Rows are the date's own drop of the job's tables. A job that did not run that night has no model
    quality; seconds count only nights it computed (a reused result takes no time worth drawing).
    """
    out: dict[str, float] = {}
    tables = [inputs[t] for t in JOBS[job].tables if t in inputs] if job in JOBS else []
    if tables:
        quarantined = sum(t.get("day_rows_quarantined") or 0 for t in tables)
        out[ROWS_LOADED] = sum(t.get("day_rows_read") or 0 for t in tables) - quarantined
        out[QUARANTINED] = quarantined
    key, label = QUALITY.get(job, ("", ""))
    value = (record.get("summary") or {}).get(key)
    if record.get("status") in ("success", "reused") and _is_number(value):
        out[label] = value
    if record.get("status") == "success":
        out[SECONDS] = record.get("seconds") or 0.0
    return out


def earlier_nights(reports_dir: Path, run_date: date, days: int = WINDOW_DAYS) -> list[tuple[str, dict[str, Any]]]:
    """The published manifests of the `days` nights before `run_date`, oldest first."""
    out = []
    for i in range(days, 0, -1):
        day = (run_date - timedelta(days=i)).isoformat()
        path = reports_dir / day / "manifest.json"
        if path.exists():
            out.append((day, json.loads(path.read_text())))
    return out


def job_trends(job: str, nights: list[tuple[str, dict[str, Any]]], run_date: date,
               tonight: dict[str, float]) -> list[Trend]:
    """The job's trends over `nights` (from `earlier_nights`) and tonight, each with enough nights to draw.

    Only what tonight measured: a trend ends at tonight's value, which the page shows beside it.
    """
    points: dict[str, list[tuple[str, float]]] = {label: [] for label in tonight}
    for day, manifest in nights:
        record = manifest.get("jobs", {}).get(job)
        if record is not None:
            for label, value in measures(job, record, manifest.get("inputs") or {}).items():
                if label in points:
                    points[label].append((day, value))
    for label, value in tonight.items():
        points[label].append((run_date.isoformat(), value))
    return [Trend(label, [d for d, _ in pts], [float(v) for _, v in pts], DIGITS.get(label, 3))
            for label, pts in points.items() if len(pts) >= MIN_NIGHTS]


def night_trends(reports_dir: Path, run_date: date, manifest: dict[str, Any]) -> dict[str, list[Trend]]:
    """Per job of tonight's manifest, its trends (jobs with none left out), for the night page."""
    nights = earlier_nights(reports_dir, run_date)
    out = {job: job_trends(job, nights, run_date, measures(job, record, manifest.get("inputs") or {}))
           for job, record in manifest["jobs"].items()}
    return {job: t for job, t in out.items() if t}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # NaN is no point on a line
