"""Side A: the work done nightshift's way — ingest into DuckDB, SQL marts, the jobs' own models.

Each stage calls the library code the nightly jobs use: `ingest.ingest` (contracts, quarantine,
hashes, one transaction per month of drops), the marts in `sql/marts/`, `jobs/behavior/ctr.py` for the
click-through booster, `jobs/sales/task.run_task` fanned out over a process pool, Polars to write.

A night runs the way nightshift runs every night: the warehouse already holds what earlier nights
loaded (`history`: every drop up to the day before, copied in before the clock starts), so its
load stage checks every drop's hash and loads the new day. `history()` itself is the cold start
(an empty warehouse takes in the whole history) and is measured once per benchmark run; `kept()`
then builds what the night before would have left in the warehouse besides the drops (the behavior
job's kept event history), timed on its own: a first night pays it once instead of the update.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nightshift.bench import workload
from nightshift.bench.data import TABLES, BenchData


class NightshiftSide:
    """One rep of the workload, nightshift's way; stages run in `workload.STAGES` order."""

    name = "nightshift"

    def __init__(self, data: BenchData, workdir: Path, work: workload.Workload, history: Path | None = None):
        from nightshift.settings import load_settings

        self.data, self.workdir, self.work, self.run_date = data, workdir, work, data.run_date
        self.checks: dict[str, Any] = {}
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        link = workdir / "data" / "landing"
        if not link.exists():
            os.symlink(data.landing, link)  # the same drop files for every rep
        self.settings = load_settings(home=workdir, seed=data.seed)
        if history is not None:  # earlier nights' warehouse, before the clock starts
            shutil.copyfile(history, self.settings.warehouse_path)

    def history(self) -> None:
        """The cold start: every drop up to the day before the run date into an empty warehouse."""
        from nightshift import ingest
        from nightshift.warehouse import Warehouse

        with Warehouse.open(self.settings) as wh:
            loads = ingest.ingest(self.settings, wh, self.run_date - timedelta(days=1), tables=list(TABLES))
        self.checks["rows_loaded"] = {t: x.rows_loaded for t, x in loads.items()}
        self.checks["warehouse"] = str(self.settings.warehouse_path)

    def kept(self) -> None:
        """What the night before left besides the loaded drops: the behavior job's event history kept as
        of that night (jobs/behavior/event_history.py), built here from nothing as a first night would."""
        from nightshift.jobs.behavior import event_history
        from nightshift.warehouse import Warehouse

        with Warehouse.open(self.settings) as wh:
            self.checks["kept"] = event_history.ensure(wh, self.run_date - timedelta(days=1), workload.CTR_HISTORY_DAYS)

    def load(self) -> None:
        from nightshift import ingest
        from nightshift.warehouse import Warehouse

        self.wh = Warehouse.open(self.settings)
        loads = ingest.ingest(self.settings, self.wh, self.run_date, tables=list(TABLES))
        self.checks["partitions_loaded"] = {t: x.partitions_loaded for t, x in loads.items()}
        # Rows the warehouse holds for the run date: earlier nights' and tonight's, all checked.
        # Table names come from the benchmark's constant list; the date is bound.
        self.checks["rows_loaded"] = {
            t: int(self.wh.frame("select count(*) as n from " + t + " where _partition <= $d",  # noqa: S608
                                 {"d": self.run_date})["n"][0]) for t in TABLES}

    def aggregate(self) -> None:
        from nightshift.jobs.behavior import event_history

        d = self.run_date
        # as the behavior job reads them (event_history.read): the kept event history brought to D with
        # the new day's events (saying how), then the two marts that read it
        self.checks["kept"] = event_history.ensure(self.wh, d, workload.CTR_HISTORY_DAYS)
        self.user_day = self.wh.run_sql(event_history.USER_DAY, run_date=d, days=workload.USER_DAY_DAYS)
        self.impressions = self.wh.run_sql(event_history.IMPRESSIONS, run_date=d, days=workload.CTR_DAYS,
                                           history_days=workload.CTR_HISTORY_DAYS, max_rows=workload.CTR_MAX_ROWS)
        self.series = self._sales_series()
        self.checks.update(
            user_day_rows=self.user_day.height, visits=int(self.user_day["visits"].sum()),
            revenue_cents=int(self.user_day["revenue_cents"].sum()), impression_rows=self.impressions.height,
            clicks=int(self.impressions["clicked"].sum()), series_rows=self.series.height,
            units=float(self.series["units"].sum()),
        )

    def _sales_series(self) -> pl.DataFrame:
        """The sales job's series, gridded at each one's frequency as the job does (daily where none can be
        inferred), cut to the bench's window.

        The SQL reads the job's own (wider) window: a series' grid starts at its first row, so a window
        cut before gridding would start it at its first row inside the window instead of the window's
        first day, as a series listed before the window is.
        """
        from nightshift.jobs.sales import frequency, job

        history_days, _ = frequency.window_days(None)
        rows = self.wh.run_sql("marts/sales/series", run_date=self.run_date, history_days=history_days,
                               retire_days=workload.RETIRE_DAYS).with_columns(job.series_key())
        freqs, unknown = frequency.assign(rows, None)
        # The generator's series are all daily and the pandas side grids every one daily; a series whose
        # few sales days have no regular spacing (the job leaves it out, saying so) is gridded daily here too.
        freqs |= dict.fromkeys(unknown, "daily")
        return (frequency.grid(rows, freqs, self.run_date)
                .filter(pl.col("date") > self.run_date - timedelta(days=workload.HISTORY_DAYS))
                .sort("store_id", "product_id", "date"))

    def train(self) -> None:
        from nightshift.jobs.behavior import ctr

        self.train_rows, self.holdout = ctr.split(self.impressions, self.run_date)
        self.model = ctr.train(self.train_rows, rounds=self.work.rounds)

    def forecast(self) -> None:
        from nightshift.jobs.sales.parallel import ProcessMapper, SerialMapper
        from nightshift.jobs.sales.sarima import Spec
        from nightshift.jobs.sales.task import SeriesTask, run_task

        h = workload.HORIZON
        per = (self.series.group_by("store_id", "product_id", maintain_order=True)
               .agg(pl.col("units"), pl.col("on_promotion").cast(pl.Float64))
               .filter(pl.col("units").list.len() > h).head(self.work.max_series))
        spec = Spec(workload.ORDER, workload.SEASONAL, exog=True)
        tasks, self.actual = [], []
        # one task per series, not per row; no backtest origins: one fit of the fixed spec, the pandas side's work
        for store, product, units, promo in per.iter_rows():
            y, x = np.asarray(units, float), np.asarray(promo, float)
            tasks.append(SeriesTask(f"{store}/{product}", y[:-h], x[:-h], x[-h:], h, fit_periods=workload.FIT_DAYS,
                                    spec=spec))
            self.actual.append(y[-h:])
        mapper = ProcessMapper(self.work.workers) if self.work.workers > 1 else SerialMapper()
        with mapper:
            self.results = mapper.map(run_task, tasks)
        self.checks["series"] = len(tasks)
        self.checks["series_fallbacks"] = sum(r.kind != "sarima" for r in self.results)

    def score(self) -> None:
        from nightshift.jobs.behavior import ctr
        from nightshift.modeling import metrics as mm

        y = self.holdout["clicked"].to_numpy()
        self.p = self.model.predict(self.holdout)
        self.per_campaign = ctr.predict_tomorrow(self.model, self.holdout, self.run_date)
        m = mm.binary_metrics(y, self.p)
        mean = np.concatenate([r.forecast.mean for r in self.results]) if self.results else np.zeros(0)
        actual = np.concatenate(self.actual) if self.actual else np.zeros(0)
        self.checks.update(auc=round(m["auc"], 4), log_loss=round(m["log_loss"], 5),
                           forecast_mae=round(float(np.mean(np.abs(mean - actual))), 4) if actual.size else None,
                           forecast_units=round(float(mean.sum()), 1))

    def write(self) -> None:
        out = self.workdir / "out-nightshift"
        out.mkdir(parents=True, exist_ok=True)
        self.user_day.write_parquet(out / "user_day.parquet")
        self.holdout.select("event_id", "campaign_id").with_columns(p_click=pl.Series(self.p)) \
            .write_parquet(out / "ctr_scores.parquet")
        self.per_campaign.write_parquet(out / "ctr_campaigns.parquet")
        h = workload.HORIZON
        pl.DataFrame({
            "series": np.repeat([r.key for r in self.results], h),
            "horizon": np.tile(np.arange(1, h + 1, dtype=np.int32), len(self.results)),
            **{k: np.concatenate([getattr(r.forecast, k) for r in self.results]) if self.results else []
               for k in ("mean", "lower_80", "upper_80", "lower_95", "upper_95")},
        }).write_parquet(out / "forecasts.parquet")
        self.wh.close()
