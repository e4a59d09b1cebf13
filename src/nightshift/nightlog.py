"""A log file per night: `<home>/logs/<D>/<run_id>.log`, with every log line of the run and full tracebacks.

The terminal stays quiet (see `cli.quiet`): the libraries' own lines (TensorFlow's Python side, Keras,
Prefect, Python warnings) and nightshift's INFO lines land here instead, so a failed job's page can
name one file that explains it. TensorFlow's C++ lines bypass Python's logging and are silenced, not kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from nightshift.settings import Settings

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s"
# Tracebacks go to the night's file only: the terminal shows the one-line error and names the file.
TRACEBACKS = logging.getLogger("nightshift.tracebacks")
TRACEBACKS.propagate = False
# The night's progress lines (loaded, each job's end, published): always in the file, on the terminal
# only through the caller's own `progress` callback (a live status line, Prefect's log), never twice.
PROGRESS = logging.getLogger("nightshift.progress")
PROGRESS.propagate = False
PROGRESS.setLevel(logging.INFO)


def record_traceback(message: str, exc: BaseException) -> None:
    """Write `message` and the whole traceback of `exc` to the night's log file (not the terminal)."""
    TRACEBACKS.error(message, exc_info=exc)


def log_path(settings: Settings, run_date: date, run_id: str) -> Path:
    """Where the night of `run_date`, run `run_id`, writes its log."""
    return settings.home / "logs" / run_date.isoformat() / f"{run_id}.log"


@contextmanager
def night_log(path: Path) -> Iterator[Path]:
    """Send every INFO-and-above record of this process to `path` while the night runs.

    The root logger must pass INFO for the file to get it; handlers that were there before keep
    showing only what they showed (they get the root's old level), so the terminal is unchanged.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    old_level = root.level
    lowered = [h for h in root.handlers if h.level == logging.NOTSET] if old_level > logging.INFO else []
    for h in lowered:
        h.setLevel(old_level)
    root.setLevel(min(old_level, logging.INFO))
    root.addHandler(handler)
    TRACEBACKS.addHandler(handler)
    PROGRESS.addHandler(handler)
    try:
        yield path
    except Exception as exc:
        record_traceback("the night stopped", exc)
        raise
    finally:
        PROGRESS.removeHandler(handler)
        TRACEBACKS.removeHandler(handler)
        root.removeHandler(handler)
        handler.close()
        root.setLevel(old_level)
        for h in lowered:
            h.setLevel(logging.NOTSET)
