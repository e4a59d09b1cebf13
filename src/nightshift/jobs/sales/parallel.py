"""The fan-out behind one small interface: `mapper.map(fn, items) -> list`, in order.

Per-series fits are small, single-threaded numerical work, so the fast way to use a machine is
one process per core with BLAS held to one thread in each (more BLAS threads per fit only add
contention). The same interface wraps a Dask client, so the fan-out can leave the machine.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Protocol

_BLAS_LIMIT: Any = None  # held for the worker's lifetime: dropping it would restore the limits
_KEPT: dict[int, ProcessMapper] | None = None  # inside `kept_pools()`: one pool per size, shared by nights

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")


def limit_blas_threads() -> None:
    """Worker initializer: one BLAS/OpenMP thread in this process (for libraries loaded now or later)."""
    global _BLAS_LIMIT
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(limits=1)


def blas_threads(_: object = None) -> int:
    """The BLAS thread count in the calling process (numpy loaded first), to check a worker's limit."""
    import numpy  # noqa: F401 - loads the BLAS library that the limit applies to
    from threadpoolctl import threadpool_info

    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


class Mapper(Protocol):
    """Anything that applies a picklable function to picklable items and returns results in order."""

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]: ...

    def __enter__(self) -> Mapper: ...

    def __exit__(self, *exc: object) -> None: ...


class SerialMapper:
    """A plain loop in this process (BLAS held to one thread while it runs, like the workers)."""

    workers = 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """`fn` over `items` in a loop, results in input order."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return [fn(item) for item in items]

    def __enter__(self) -> SerialMapper:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class ProcessMapper:
    """A process pool, one single-threaded worker per core; reused across `map` calls until closed."""

    def __init__(self, workers: int, preload: tuple[str, ...] = ("nightshift.jobs.sales.task",)):
        self.workers = max(1, workers)
        # forkserver: workers fork from a clean server process, never from this one (which holds
        # DuckDB and Polars threads that do not survive a fork); preloading makes forks cheap.
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(preload))
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=limit_blas_threads)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """`fn` over `items` in the pool, results in input order."""
        items = list(items)
        # Small chunks keep workers busy to the end when series differ in cost.
        chunk = max(1, len(items) // (self.workers * 8))
        return list(self._pool.map(fn, items, chunksize=chunk))

    def close(self) -> None:
        """Stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessMapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskMapper:
    """Runs the same tasks on a Dask cluster (`client.map` + `gather`); needs the `dask` extra."""

    def __init__(self, client: Any, own: bool = False):
        self.client, self._own = client, own
        self.workers = len(client.scheduler_info().get("workers", {})) or 1
        client.run(limit_blas_threads)  # the same one-thread rule on every Dask worker

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """`fn` over `items` on the cluster, results in input order."""
        futures = self.client.map(fn, list(items), pure=False)
        return self.client.gather(futures)

    def __enter__(self) -> DaskMapper:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._own:
            self.client.close()


class _Borrowed:
    """A kept pool lent to one night: leaving the night does not close it; a broken one is replaced."""

    def __init__(self, workers: int):
        self.workers = workers

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        items = list(items)
        try:
            return _kept(self.workers).map(fn, items)
        except BrokenProcessPool:  # a worker died (killed, out of memory): start a fresh pool once
            assert _KEPT is not None
            _KEPT.pop(self.workers).close()
            return _kept(self.workers).map(fn, items)

    def __enter__(self) -> _Borrowed:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _kept(workers: int) -> ProcessMapper:
    assert _KEPT is not None
    if workers not in _KEPT:
        _KEPT[workers] = ProcessMapper(workers)
    return _KEPT[workers]


@contextmanager
def kept_pools() -> Iterator[None]:
    """Within this block (a backfill), nights share their process pools: started once, closed at the end."""
    global _KEPT
    outer, _KEPT = _KEPT, {} if _KEPT is None else _KEPT
    try:
        yield
    finally:
        if outer is None:
            for pool in _KEPT.values():
                pool.close()
            _KEPT = None


def make_mapper(max_workers: int, dask_address: str | None = None) -> Mapper:
    """The mapper the settings ask for: Dask when an address is set, else processes or a loop."""
    if dask_address:
        from dask.distributed import Client

        return DaskMapper(Client(dask_address), own=True)
    if max_workers > 1:
        return _Borrowed(max_workers) if _KEPT is not None else ProcessMapper(max_workers)
    return SerialMapper()
