"""The sales job's peer in the bench: statsforecast's AutoARIMA, AutoETS and AutoTheta.

Each runs on the job's own tasks with the job's backtest protocol: the same scored origins, the
same history before each (the job's fit window), the same horizon, season (the series' main
period) and MASE scale. Each model is fitted wherever statsforecast can (two seasons of known,
varying history); seasonal naive stands in where it cannot.
Forecasts are clipped at zero, as the job's are. The peer is optional (the `bench` extra):
without statsforecast it is skipped with `MISSING` as the reason.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from nightshift.jobs.sales.baselines import seasonal_naive
from nightshift.jobs.sales.frequency import FREQUENCIES, N_EVAL
from nightshift.jobs.sales.metrics import mase_scale
from nightshift.jobs.sales.parallel import ProcessMapper
from nightshift.jobs.sales.task import SeriesTask, _filled

MODELS = ("AutoARIMA", "AutoETS", "AutoTheta")
MISSING = "statsforecast is not importable: install the bench extra (pip install -e '.[bench]')"


def available() -> bool:
    """Whether statsforecast can be imported here."""
    return importlib.util.find_spec("statsforecast") is not None


def score_series(task: SeriesTask) -> dict[str, tuple[float, int]]:
    """Per peer model, the sum of scaled absolute errors over the scored origins and their count."""
    import statsforecast.models as sf

    freq = FREQUENCIES[task.freq]
    y_all = np.asarray(task.y, float)
    out = {name: (0.0, 0) for name in MODELS}
    for cut in sorted(c for c in task.origins if y_all.size - c >= 1)[:N_EVAL]:
        h = min(task.horizon, cut)
        y = _filled(y_all[: y_all.size - cut][-task.fit_periods:])
        actual = y_all[y_all.size - cut: y_all.size - cut + h]
        scale = mase_scale(y, freq.season)
        ok = np.isfinite(actual)
        if not np.isfinite(scale) or scale <= 0 or not ok.any():
            continue
        fits = y.size >= 2 * freq.season and np.ptp(y) > 0
        for name in MODELS:
            if fits:
                mean = getattr(sf, name)(season_length=freq.season).forecast(y=y, h=h)["mean"]
            else:
                mean = seasonal_naive(y, h, freq.season).mean
            err = np.abs(actual[ok] - np.clip(np.asarray(mean, float)[ok], 0, None)) / scale
            total, n = out[name]
            out[name] = (total + float(err.sum()), n + int(ok.sum()))
    return out


def run(tasks: list[SeriesTask], workers: int) -> dict:
    """The peer on every task in a process pool like the job's: seconds, series/s, MASE per model
    (the mean over series of each series' mean scaled error, as the job's scorecard averages)."""
    t0 = time.perf_counter()
    with ProcessMapper(workers, preload=("nightshift.bench.sales_peer",)) as mapper:
        per = mapper.map(score_series, tasks)
    seconds = time.perf_counter() - t0
    mase = {name: float(np.mean([s[name][0] / s[name][1] for s in per if s[name][1]])) for name in MODELS}
    return {"seconds": seconds, "series_per_s": len(tasks) / seconds if seconds else float("nan"), "mase": mase}
