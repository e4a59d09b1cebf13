"""Nothing outlives a run: a watchdog that ends the run's child processes when the run process dies.

A `kill -9` of `nightshift run` leaves its children orphaned: the sales process pool's workers
block on a queue whose other end is gone, Prefect's ephemeral server keeps serving, and together
they hold most of a gigabyte for minutes. The kernel sends no signal to them, and moving the run
into its own process group would take it out of the terminal's (Ctrl-C would stop reaching it).
So a small watchdog process watches the run: it keeps the list of the run's descendants up to
date, and when the run is gone it terminates them (SIGTERM, then SIGKILL after a grace period).

Polling alone has a gap: a child started in the last half second before the kill (the process
pool's forkserver, multiprocessing's resource tracker) was never seen. So the run also marks its
environment with a token that every descendant inherits, and at the end the watchdog ends every
process of this user that carries the token, whether or not it was seen while the run lived.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import psutil

POLL_S = 0.5
GRACE_S = 3.0
TOKEN = "NIGHTSHIFT_RUN_TOKEN"


def start() -> subprocess.Popen:
    """Start the watchdog for this process; children started from now on carry the run's token."""
    token = uuid.uuid4().hex
    os.environ[TOKEN] = token
    return subprocess.Popen([sys.executable, "-m", "nightshift.lifeline", str(os.getpid()), token],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own session: a kill of the run's group spares it


def watch(pid: int, token: str = "") -> None:
    """Until `pid` ends, remember its descendants; then end those still running and any carrying `token`."""
    me = os.getpid()
    known: dict[int, psutil.Process] = {}
    try:
        run = psutil.Process(pid)
    except psutil.NoSuchProcess:
        run = None  # gone before we looked: what it left carries its token
    while run is not None and _still(run):
        try:
            known.update({p.pid: p for p in run.children(recursive=True) if p.pid != me})
        except psutil.Error:
            pass  # a child ended while we listed them; the run itself is checked above
        time.sleep(POLL_S)
    known.update({p.pid: p for p in _carrying(token) if p.pid != me})
    alive = [p for p in known.values() if _still(p)]
    for p in alive:
        _quietly(p.terminate)
    _, alive = psutil.wait_procs(alive, timeout=GRACE_S)
    for p in alive:
        _quietly(p.kill)


def _carrying(token: str) -> list[psutil.Process]:
    """This user's processes whose environment holds the run's token (descendants, even orphaned ones)."""
    if not token:
        return []
    found = []
    for p in psutil.process_iter():
        try:
            if p.uids().real == os.getuid() and p.environ().get(TOKEN) == token:
                found.append(p)
        except psutil.Error:
            pass  # gone, or another user's
    return found


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
    watch(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
