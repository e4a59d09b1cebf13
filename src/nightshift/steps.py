"""Where a night's steps run, and the one retry policy: a thread pool here or a Dask cluster.

`run_night` takes a `submit(step, fn, *args)` that runs `fn(*args)` somewhere and returns a future
of its result. `LocalSteps` and `DaskSteps` are the two this package provides (the Prefect flow in
`flows/` passes its own); both retry what may pass by itself, as `is_transient` says.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import duckdb

from nightshift.settings import Settings
from nightshift.warehouse import WarehouseBusy

log = logging.getLogger(__name__)

# What may pass by itself and is worth a retry: I/O errors, a locked file, a timeout. Every shell
# applies this one policy (LocalSteps and DaskSteps here, Prefect's task options in flows/).
TRANSIENT = (OSError, TimeoutError, duckdb.IOException, WarehouseBusy)
RETRIES = 2
BACKOFF_S = 2.0

# submit(step, fn, *args) runs `fn(*args)` somewhere and returns a future of its result.
Submit = Callable[..., Any]


def is_transient(exc: BaseException) -> bool:
    """Whether a failure may pass by itself (retried), as opposed to a bug or a missing file."""
    return isinstance(exc, TRANSIENT) and not isinstance(exc, FileNotFoundError | PermissionError)


def retry_delays(retries: int = RETRIES) -> list[float]:
    """Seconds to wait before each retry: exponential back-off."""
    return [BACKOFF_S * 2**i for i in range(retries)]


def _with_retries(fn: Callable[..., Any], *args: Any) -> Any:
    for delay in [*retry_delays(), None]:
        try:
            return fn(*args)
        except Exception as e:
            if delay is None or not is_transient(e):
                raise
            log.warning("%s failed (%s: %s); retrying in %.0f s", fn.__name__, type(e).__name__, e, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


class DaskSteps:
    """`submit` for a night whose steps run on the Dask cluster at `address`, transient failures retried."""

    def __init__(self, address: str):
        from dask.distributed import Client

        self.client = Client(address)

    def __call__(self, step: str, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(_with_retries, fn, *args, pure=False, key=f"{step}-{uuid.uuid4().hex[:8]}")

    def __enter__(self) -> DaskSteps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()


def steps_for(settings: Settings) -> LocalSteps | DaskSteps:
    """Where a night's steps run when no shell says: the Dask cluster at `dask_address`, else threads here."""
    return DaskSteps(settings.dask_address) if settings.dask_address else LocalSteps(settings.max_workers)


class LocalSteps:
    """`submit` for a night in this process: steps on a thread pool, transient failures retried."""

    def __init__(self, max_workers: int):
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="nightshift")

    def __call__(self, step: str, fn: Callable[..., Any], *args: Any) -> Future:
        return self.pool.submit(_with_retries, fn, *args)

    def __enter__(self) -> LocalSteps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)
