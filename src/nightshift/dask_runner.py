"""Past one machine: the flow's task runner, and the per-series and XGBoost fan-out, on Dask.

With `settings.dask_address` set (NIGHTSHIFT_DASK_ADDRESS=tcp://scheduler:8786) the flow's tasks
run on that Dask cluster through prefect-dask; without it, Prefect's thread pool runs them here.
Tasks that go to Dask workers cannot take the flow's open DuckDB connection (it is neither
picklable nor shareable across processes), so `run_job_at` opens the warehouse by path in the
worker; DuckDB lets one process at a time write the file, so jobs that write (the privacy
ledger) take turns on it, and the warehouse path must be on storage every worker can reach.
The heavy numeric work is what spreads: per-series forecasts (`forecast_series`) and XGBoost
(`train_xgb`, through `xgboost.dask`) use every worker of the cluster.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from nightshift.settings import Settings

WAREHOUSE_WAIT_S = 3600.0  # a job on a worker waits its turn for the warehouse's write lock
ROWS_PER_WORKER = 500_000  # XGBoost training rows a worker should get before training is split


def select_runner(settings: Settings) -> Any:
    """The Prefect task runner the settings ask for: Dask at `dask_address`, else a local thread pool."""
    if settings.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=settings.dask_address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=settings.max_workers)


@contextmanager
def dask_client(settings: Settings):
    """A Dask client on the configured scheduler, or None when no address is set."""
    if not settings.dask_address:
        yield None
        return
    from dask.distributed import Client

    client = Client(settings.dask_address)
    try:
        yield client
    finally:
        client.close()


def ingest_at(settings: Settings, run_date: date, tables: list[str] | None = None) -> dict:
    """Ingest where this function lands (a Dask worker), opening the warehouse by its path."""
    from nightshift import ingest
    from nightshift.warehouse import Warehouse

    with Warehouse.open(settings, wait_s=WAREHOUSE_WAIT_S) as wh:
        return ingest.ingest(settings, wh, run_date, tables)


def run_job_at(settings: Settings, run_date: date, job: str, build: Path, loads: dict, force: bool = False) -> Any:
    """Run one job where this function lands (a Dask worker), opening the warehouse by its path."""
    from nightshift import night
    from nightshift.warehouse import Warehouse

    with Warehouse.open(settings, wait_s=WAREHOUSE_WAIT_S) as wh:
        return night.run_job(settings, wh, run_date, job, Path(build), loads, force)


def forecast_series(tasks: list[Any], client: Any = None, workers: int = 2) -> list[Any]:
    """Per-series sales fits (`forecasting.task.run_task`): on the Dask cluster when a client is given."""
    from nightshift.forecasting.parallel import DaskMapper, ProcessMapper, SerialMapper
    from nightshift.forecasting.task import run_task

    if client is not None:
        mapper: Any = DaskMapper(client)
    else:
        mapper = ProcessMapper(workers) if workers > 1 else SerialMapper()
    with mapper:
        return mapper.map(run_task, tasks)


@contextmanager
def worker_client_or_none():
    """Inside a task on a Dask worker: a client to the same cluster (the task steps aside while
    the work it submits runs, so it does not hold a worker slot); elsewhere: None."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        yield None
        return
    with worker_client() as client:
        yield client


def train_xgb(params: dict[str, Any], x: np.ndarray, y: np.ndarray, *, rounds: int, client: Any = None,
              x_valid: np.ndarray | None = None, y_valid: np.ndarray | None = None,
              early_stopping_rounds: int | None = None, weight: np.ndarray | None = None,
              feature_names: list[str] | None = None, rows_per_worker: int = ROWS_PER_WORKER) -> Any:
    """Train a booster: `xgboost.dask` over the cluster's workers with a client, else `xgboost.train` here.

    Rows are split over as many workers as give each at least `rows_per_worker` rows: below that
    the exchange of histograms costs more than the split saves (and one worker's model is the
    very model a local run trains).
    """
    import xgboost as xgb

    p = {"tree_method": "hist", **params}
    if client is None:
        dtrain = xgb.DMatrix(x, label=y, weight=weight, feature_names=feature_names)
        evals = [(xgb.DMatrix(x_valid, label=y_valid, feature_names=feature_names), "valid")] \
            if x_valid is not None else []
        booster = xgb.train(p, dtrain, rounds, evals=evals,
                            early_stopping_rounds=early_stopping_rounds if evals else None, verbose_eval=False)
        booster.set_attr(trained_with="xgboost, in this process")
        return booster
    import dask.array as da
    from xgboost import dask as dxgb

    workers = len(client.scheduler_info().get("workers", {}))
    n_parts = max(1, min(workers, len(x) // rows_per_worker))

    def matrix(a: np.ndarray, label: np.ndarray, w: np.ndarray | None = None) -> Any:
        rows = max(1, -(-len(a) // n_parts))  # one block of rows per worker
        return dxgb.DaskDMatrix(client, da.from_array(a, chunks=(rows, a.shape[1])), da.from_array(label, chunks=rows),
                                weight=None if w is None else da.from_array(w, chunks=rows),
                                feature_names=feature_names)

    evals = [(matrix(x_valid, y_valid), "valid")] if x_valid is not None else []
    out = dxgb.train(client, p, matrix(x, y, weight), num_boost_round=rounds, evals=evals,
                     early_stopping_rounds=early_stopping_rounds if evals else None, verbose_eval=False)
    out["booster"].set_attr(trained_with=f"xgboost.dask, rows on {n_parts} of {workers} workers")
    return out["booster"]
