"""Change over time: each job's headline numbers beside their values last night and a week ago.

Read from the published manifests of D-1 and D-7, so a backfill of an old date compares with the
nights around it, not with tonight.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

AGO = {"last night": 1, "a week ago": 7}


def compare(reports_dir: Path, run_date: date, summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per job and numeric summary key: {"last night": value or None, "a week ago": value or None}."""
    earlier = {label: _summaries(reports_dir, run_date - timedelta(days=days)) for label, days in AGO.items()}
    out: dict[str, dict[str, Any]] = {}
    for job, summary in summaries.items():
        for key, value in summary.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            then = {label: earlier[label].get(job, {}).get(key) for label in AGO}
            if any(isinstance(v, int | float) and not isinstance(v, bool) for v in then.values()):
                out.setdefault(job, {})[key] = then
    return out


def _summaries(reports_dir: Path, day: date) -> dict[str, dict[str, Any]]:
    path = reports_dir / day.isoformat() / "manifest.json"
    if not path.exists():
        return {}
    return {job: j.get("summary") or {} for job, j in json.loads(path.read_text())["jobs"].items()}
