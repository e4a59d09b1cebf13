"""From the warehouse's long daily frame to one `SeriesTask` per store × product series."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from nightshift.jobs.sales import state
from nightshift.jobs.sales.task import SeriesTask

KEY = pl.concat_str("store_id", pl.lit("/"), "product_id").alias("series")


def future_promotions(future: pl.DataFrame, run_date: date, horizon: int) -> dict[str, np.ndarray]:
    """Per series, a 0/1 array over the horizon of promotions known in advance (absent = none)."""
    out: dict[str, np.ndarray] = {}
    if future.is_empty():
        return out
    steps = future.with_columns(KEY, ((pl.col("date") - pl.lit(run_date)).dt.total_days() - 1).alias("step"))
    for (key,), part in steps.partition_by("series", as_dict=True).items():
        arr = np.zeros(horizon)
        idx = part["step"].to_numpy()
        arr[idx[(idx >= 0) & (idx < horizon)]] = 1.0
        out[key] = arr
    return out


def build_tasks(frame: pl.DataFrame, future: pl.DataFrame, cache: dict[str, state.Cached], *, run_date: date,
                horizon: int, fit_days: int, origins: tuple[int, ...],
                reselect_days: int = state.RESELECT_DAYS) -> list[SeriesTask]:
    """One task per series in `frame` (store_id, product_id, date, units, on_promotion), sorted by key."""
    planned = future_promotions(future, run_date, horizon)
    tasks = []
    frame = frame.with_columns(KEY).sort("series", "date")
    for (key,), part in frame.partition_by("series", as_dict=True, maintain_order=True).items():
        cached = cache.get(key)
        reselect = state.needs_selection(cached, run_date, reselect_days)
        tasks.append(
            SeriesTask(
                key=key,
                y=part["units"].cast(pl.Float64).to_numpy(),
                promo=part["on_promotion"].cast(pl.Float64).to_numpy(),
                future_promo=planned.get(key, np.zeros(horizon)),
                horizon=horizon,
                fit_days=fit_days,
                spec=None if reselect or cached is None else cached.spec,
                start_params=None if cached is None else cached.params,
                backtest_fit=None if reselect or cached is None else cached.backtest,
                origins=origins,
            )
        )
    return tasks
