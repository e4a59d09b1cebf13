"""XGBoost training here or across a Dask cluster (`xgboost.dask`), whichever the job runs on.

A job that runs as a task on a Dask worker (the Prefect flow's Dask task runner) trains through
`xgboost.dask` over the cluster's workers; anywhere else it trains in this process.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np

ROWS_PER_WORKER = 500_000  # XGBoost training rows a worker should get before training is split


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
