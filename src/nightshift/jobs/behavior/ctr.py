"""The click-through model: XGBoost on ad impressions, against a campaign-CTR baseline.

Rows come from `sql/marts/behavior/impressions.sql`, whose features use only the user's events
strictly before each impression. The split is by time (the last `HOLDOUT_DAYS` days are the
holdout), so the scores say how the model does on days it never saw. Both candidates learn from
the same training days; the one with the lower holdout log loss (the baseline on a tie) is
tonight's challenger (`nightshift.selection.compete`), and it replaces the champion only if it
beats it on the same holdout. A baseline champion is stored as its campaign rates (JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nightshift import cadence
from nightshift.modeling import FnFormat
from nightshift.modeling import metrics as mm
from nightshift.selection import Candidate, Judge, compete
from nightshift.tables import CHANNELS, DEVICES

HOLDOUT_DAYS = 7
JUDGE = Judge("log_loss", higher_is_better=False, min_rows=50)  # the one selection rule's terms
BASELINE = "campaign rate baseline"
PRIOR_WEIGHT = 200.0  # pseudo-impressions that pull a small campaign's CTR toward the overall rate
NUMERIC = ["hour", "day_of_week", "prior_impressions", "prior_clicks", "prior_carts", "prior_purchases",
           "prior_sessions", "days_since_first_seen", "session_impressions_before"]
FEATURES = ["channel_code", "device_code", "campaign_code", *NUMERIC, "prior_ctr"]
PARAMS = {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 4, "eta": 0.15, "max_bin": 64,
          "subsample": 0.9, "colsample_bytree": 0.9, "min_child_weight": 5, "seed": 7}


@dataclass
class CtrModel:
    """A trained booster plus the campaign list its codes refer to."""

    booster: Any
    campaigns: list[str]

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Click probabilities for impression rows with canonical feature columns."""
        import xgboost as xgb

        x = design_matrix(frame, self.campaigns)
        d = xgb.DMatrix(x, feature_names=FEATURES)
        best = self.booster.attributes().get("best_iteration")
        rng = (0, int(best) + 1) if best is not None else (0, 0)
        return self.booster.predict(d, iteration_range=rng)


def _save(model: CtrModel, directory: Path) -> None:
    model.booster.save_model(directory / "booster.json")
    (directory / "campaigns.json").write_text(json.dumps(model.campaigns))


def _load(directory: Path) -> CtrModel:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(directory / "booster.json")
    booster.set_param({"device": "cpu"})
    return CtrModel(booster, json.loads((directory / "campaigns.json").read_text()))


CTR_FORMAT = FnFormat("xgboost-ctr", _save, _load)


def design_matrix(frame: pl.DataFrame, campaigns: list[str]) -> np.ndarray:
    """Feature matrix in `FEATURES` order; unknown categories become missing (NaN) for the trees."""
    def code(col: str, values: list[str] | tuple[str, ...]) -> pl.Expr:
        return pl.col(col).replace_strict({v: i for i, v in enumerate(values)}, default=None,
                                          return_dtype=pl.Float64)

    x = frame.select(
        code("channel", CHANNELS).alias("channel_code"),
        code("device", DEVICES).alias("device_code"),
        code("campaign_id", campaigns).alias("campaign_code"),
        *[pl.col(c).cast(pl.Float64) for c in NUMERIC],
        ((pl.col("prior_clicks") + 0.5) / (pl.col("prior_impressions") + 5.0)).alias("prior_ctr"),
    )
    return x.to_numpy().astype(np.float32)


@dataclass
class CampaignRate:
    """The baseline: each campaign's historical CTR on the training days, shrunk toward the overall rate."""

    rates: dict[str, float]
    overall: float  # a campaign not seen in training gets the overall rate

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """The baseline's probability for each row: its campaign's historical CTR."""
        return frame["campaign_id"].replace_strict(self.rates, default=self.overall, return_dtype=pl.Float64).to_numpy()


def campaign_baseline(train: pl.DataFrame) -> CampaignRate:
    """Fit the baseline on the training days (the same rows the booster learns from)."""
    overall = float(train["clicked"].mean())
    rates = (train.group_by("campaign_id").agg(impressions=pl.len(), clicks=pl.col("clicked").sum())
             .with_columns(rate=(pl.col("clicks") + PRIOR_WEIGHT * overall) / (pl.col("impressions") + PRIOR_WEIGHT)))
    return CampaignRate(dict(zip(rates["campaign_id"].to_list(), rates["rate"].to_list(), strict=True)), overall)


def _save_rate(model: CampaignRate, directory: Path) -> None:
    (directory / "campaign_rates.json").write_text(json.dumps({"rates": model.rates, "overall": model.overall}))


def _load_rate(directory: Path) -> CampaignRate:
    d = json.loads((directory / "campaign_rates.json").read_text())
    return CampaignRate({k: float(v) for k, v in d["rates"].items()}, float(d["overall"]))


RATE_FORMAT = FnFormat("ctr-campaign-rate", _save_rate, _load_rate)
FORMATS = {f.name: f for f in (CTR_FORMAT, RATE_FORMAT)}


