"""Run state outside the warehouse: per-date locks and the record of every attempt.

Records are small JSON files (`data/state/runs/<D>.json`) so `nightshift status` can read them
while a run holds the warehouse. Locks are `flock`s: the kernel drops them when a process dies,
so a killed run never leaves a lock that blocks the next one.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from nightshift.publish import write_json_atomic
from nightshift.settings import Settings


class DateLocked(RuntimeError):
    """Another process is running the same date."""


def now() -> str:
    """The current UTC time as ISO text."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def date_lock(settings: Settings, run_date: date, wait_s: float = 0.0, purpose: str = "run") -> Iterator[None]:
    """Hold the lock of one run date; wait up to `wait_s` for another holder, then refuse clearly."""
    folder = settings.state_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_date.isoformat()}.lock"
    fh = path.open("a+")
    deadline = time.monotonic() + wait_s
    announced = False
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if time.monotonic() >= deadline:
                    raise DateLocked(
                        f"{run_date} is being processed by {holder}; a {purpose} for the same date waits for it "
                        f"or is refused. Try again when it has finished (see `nightshift status`)."
                    ) from None
                if not announced:
                    print(f"waiting for {holder} to finish {run_date} ...", flush=True)
                    announced = True
                time.sleep(0.5)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} ({purpose}, since {now()})")
        fh.flush()
        yield
    finally:
        fh.close()  # closing releases the flock


def record_path(settings: Settings, run_date: date) -> Path:
    """Where the attempts of one date are recorded."""
    return settings.state_dir / "runs" / f"{run_date.isoformat()}.json"


def load_record(settings: Settings, run_date: date) -> dict[str, Any]:
    """All attempts of one date (empty when it never ran)."""
    path = record_path(settings, run_date)
    if not path.exists():
        return {"run_date": run_date.isoformat(), "attempts": []}
    return json.loads(path.read_text())


def save_attempt(settings: Settings, run_date: date, attempt: dict[str, Any]) -> None:
    """Add or update (by run_id) one attempt of a date."""
    record = load_record(settings, run_date)
    attempts = [a for a in record["attempts"] if a["run_id"] != attempt["run_id"]]
    attempts.append(attempt)
    record["attempts"] = attempts[-50:]
    write_json_atomic(record, record_path(settings, run_date))


def all_records(settings: Settings) -> list[dict[str, Any]]:
    """Every recorded date, newest first."""
    folder = settings.state_dir / "runs"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"), reverse=True)]


def last_attempt(record: dict[str, Any]) -> dict[str, Any] | None:
    """The newest attempt of a date's record."""
    return record["attempts"][-1] if record["attempts"] else None


def attempt_status(attempt: dict[str, Any]) -> str:
    """success, partial (some jobs failed or were skipped), failed, or interrupted (never finished)."""
    if attempt.get("ended") is None:
        return "interrupted"
    return attempt.get("status", "failed")
