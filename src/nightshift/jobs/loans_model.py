"""The loan default model: early-stopped XGBoost, isotonic calibration, a logistic baseline.

A `LoansModel` bundles everything needed to score: the booster, the encoder (category levels)
and the calibration map, so a champion stored months ago scores today's rows exactly as it did
then. Calibration is stored as isotonic breakpoints (plain numbers), so no pickle is involved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nightshift.jobs.loans_features import Encoder, Split
from nightshift.modeling import FnFormat
from nightshift.modeling import xgb as X

DEFAULT_PARAMS = {
    "objective": "binary:logistic", "eval_metric": "logloss", "eta": 0.05, "max_depth": 4,
    "min_child_weight": 5, "subsample": 0.8, "colsample_bytree": 0.8, "lambda": 1.0,
}
P_FLOOR = 1e-4  # calibrated probabilities never reach exactly 0 or 1


@dataclass
class LoansModel:
    """A trained default model: booster, encoder and calibration breakpoints."""

    booster: Any
    encoder: Encoder
    cal_x: np.ndarray  # raw probability breakpoints (increasing)
    cal_y: np.ndarray  # calibrated probability at each breakpoint
    info: dict[str, Any] = field(default_factory=dict)

    def raw(self, frame: pl.DataFrame) -> np.ndarray:
        """Uncalibrated XGBoost probabilities."""
        m = X.predict_margin(self.booster, self.encoder.transform(frame), self.encoder.names)
        return 1.0 / (1.0 + np.exp(-m))

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Calibrated probability of default per row."""
        return np.clip(np.interp(self.raw(frame), self.cal_x, self.cal_y), P_FLOOR, 1 - P_FLOOR)

    def contributions(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Per-row contributions (log-odds) of each input feature, one-hot columns summed back."""
        c = X.contributions(self.booster, self.encoder.transform(frame), self.encoder.names)
        names = self.encoder.names
        out = {}
        for src in self.encoder.sources:
            idx = [i for i, n in enumerate(names) if self.encoder.source(n) == src]
            out[src] = c[:, idx].sum(axis=1)
        return pl.DataFrame(out)


def _save(model: LoansModel, directory: Path) -> None:
    X.save_booster(model.booster, directory)
    (directory / "preprocess.json").write_text(json.dumps({
        "encoder": model.encoder.to_dict(),
        "calibration": {"x": model.cal_x.tolist(), "y": model.cal_y.tolist()},
        "info": model.info,
    }, default=str))


def _load(directory: Path) -> LoansModel:
    pre = json.loads((directory / "preprocess.json").read_text())
    cal = pre["calibration"]
    return LoansModel(X.load_booster(directory), Encoder.from_dict(pre["encoder"]),
                      np.asarray(cal["x"], float), np.asarray(cal["y"], float), pre.get("info", {}))


LOANS_FORMAT = FnFormat("loans-xgboost-isotonic", _save, _load)


def fit_calibration(raw: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic map from raw to calibrated probability, as breakpoints for `np.interp`."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True).fit(raw, y)
    return np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)


def fit_model(split: Split, params: dict[str, Any] | None = None, *, seed: int = 7,
              num_boost_round: int = 600, early_stopping_rounds: int = 40) -> LoansModel:
    """Fit XGBoost on the training window, stop early and calibrate on the validation window."""
    enc = Encoder.fit(split.train)
    p = {**DEFAULT_PARAMS, "seed": seed, "monotone_constraints": enc.monotone_constraints(), **(params or {})}
    booster = X.train_early_stopped(
        enc.transform(split.train), split.train["defaulted"].to_numpy(),
        enc.transform(split.valid), split.valid["defaulted"].to_numpy(),
        p, feature_names=enc.names, num_boost_round=num_boost_round, early_stopping_rounds=early_stopping_rounds,
    )
    model = LoansModel(booster, enc, np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    cal_x, cal_y = fit_calibration(model.raw(split.valid), split.valid["defaulted"].to_numpy())
    model.cal_x, model.cal_y = cal_x, cal_y
    model.info = {"params": p, "device": p.get("device", X.xgb_device()), **X.booster_summary(booster)}
    return model


@dataclass
class Baseline:
    """Logistic regression on the same encoding (numeric columns standardised, money logged)."""

    pipeline: Any
    encoder: Encoder

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Probability of default per row."""
        return self.pipeline.predict_proba(_linear_inputs(self.encoder, frame))[:, 1]


def _linear_inputs(enc: Encoder, frame: pl.DataFrame) -> np.ndarray:
    m = enc.transform(frame).astype(np.float64)
    for col in ("amount", "annual_income"):  # money is lognormal: linear in its log
        i = enc.names.index(col)
        m[:, i] = np.log1p(np.maximum(m[:, i], 0))
    return np.nan_to_num(m)


def fit_baseline(split: Split) -> Baseline:
    """Fit the logistic baseline on the training window only (the same rows XGBoost learns from)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    enc = Encoder.fit(split.train)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))
    pipe.fit(_linear_inputs(enc, split.train), split.train["defaulted"].to_numpy())
    return Baseline(pipe, enc)
