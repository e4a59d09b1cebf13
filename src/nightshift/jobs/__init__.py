"""The job registry and the small interface every job implements.

A job is a package `nightshift.jobs.<name>/` whose `job.py` has `run(ctx: JobContext) -> JobResult`,
with modules named for what they own (features, model, report, ...); its SQL is in `sql/marts/<name>/`,
its page is `reporting/templates/<name>.html.j2`. Adding a job is that folder plus one line in `JOBS`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from nightshift.privacy import PrivacyLayer
    from nightshift.registry import ModelRegistry
    from nightshift.settings import Settings
    from nightshift.state import JobState
    from nightshift.warehouse import Warehouse


@dataclass(frozen=True)
class Job:
    """A registered job: its name, the tables it needs, and a one-line title for reports."""

    name: str
    tables: tuple[str, ...]
    title: str
    imports: tuple[str, ...] = ()  # heavy libraries it uses, imported up front (see `preload`)
    # Outputs about things that are not people, which may leave the team (`nightshift.shareable`).
    shareable: tuple[str, ...] = ()

    @property
    def run(self) -> Callable[[JobContext], JobResult]:
        # Imported on first use: some jobs pull in heavy libraries (TensorFlow).
        return importlib.import_module(f"nightshift.jobs.{self.name}.job").run


JOBS: dict[str, Job] = {
    j.name: j
    for j in (
        Job("behavior", ("events", "users"), "Channels, click-through, segments and recommendations",
            ("xgboost", "sklearn.cluster", "sklearn.preprocessing", "scipy.sparse", "scipy.optimize")),
        Job("sales", ("sales",), "Sales forecasts per store and product", ("statsmodels.tsa.statespace.sarimax",),
            shareable=("forecast", "backtest")),
        Job("loans", ("loans", "loan_outcomes"), "Loan default risk",
            ("xgboost", "sklearn.linear_model", "sklearn.pipeline", "sklearn.preprocessing")),
        Job("inventory", ("inventory", "sales"), "Reorder points and tomorrow's orders", ("xgboost",),
            shareable=("orders", "policy")),
        Job("energy", ("energy",), "Hourly energy load forecasts",
            # the network module imports TensorFlow and Keras with their start-up lines held (native_stderr)
            ("nightshift.jobs.energy.network", "sklearn.linear_model", "sklearn.preprocessing")),
    )
}


_IMPORTING = threading.Lock()


def preload(names: list[str]) -> None:
    """Import the jobs' modules, one thread at a time, before they run.

    Two threads importing the same heavy package at once (xgboost, sklearn) can see it half
    initialised; the lock makes jobs running in parallel threads import one after another. Called
    by a job about to compute, so a reused or skipped job never pays for its libraries (an unchanged
    re-run of a date does not load TensorFlow).
    """
    with _IMPORTING:
        for dep in ("plotly.graph_objects", "sklearn.metrics"):
            importlib.import_module(dep)
        for name in names:
            for dep in get_job(name).imports:
                importlib.import_module(dep)
            importlib.import_module(f"nightshift.jobs.{name}.job")


class UnknownJob(KeyError):
    """A job name that is not registered (from --jobs, JOBS= or the `jobs` setting)."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_job(name: str) -> Job:
    """A registered job, or a clear error listing the known ones."""
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJob(f"unknown job {name!r}; known jobs: {', '.join(JOBS)}") from None


@dataclass
class JobResult:
    """What a job hands back: headline numbers, its page's template variables, models used."""

    summary: dict[str, Any]  # a few headline numbers for the run index and manifest
    context: dict[str, Any]  # variables for reporting/templates/<job>.html.j2
    models: dict[str, str] = field(default_factory=dict)  # model name -> version used to score
    warnings: list[str] = field(default_factory=list)  # shown on the job page and the run index
    extra: dict[str, Any] = field(default_factory=dict)  # more for the manifest (device, timings)
    # model name -> `Selection.verdict()`: which candidate won the bake-off, the runner-up, the gap
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)
    headline: str = ""  # what the night did, in a sentence or two with units, for the night page


@dataclass
class JobContext:
    """Everything a job may touch for one run date. A job sees only data as of `run_date`."""

    job: str
    run_date: date
    settings: Settings
    warehouse: Warehouse
    out_dir: Path  # the job's output folder inside the run being built; published atomically

    def table(self, name: str, columns: list[str] | None = None) -> pl.DataFrame:
        """A source table as of the run date (point-in-time)."""
        return self.warehouse.as_of(name, self.run_date, columns)

    def sql(self, name: str, **params: Any) -> pl.DataFrame:
        """Run the job's mart `sql/marts/<job>/<name>.sql` with `$run_date` and `params` bound.

        A mart that reads a table kept between nights (an incremental mart) has that table brought
        to the run date first, so its output is what the events known by then give.
        """
        from nightshift.jobs.behavior import event_history

        mart = "/".join(("marts", self.job, name))
        if mart in event_history.READERS:
            return event_history.read(self.warehouse, mart, self.run_date, **params)
        # A file name under sql/ (checked by sql_text), not SQL text: nothing is formatted into a query.
        return self.warehouse.run_sql(mart, run_date=self.run_date, **params)

    def write_parquet(self, name: str, frame: pl.DataFrame) -> Path:
        """Write one of the job's output tables as `<out_dir>/<name>.parquet`."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{name}.parquet"
        frame.write_parquet(path)
        return path

    def write_export(self, name: str, frame: pl.DataFrame) -> Path:
        """Write person-level rows (a score per application, recommendations per user) as an operational
        export: `exports/<D>/<job>/<name>.parquet`, readable by the owner only, never in the reports."""
        from nightshift.publish import write_private_parquet

        return write_private_parquet(frame, self.settings.exports_dir / self.run_date.isoformat() / self.job
                                     / f"{name}.parquet")

    @cached_property
    def privacy(self) -> PrivacyLayer:
        from nightshift.privacy import PrivacyLayer

        return PrivacyLayer(self.warehouse, self.settings, job=self.job, run_date=self.run_date)

    @cached_property
    def state(self) -> JobState:
        """Earlier nights' results of this job, read point in time (before the run date)."""
        from nightshift.state import JobState

        return JobState(self.settings.models_dir, self.job)

    @cached_property
    def registry(self) -> ModelRegistry:
        from nightshift.registry import ModelRegistry

        return ModelRegistry(self.settings.models_dir, self.job, margin=self.settings.champion_margin)