def split(rows: pl.DataFrame, run_date: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Time split: training days before the holdout week, holdout = the last `HOLDOUT_DAYS` days."""
    cut = run_date - timedelta(days=HOLDOUT_DAYS - 1)
    return rows.filter(pl.col("day") < cut), rows.filter(pl.col("day") >= cut)


def train(train_rows: pl.DataFrame, *, rounds: int = 150) -> CtrModel:
    """Fit the booster with early stopping on the last fifth (by time) of the training rows."""
    from nightshift.modeling.xgb import train_early_stopped

    campaigns = sorted(train_rows["campaign_id"].unique().to_list())
    n_fit = int(train_rows.height * 0.8)
    fit, valid = train_rows[:n_fit], train_rows[n_fit:]
    booster = train_early_stopped(
        design_matrix(fit, campaigns), fit["clicked"].to_numpy(), design_matrix(valid, campaigns),
        valid["clicked"].to_numpy(), PARAMS, feature_names=FEATURES, num_boost_round=rounds,
        early_stopping_rounds=25,
    )
    return CtrModel(booster, campaigns)


def evaluate(model: CtrModel, baseline: CampaignRate, holdout: pl.DataFrame) -> dict[str, Any]:
    """Holdout log loss, AUC and calibration of the model and the baseline."""
    y = holdout["clicked"].to_numpy()
    p = model.predict(holdout)
    return {"model": mm.binary_metrics(y, p), "baseline": mm.binary_metrics(y, baseline.predict(holdout)),
            "calibration": mm.calibration_table(y, p, bins=10), "predictions": p}


def data_hash(rows: pl.DataFrame) -> str:
    """A short fingerprint of the training rows (for the registry's metadata)."""
    return f"{int(rows.hash_rows(seed=7).sum()) & ((1 << 64) - 1):016x}-{rows.height}"


def fit_and_register(rows: pl.DataFrame, run_date: date, registry: Any, *, rounds: int = 150) -> dict[str, Any]:
    """Train the booster and the baseline, keep the better on the holdout (the one rule), score with the winner."""
    train_rows, holdout = split(rows, run_date)
    if train_rows.height < 200 or holdout.height < 50 or train_rows["clicked"].sum() < 10:
        raise ValueError(f"too few ad impressions to train the click-through model "
                         f"({train_rows.height} training rows, {holdout.height} holdout rows)")
    baseline = campaign_baseline(train_rows)
    model = train(train_rows, rounds=rounds)
    ev = evaluate(model, baseline, holdout)
    holdout_info = {"start": (run_date - timedelta(days=HOLDOUT_DAYS - 1)).isoformat(), "end": run_date.isoformat(),
                    "rows": holdout.height}
    own = {"xgboost": ev["model"], BASELINE: ev["baseline"]}
    params = {"xgboost": {**PARAMS, "rounds": rounds}, BASELINE: {"prior_weight": PRIOR_WEIGHT}}

    def save(c: Candidate, extra: dict[str, Any]) -> Any:
        metrics = {"log_loss": own[c.name]["log_loss"], "auc": own[c.name]["auc"],
                   "baseline_log_loss": ev["baseline"]["log_loss"], "baseline_auc": ev["baseline"]["auc"]}
        return registry.save(c.model, c.fmt, run_date=run_date,
                             training_window=(train_rows["day"].min(), train_rows["day"].max()),
                             data_hash=data_hash(train_rows), features=FEATURES, params=params[c.name],
                             metrics=metrics, holdout=holdout_info, extra=extra)

    judged = compete(registry, [Candidate("xgboost", model, CTR_FORMAT),
                                Candidate(BASELINE, baseline, RATE_FORMAT, baseline=True)],
                     judge=JUDGE, trained_until=train_rows["day"].max(), save=save,
                     holdout_after=lambda end: holdout.filter(pl.col("day") > end),
                     score=lambda scorer, rows: mm.log_loss(rows["clicked"].to_numpy(), scorer.predict(rows)))
    ev["calibration"] = mm.calibration_table(holdout["clicked"].to_numpy(), judged.model.predict(holdout), bins=10)
    return {"evaluation": ev, "version": judged.decision.challenger, "decision": judged.decision,
            "scorer": judged.model, "scorer_version": judged.version, "holdout": holdout, "baseline": baseline,
            "train_rows": train_rows.height, "notes": judged.notes, "selection": judged,
            "published": judged.published, "model_label": "XGBoost"}


def score_kept(rows: pl.DataFrame, run_date: date, kept: Any, published: str) -> dict[str, Any]:
    """Between training nights: the training night's model (`kept`, loaded from the registry) and
    tonight's campaign rates, both scored on tonight's holdout; nothing is trained or judged."""
    train_rows, holdout = split(rows, run_date)
    if holdout.height < 50:
        raise ValueError(f"too few ad impressions to score the click-through model ({holdout.height} holdout rows)")
    baseline = campaign_baseline(train_rows)
    ev = evaluate(kept.model, baseline, holdout)
    lost = cadence.lost_to_baseline(JUDGE, published, {published: ev["model"]["log_loss"],
                                                       BASELINE: ev["baseline"]["log_loss"]}, [BASELINE])
    return {"evaluation": ev, "version": None, "decision": None, "scorer": kept.model, "scorer_version": kept.version,
            "holdout": holdout, "baseline": baseline, "train_rows": train_rows.height, "notes": kept.warnings + lost,
            "selection": None, "published": published, "model_label": published}


def predict_tomorrow(scorer: CtrModel, recent: pl.DataFrame, run_date: date) -> pl.DataFrame:
    """Expected CTR per campaign tomorrow: the model on last week's impression contexts, moved to tomorrow's weekday."""
    tomorrow = run_date + timedelta(days=1)
    frame = recent.with_columns(day_of_week=pl.lit(tomorrow.isoweekday(), dtype=pl.Int32))
    p = scorer.predict(frame)
    return (
        frame.select("campaign_id").with_columns(p=pl.Series(p))
        .group_by("campaign_id").agg(predicted_ctr=pl.col("p").mean())
        .sort("campaign_id")
    )
