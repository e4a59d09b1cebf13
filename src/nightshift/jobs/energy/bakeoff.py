"""Tonight's candidates, fitted on the same window, judged on the same holdout, the winner stored.

The network competes with ridge, the day-type profile and seasonal naive under the one selection
rule (`nightshift.selection.compete`): the best by holdout MAE is tonight's challenger, stored in the
registry with its own format (a baseline champion has a version too) and judged against the champion.
Between training nights (`[retrain] energy`, `nightshift.cadence`) the model chosen on the period's
training night scores alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from nightshift import cadence
from nightshift.jobs import JobContext
from nightshift.jobs.energy import baselines, candidates, dataset
from nightshift.registry import ModelVersion
from nightshift.selection import Candidate, Judge, Selection, by_format, compete

METRIC = "holdout_mae_kwh"
MIN_COMPARE_ORIGINS = 3  # fewer unseen holdout forecasts per region than this and the champion is kept


@dataclass
class Fitted:
    """Tonight's candidates and what fitting them cost."""

    candidates: list[Candidate]
    params: dict[str, dict[str, Any]]  # per candidate: what the registry fingerprints
    seconds: dict[str, float]  # fit seconds per candidate
    trained: Any  # the network's TrainResult
    info: Any  # the network's StrategyInfo


def fit(train_w: dataset.Windows, val_w: dataset.Windows, *, seed: int) -> Fitted:
    """Fit every candidate on the same training window (validation: ridge's penalty, early stopping)."""
    t0 = time.perf_counter()
    ridge = baselines.fit_linear(train_w, val_w)
    ridge_s = time.perf_counter() - t0

    from nightshift.jobs.energy import network  # TensorFlow: imported only when a network is trained

    info = network.select_strategy()
    trained = network.train(train_w, val_w, info, seed=seed)
    cands = [Candidate("network", candidates.Network(trained.model), candidates.NETWORK),
             Candidate(candidates.RIDGE_NAME, ridge, candidates.RIDGE, baseline=True),
             Candidate(candidates.PROFILE_NAME, candidates.Fixed("day-type profile"), candidates.FIXED, baseline=True),
             Candidate(candidates.NAIVE_NAME, candidates.Fixed("seasonal naive"), candidates.FIXED, baseline=True)]
    params = {"network": trained.params, candidates.RIDGE_NAME: {"family": "ridge", "alpha": ridge.alpha},
              candidates.PROFILE_NAME: {"family": "day-type profile"},
              candidates.NAIVE_NAME: {"family": "seasonal naive"}}
    return Fitted(cands, params, {"network": trained.seconds, candidates.RIDGE_NAME: ridge_s}, trained, info)


def fixed_baselines() -> list[Candidate]:
    """The baselines with nothing to fit: shown next to the champion on nights without training."""
    return [Candidate(candidates.PROFILE_NAME, candidates.Fixed("day-type profile"), candidates.FIXED, baseline=True),
            Candidate(candidates.NAIVE_NAME, candidates.Fixed("seasonal naive"), candidates.FIXED, baseline=True)]


def mae(model: Any, w: dataset.Windows) -> float:
    """The job's metric: mean absolute error in kWh over every window and horizon hour."""
    return baselines.mae(baselines.to_kwh(candidates.forecast(model, w), w), w)


def judge(n_regions: int) -> Judge:
    return Judge(METRIC, higher_is_better=False, min_rows=MIN_COMPARE_ORIGINS * n_regions)


def select(ctx: JobContext, fitted: Fitted, series: dataset.Series, split: dataset.Split,
           hold_w: dataset.Windows, features: list[str]) -> Selection:
    """The bake-off and the champion's challenge on holdout forecasts made after every training window."""
    origin_hours = series.hours[hold_w.origin].astype("datetime64[h]")
    fit_end = fit_end_hour(series, split)
    # every version records what the network trained on (device, strategy, mixed precision): GPU-ready or not
    extra = {"fit_end": fit_end, "device": fitted.info.describe(), "epochs": fitted.trained.epochs,
             "validation": fitted.trained.validation}

    def save(c: Candidate, bake: dict[str, Any]) -> ModelVersion:
        return ctx.registry.save(
            c.model, c.fmt, run_date=ctx.run_date,
            training_window=(hour(series, int(split.train[0]) - dataset.LOOKBACK).date(), fit_end.date()),
            data_hash=dataset.data_fingerprint(series), features=features, params=fitted.params[c.name],
            metrics={METRIC: bake["bake_off"][c.name]},
            holdout={"start": hour(series, split.holdout[0]), "end": hour(series, len(series.hours) - 1),
                     "forecasts": len(hold_w)},
            extra={**extra, **bake, "fit_seconds": fitted.seconds.get(c.name, 0.0)})

    return compete(ctx.registry, fitted.candidates, judge=judge(len(series.regions)),
                   trained_until=np.datetime64(fit_end, "h"),
                   holdout_after=lambda end: hold_w.subset(origin_hours > end), score=mae, save=save,
                   until=_fit_end, compatible=lambda meta: meta.get("features") == features)


def training_night(ctx: JobContext, features: list[str]) -> tuple[cadence.Plan, Any]:
    """Tonight's part in the training cadence (`[retrain] energy`), and the model it scores with if
    it does not train (one fed tonight's inputs)."""
    return cadence.tonight(ctx, by_format(candidates.FORMATS), lambda meta: meta.get("features") == features)


def fit_end_hour(series: dataset.Series, split: dataset.Split):
    """The last hour any candidate's fitting saw (the end of the validation targets)."""
    return hour(series, split.val[-1] + dataset.HORIZON - 1)


def hour(series: dataset.Series, i: int):
    return series.hours[int(i)].astype("datetime64[us]").item()


def _fit_end(metadata: dict) -> np.datetime64:
    """The last hour a version's fitting reached (the start of time if not recorded)."""
    end = metadata.get("extra", {}).get("fit_end")
    return np.datetime64(str(end)[:19], "h") if end else np.datetime64("1970-01-01T00", "h")
