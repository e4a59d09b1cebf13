"""The work both sides of the benchmark do, defined once: windows, model settings, series cap.

The same work as the nightly jobs, cut to what both sides can do identically: load three tables
(users, events, sales), aggregate them (per-user-day sessions, click-through training rows with
point-in-time history features, the daily sales grid), train the click-through booster, forecast
sales series 28 days ahead from 28 days before the run date, score (click probabilities on the
holdout week; forecast error on the held-out 28 days), and write the outputs as Parquet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

STAGES = ("load", "aggregate", "train", "forecast", "score", "write")

# The behavior job's windows (nightshift.jobs.behavior.job): the marts are used with the same values.
USER_DAY_DAYS = 90
CTR_DAYS = 60
CTR_HISTORY_DAYS = 120
CTR_MAX_ROWS = 1_000_000
# The sales job's fit window and horizon (nightshift.jobs.sales.job).
HORIZON = 28
FIT_DAYS = 365
RETIRE_DAYS = 28
HISTORY_DAYS = FIT_DAYS + HORIZON  # the last HORIZON days are held out to score the forecasts
ORDER, SEASONAL = (1, 1, 1), (0, 1, 1, 7)  # one fixed SARIMA spec on both sides: equal work per series


@dataclass(frozen=True)
class Workload:
    """Knobs that vary with scale; both sides read the same instance."""

    max_series: int  # sales series forecast per rep (per-series work is linear, so a cap keeps reps short)
    rounds: int = 150  # boosting rounds cap (early stopping after 25 without gain)
    workers: int = 2  # processes for nightshift's per-series fan-out

    def to_dict(self) -> dict:
        return asdict(self)


SCALES = {
    "tiny": Workload(max_series=4, rounds=20),
    "small": Workload(max_series=12),
    "medium": Workload(max_series=40),
    "large": Workload(max_series=100),
}
