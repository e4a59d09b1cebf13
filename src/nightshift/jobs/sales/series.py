"""From the gridded frame (`frequency.grid`) to one `SeriesTask` per store × product series."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from nightshift.jobs.sales import backtest, state
from nightshift.jobs.sales.frequency import FREQUENCIES, N_ORIGINS, Frequency
from nightshift.jobs.sales.task import NEEDS_ORDER, SeriesTask

KEY = pl.concat_str("store_id", pl.lit("/"), "product_id").alias("series")


def future_promotions(future: pl.DataFrame, run_date: date, horizon: int) -> dict[str, np.ndarray]:
    """Per series, a 0/1 array over the `horizon` days after the run date of promotions known in
    advance (absent = none). Only daily series use them: a day's promotion is what gets planned."""
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
                reselect_days: int = state.RESELECT_DAYS, table: dict[str, Frequency] = FREQUENCIES,
                origins: int = N_ORIGINS, kept: dict[str, dict] | None = None) -> list[SeriesTask]:
    """One task per series in `frame` (series, freq, date, units, on_promotion), sorted by key;
    `table` holds each frequency's horizon and history, `origins` the backtest's rolling origins.

    `kept`, between training nights: per series, the member and scores its training night chose.
    Such a series keeps its order too and skips the backtest; one without (new since, or its order
    lost) is backtested and chosen tonight as on a training night.
    """
    daily = table["daily"]
    planned = future_promotions(future, run_date, daily.horizon)
    tasks = []
    for (key,), part in frame.sort("series", "date").partition_by("series", as_dict=True,
                                                                  maintain_order=True).items():
        freq = table[part["freq"][0]]
        cached = cache.get(key)
        # an order for another season (the series' frequency was changed in the settings) is reselected
        reselect = (state.needs_selection(cached, run_date, reselect_days)
                    or cached.spec.seasonal_order[3] != freq.season)  # type: ignore[union-attr]
        choice = (kept or {}).get(key)
        if choice is not None and choice.get("freq") != freq.name:
            choice = None  # chosen at another frequency (the settings changed): choose again tonight
        if choice is not None and cached is not None and cached.spec.seasonal_order[3] == freq.season:
            reselect = False  # the order goes with the member chosen on the training night
        elif choice is not None and choice["member"] in NEEDS_ORDER:
            choice = None  # its order is lost: backtest and choose again tonight
        tasks.append(
            SeriesTask(
                key=key,
                y=part["units"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
                promo=part["on_promotion"].cast(pl.Float64).to_numpy(),
                future_promo=planned.get(key, np.zeros(freq.horizon)) if freq is daily else np.zeros(freq.horizon),
                horizon=freq.horizon,
                fit_periods=freq.history,
                spec=None if reselect or cached is None else cached.spec,
                start_params=None if cached is None else cached.params,
                backtest_fit=None if reselect or cached is None else cached.backtest,
                origins=() if choice else backtest.origins(origins, freq.horizon),
                freq=freq.name,
                member=choice["member"] if choice else None,
                kept_scores=choice["scores"] if choice else {},
            )
        )
    return tasks
