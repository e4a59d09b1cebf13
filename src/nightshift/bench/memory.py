"""Peak memory per stage and the machine's memory bandwidth, the yardsticks of the benchmark.

Peak RSS per stage (Linux): before a stage we write "5" to `/proc/self/clear_refs`, which resets
the kernel's high-water mark of this process's resident set (`VmHWM`); after the stage `VmHWM` is
the exact peak during it, even for spikes no sampler would catch. Work done in child processes
(the process pool of the per-series fits) is not in our `VmHWM`, so a sampler thread also adds up
the RSS of the whole process tree every 20 ms; a stage's peak is the larger of the two. Where
`clear_refs` cannot be written, the sampler alone is used (and the method says so).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset this process's peak-RSS mark; False where the kernel does not allow it."""
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


class StagePeak:
    """Context manager: the peak resident memory (MiB) of this process tree while the block runs."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.peak_mib = 0.0
        self.method = ""

    def _tree_rss(self) -> int:
        import psutil

        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self._tree_max = max(self._tree_max, self._tree_rss())
            except Exception:  # noqa: BLE001 - a vanished child must not stop the sampler
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self) -> StagePeak:
        self._hwm = reset_peak()
        self._tree_max = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._tree_max = max(self._tree_max, self._tree_rss())
        hwm_kb = _status_kb("VmHWM") if self._hwm else None
        own = (hwm_kb or 0) * 1024
        self.peak_mib = round(max(own, self._tree_max) / 2**20, 1)
        self.method = "VmHWM after clear_refs, max with 20 ms process-tree RSS samples" if self._hwm \
            else "20 ms process-tree RSS samples"


def memory_bandwidth_gbs(mib: int = 512, reps: int = 5) -> dict[str, float]:
    """Copy bandwidth of this machine: numpy copies of a large array, counting bytes read plus written."""
    src = np.ones(mib * 2**20 // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch the pages once so the timed copies do not fault them in
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    moved = 2 * src.nbytes
    return {"copy_gb_s": round(moved / float(np.median(times)) / 1e9, 2),
            "copy_gb_s_best": round(moved / min(times) / 1e9, 2), "array_mib": mib}
