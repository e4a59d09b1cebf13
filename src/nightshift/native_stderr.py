"""TensorFlow's start-up lines, kept off the terminal unless asked for (`-v`).

TensorFlow 2.21 writes a few lines straight to file descriptor 2 while it loads: absl's "All log
messages before absl::InitializeLog() is called..." warning, the oneDNN notice and the CPU
instructions notice. It writes them before it reads TF_CPP_MIN_LOG_LEVEL, and Python's logging
never sees them, so neither can hold them back. `held` points descriptor 2 at a temporary file while
TensorFlow loads; afterwards its start-up lines go to the `tensorflow` logger (the night's log file
keeps them, a quiet terminal shows only errors) and every other line is written to the terminal as
it came, so nothing another thread printed meanwhile is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# absl's warning, and glog-style info/warning lines ("I0000 00:00:1796.6 28643 port.cc:153] ...") with
# the notice's continuation; an error line (E..., F...) is not start-up noise and reaches the terminal.
START_UP = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} \d\d:\d\d:\S+ +\d+ \S+:\d+\] "
                      r"|To enable the following instructions:)")


def verbose() -> bool:
    """Whether the user asked for the libraries' own lines (`-v` sets TF_CPP_MIN_LOG_LEVEL=0)."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"


@contextlib.contextmanager
def held(logger: str = "tensorflow") -> Iterator[None]:
    """Hold what is written to descriptor 2 inside the block; then log the start-up lines, echo the rest."""
    try:
        terminal = None if verbose() else os.dup(2)
    except OSError:  # no descriptor 2 (a detached process): nothing reaches a terminal anyway
        terminal = None
    if terminal is None:
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as kept:
        os.dup2(kept.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(terminal, 2)
            os.close(terminal)
            kept.seek(0)  # also when loading failed: what it wrote is never lost
            sort_lines(kept.read().decode(errors="replace"), logging.getLogger(logger))


def sort_lines(text: str, log: logging.Logger) -> None:
    """Start-up lines to `log` at INFO; the others back to the terminal, in order."""
    for line in text.splitlines():
        if START_UP.match(line):
            log.info(line)
        elif line:
            sys.stderr.write(line + "\n")
    sys.stderr.flush()
