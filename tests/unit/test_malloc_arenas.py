"""The malloc arena cap holds: more threads than the cap allocating at once share as many arenas as it
allows (glibc's default gives them one each), a cap the user set is kept, and process pools inherit it.

Each case runs in a child process, where glibc's own malloc_stats() lists the arenas that exist.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="malloc arenas are glibc's")

CHILD = """
import ctypes, os, sys, threading
if sys.argv[1] == "capped":
    from nightshift import malloc_arenas
    print("cap", malloc_arenas.limit(), os.environ["MALLOC_ARENA_MAX"], flush=True)
n = int(sys.argv[2])
start = threading.Barrier(n)
def allocate():
    start.wait()
    for _ in range(2000):
        blocks = [bytearray(50_000) for _ in range(4)]  # below the mmap threshold: from an arena
        del blocks
threads = [threading.Thread(target=allocate) for _ in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


CAP = max(2, os.cpu_count() or 2)  # the cap `limit` sets where the user set none: one arena per core
THREADS = CAP + 6  # more than the cap, and fewer than glibc's own limit (eight per core)


def arenas(mode: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """How many arenas the child ended with, and what it printed; `env` is its whole environment
    (default: this one without MALLOC_ARENA_MAX)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(THREADS)], capture_output=True, text=True, check=True,
                         env=env)
    return sum(line.startswith("Arena ") for line in out.stderr.splitlines()), out.stdout


def test_threads_share_the_capped_arenas():
    uncapped, _ = arenas("uncapped")
    capped, said = arenas("capped")
    assert said.split() == ["cap", str(CAP), str(CAP)]
    assert capped <= CAP
    assert uncapped > CAP  # without the cap the threads spread over more arenas: the test can tell


def test_a_cap_set_by_the_user_is_kept():
    capped, said = arenas("capped", {**os.environ, "MALLOC_ARENA_MAX": "1"})
    assert said.split() == ["cap", "1", "1"]
    assert capped == 1


def test_child_processes_inherit_the_cap(monkeypatch):
    from nightshift import malloc_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert malloc_arenas.limit() == CAP
    assert os.environ["MALLOC_ARENA_MAX"] == str(CAP)  # a process pool's workers read it when they start
    child, _ = arenas("uncapped", dict(os.environ))  # started as a pool's worker is: with this environment
    assert child <= CAP
