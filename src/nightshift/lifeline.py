"""Nothing outlives a run: a watchdog that ends the run's child processes when the run process dies.

A `kill -9` of `nightshift run` leaves its children orphaned: the sales process pool's workers
block on a queue whose other end is gone, Prefect's ephemeral server keeps serving, and together
they hold most of a gigabyte for minutes. The kernel sends no signal to them, and moving the run
into its own process group would take it out of the terminal's (Ctrl-C would stop reaching it).
So a small watchdog process watches the run: it keeps the list of the run's descendants up to
date, and when the run is gone it terminates them (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

POLL_S = 0.5
GRACE_S = 3.0


def start() -> subprocess.Popen:
    """Start the watchdog for this process."""
    return subprocess.Popen([sys.executable, "-m", "nightshift.lifeline", str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own session: a kill of the run's group spares it


def watch(pid: int) -> None:
    """Until `pid` ends, remember its descendants; then end those still running."""
    try:
        run = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    me = os.getpid()
    known: dict[int, psutil.Process] = {}
    while run.is_running() and run.status() != psutil.STATUS_ZOMBIE:
        try:
            known.update({p.pid: p for p in run.children(recursive=True) if p.pid != me})
        except psutil.Error:
            pass
        time.sleep(POLL_S)
    alive = [p for p in known.values() if _still(p)]
    for p in alive:
        _quietly(p.terminate)
    _, alive = psutil.wait_procs(alive, timeout=GRACE_S)
    for p in alive:
        _quietly(p.kill)


def _still(p: psutil.Process) -> bool:
    """The same process (not a new one with a recycled pid) and still running."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _quietly(action) -> None:
    try:
        action()
    except psutil.Error:
        pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
