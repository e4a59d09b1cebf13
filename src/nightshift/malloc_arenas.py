"""glibc's malloc arenas capped at one per core, so that many nights in one process stay the same size.

glibc gives a thread that allocates while another holds an arena an arena of its own, up to eight
per core. A night's threads (the job pool, the ingest writer, Prefect's, TensorFlow's, XGBoost's)
come and go, and memory freed in one arena is not reused by the next night's threads in another:
in one process (a backfill, `nightshift serve`) the resident size grew night after night. Fourteen
nights of the small demo in one process, measured 2026-12-02: 1.28 -> 1.74 GiB (peak 1.81) with
glibc's default, 1.18 -> 1.33 GiB with one arena per core, the nights no slower. Polars, DuckDB and
Arrow allocate with their own allocators and are not affected.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # mallopt's parameter number for the arena cap (glibc's malloc.h)
ENV = "MALLOC_ARENA_MAX"  # the same cap, read by glibc when a process starts


def limit() -> int | None:
    """Cap this process's arenas, and its child processes' (process pools) through the environment.
    A cap the user set in MALLOC_ARENA_MAX is kept. The cap, or None where malloc is not glibc's."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries: no arenas to cap
        return None
    arenas = os.environ.setdefault(ENV, str(max(2, os.cpu_count() or 2)))
    if not arenas.isdigit() or int(arenas) < 1:
        return None  # glibc ignores such a value; so do we
    mallopt(M_ARENA_MAX, int(arenas))
    return int(arenas)
