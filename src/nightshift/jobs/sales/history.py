"""Every night's forecasts, kept in the warehouse and scored once their actuals have arrived.

The table `sales_forecast_history` (created by `sql/state/sales_history_create.sql`) holds one
row per run date, series and forecast period, with the seasonal naive forecast made the same night,
the series' MASE scale and its frequency, so later nights can say how good the forecast really was.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from nightshift.warehouse import Warehouse, sql_text

COLUMNS = ("run_date", "store_id", "product_id", "date", "horizon", "mean", "lower_80", "upper_80", "lower_95",
           "upper_95", "naive", "scale", "model")


def ensure_table(wh: Warehouse) -> None:
    """Create the history table if this warehouse does not have it yet."""
    with wh.transaction() as cur:
        cur.execute(sql_text("state/sales_history_create"))


def record(wh: Warehouse, run_date: date, rows: pl.DataFrame) -> int:
    """Replace `run_date`'s stored forecasts with `rows`, atomically (reruns are idempotent).

    `rows` has COLUMNS and the series' `freq`; without it the table's default applies (daily).
    """
    ensure_table(wh)
    cols = [*COLUMNS, "freq"] if "freq" in rows.columns else list(COLUMNS)
    frame = rows.with_columns(pl.lit(run_date).alias("run_date")).select(cols)
    with wh.transaction() as cur:
        cur.execute(sql_text("state/sales_history_delete"), {"run_date": run_date})
        cur.register("_incoming", frame.to_arrow())
        try:
            cur.execute(sql_text("state/sales_history_insert"), {"run_date": run_date})
        finally:
            cur.unregister("_incoming")
    return frame.height


def scores(wh: Warehouse, run_date: date) -> pl.DataFrame:
    """Scores of forecasts made on earlier nights against the actuals known as of `run_date`."""
    ensure_table(wh)
    return wh.run_sql("marts/sales/history_scores", run_date=run_date)
