"""The demand model of the inventory job: lead-time demand quantiles from one XGBoost model.

One multi-quantile booster (`reg:quantileerror` with a vector `quantile_alpha`) is trained on all
warehouse × SKU series at once. Series differ in size by orders of magnitude, so the target is
demand over the lead time divided by a scale known on day t (recent mean × lead time): quantiles
are equivariant under a positive scale, so predicting the ratio and multiplying back is exact and
lets one model share what it learns across series. Predicted quantiles are sorted per row so
they never cross. Two baselines: what a planner without a model would use, empirical quantiles of
each series' own past lead-time demand (the reference on the page, and the forecast of series too
young for the model); and the candidate that competes with the booster for the job's selection,
the same quantiles of each series' lead-time demand over its recent level (`EmpiricalRatioModel`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
import xgboost as xgb

from nightshift.modeling import FnFormat
from nightshift.modeling.distributed import train_xgb, worker_client_or_none
from nightshift.modeling.xgb import default_threads, xgb_device

QUANTILES = (0.5, 0.9, 0.95, 0.99)
MIN_HISTORY_DAYS = 28  # rows with less known history are neither trained on nor scored by the model
BASELINE_WINDOW_DAYS = 365  # the baseline's sample: the last year of lead-time demand per series

FEATURES = [
    "lead_time_days", "warehouse_code", "log_level", "r7", "r28", "r91", "r365", "cv28", "rmax28",
    "rmed28", "zero28", "past_lt_ratio", "last_year_ratio", "dow", "doy_sin", "doy_cos",
    "promo_share", "promo7", "has_sales", "history_days",
]

DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 120,
    "max_depth": 4,
    "learning_rate": 0.1,
    "max_bin": 64,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "tree_method": "hist",
}


class Forecaster(Protocol):
    """What the policy needs of a demand model (the booster or the baseline): quantiles per row."""

    def predict(self, frame: pl.DataFrame) -> np.ndarray: ...


def add_features(daily: pl.DataFrame) -> pl.DataFrame:
    """Model features (scale-free ratios) and the scale that turns ratios back into units."""
    level = (pl.coalesce("m28", "m91") + pl.coalesce("m91", "m28")) / 2 + 0.1
    return daily.with_columns(level.alias("level")).with_columns(
        (pl.col("level") * pl.col("lead_time_days")).alias("scale"),
        pl.col("level").log1p().alias("log_level"),
        *[(pl.col(c) / pl.col("level")).alias(f"r{c[1:]}") for c in ("m7", "m28", "m91", "m365")],
        (pl.col("sd28") / pl.col("level")).alias("cv28"),
        (pl.col("max28") / pl.col("level")).alias("rmax28"),
        (pl.col("med28") / pl.col("level")).alias("rmed28"),
        (pl.col("past_lt_demand") / (pl.col("level") * pl.col("lead_time_days"))).alias("past_lt_ratio"),
        (pl.col("last_year_lt_demand") / (pl.col("level") * pl.col("lead_time_days"))).alias("last_year_ratio"),
        (2 * np.pi * pl.col("doy") / 365.25).sin().alias("doy_sin"),
        (2 * np.pi * pl.col("doy") / 365.25).cos().alias("doy_cos"),
        pl.col("has_sales").cast(pl.Float64),
        pl.col("days_known").clip(upper_bound=400).cast(pl.Float64).alias("history_days"),
    )


def pinball(y: np.ndarray, pred: np.ndarray, quantiles: tuple[float, ...] = QUANTILES) -> np.ndarray:
    """Mean pinball loss per quantile (units of demand), for targets y (n,) and predictions (n, k)."""
    diff = y[:, None] - pred
    alphas = np.asarray(quantiles)[None, :]
    return np.mean(np.maximum(alphas * diff, (alphas - 1) * diff), axis=0)


def coverage(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Share of targets at or below each predicted quantile (should be close to the quantile)."""
    return np.mean(y[:, None] <= pred, axis=0)


@dataclass
class QuantileDemandModel:
    """A trained multi-quantile booster plus what it needs to score: feature order, warehouses."""

    booster: xgb.Booster
    quantiles: tuple[float, ...] = QUANTILES
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    warehouses: list[str] = field(default_factory=list)

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """The feature matrix in training order; unknown warehouses become missing values."""
        codes = {w: float(i) for i, w in enumerate(self.warehouses)}
        frame = frame.with_columns(
            pl.col("warehouse_id").replace_strict(codes, default=None, return_dtype=pl.Float64).alias("warehouse_code")
        )
        return frame.select([pl.col(c).cast(pl.Float64) for c in self.features]).fill_nan(None).to_numpy()

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Lead-time demand quantiles in units, shape (rows, quantiles), sorted so they never cross."""
        if frame.height == 0:
            return np.zeros((0, len(self.quantiles)))
        ratio = self.booster.inplace_predict(self.matrix(frame)).reshape(frame.height, -1)
        ratio = np.sort(ratio, axis=1)
        return np.clip(ratio, 0, None) * frame["scale"].to_numpy()[:, None]


def fit(train: pl.DataFrame, params: dict[str, Any] | None = None, seed: int = 7) -> QuantileDemandModel:
    """Train one multi-quantile model on rows with a known target."""
    p = {**DEFAULT_PARAMS, **(params or {})}
    rounds = int(p.pop("n_estimators"))
    warehouses = sorted(train["warehouse_id"].unique().to_list())
    model = QuantileDemandModel(booster=None, warehouses=warehouses)  # type: ignore[arg-type]
    x = model.matrix(train)
    y = (train["target"] / train["scale"]).to_numpy()
    booster_params = {
        "objective": "reg:quantileerror", "quantile_alpha": np.array(QUANTILES), "seed": seed,
        # Half the cores: on the shared 2-core machines two threads ran 8x slower (oversubscribed).
        "nthread": default_threads(), "device": xgb_device(), **p,
    }
    # On a Dask worker (the flow's Dask runner) this trains through xgboost.dask across the cluster.
    with worker_client_or_none() as client:
        model.booster = train_xgb(booster_params, x, y, rounds=rounds, client=client)
    model.booster.set_param({"device": "cpu"})  # scoring a few hundred rows: no device copies
    return model


def baseline(history: pl.DataFrame, holdout: pl.DataFrame, cutoff: date,
             window_days: int = BASELINE_WINDOW_DAYS) -> np.ndarray:
    """Empirical quantiles of each series' past lead-time demand (targets known by `cutoff`), per row."""
    past = history.filter(
        pl.col("target").is_not_null(),
        (pl.col("date") + pl.duration(days=pl.col("lead_time_days"))) <= cutoff,
        pl.col("date") > cutoff - timedelta(days=window_days),
    )
    qs = past.group_by("warehouse_id", "product_id").agg(
        [pl.col("target").quantile(q, interpolation="linear").alias(f"b{q}") for q in QUANTILES]
    )
    cols = [f"b{q}" for q in QUANTILES]
    joined = holdout.select("warehouse_id", "product_id").join(qs, on=["warehouse_id", "product_id"], how="left",
                                                               maintain_order="left")
    return joined.select(cols).to_numpy().astype(float)


SERIES = ["warehouse_id", "product_id"]
BASELINE_FEATURES = ["warehouse_id", "product_id", "scale"]


@dataclass
class EmpiricalRatioModel:
    """The baseline candidate: each series' empirical quantiles of lead-time demand over its recent level.

    Fitted on the last year of the training rows as ratios target / scale (the booster's own target),
    so a forecast follows the series' current level (`scale`: recent mean x lead time, known on the
    day) with the spread its own history showed. A series unseen in training gets the pooled ratios.
    Stored as JSON like any model, so a baseline champion loads and scores like a booster.
    """

    ratios: dict[str, list[float]]  # "warehouse_id/product_id" -> ratio quantiles
    pooled: list[float]
    quantiles: tuple[float, ...] = QUANTILES

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Lead-time demand quantiles in units, shape (rows, quantiles), never crossing."""
        keys = frame.select(pl.concat_str(SERIES, separator="/")).to_series().to_list()
        ratio = np.array([self.ratios.get(k, self.pooled) for k in keys], dtype=float).reshape(frame.height, -1)
        return np.clip(ratio, 0, None) * frame["scale"].to_numpy()[:, None]


def fit_baseline(train: pl.DataFrame, window_days: int = BASELINE_WINDOW_DAYS) -> EmpiricalRatioModel:
    """Empirical ratio quantiles per series from the training rows of the last `window_days`."""
    recent = train.filter(pl.col("date") > train["date"].max() - timedelta(days=window_days))
    ratio = (pl.col("target") / pl.col("scale")).alias("ratio")
    qs = [pl.col("ratio").quantile(q, interpolation="linear").alias(str(q)) for q in QUANTILES]
    per = recent.select(*SERIES, ratio).group_by(SERIES).agg(qs)
    pooled = recent.select(ratio).select(qs).row(0)
    keys = per.select(pl.concat_str(SERIES, separator="/")).to_series().to_list()
    return EmpiricalRatioModel(dict(zip(keys, per.select(map(str, QUANTILES)).rows(), strict=True)), list(pooled))


def _save_baseline(model: EmpiricalRatioModel, directory: Path) -> None:
    (directory / "ratios.json").write_text(json.dumps(
        {"quantiles": list(model.quantiles), "ratios": {k: list(v) for k, v in model.ratios.items()},
         "pooled": model.pooled}))


def _load_baseline(directory: Path) -> EmpiricalRatioModel:
    d = json.loads((directory / "ratios.json").read_text())
    return EmpiricalRatioModel(d["ratios"], d["pooled"], tuple(d["quantiles"]))


BASELINE_FORMAT = FnFormat("empirical-ratio-quantiles", _save_baseline, _load_baseline)


def split(frame: pl.DataFrame, run_date: date, holdout_days: int) -> tuple[pl.DataFrame, pl.DataFrame, date]:
    """Time-based split: train on targets complete by the cutoff, hold out origins after it."""
    cutoff = run_date - timedelta(days=holdout_days)
    usable = frame.filter(pl.col("target").is_not_null(), pl.col("days_known") >= MIN_HISTORY_DAYS)
    end = pl.col("date") + pl.duration(days=pl.col("lead_time_days"))
    train = usable.filter(end <= cutoff)
    holdout = usable.filter(pl.col("date") > cutoff)
    return train, holdout, cutoff


def evaluate(model: QuantileDemandModel, holdout: pl.DataFrame, base: np.ndarray | None = None) -> dict[str, Any]:
    """Pinball loss and coverage of the model (and the baseline, on the rows where it exists)."""
    y = holdout["target"].to_numpy().astype(float)
    pred = model.predict(holdout)
    out: dict[str, Any] = {"rows": int(y.size)}
    loss = pinball(y, pred)
    out["pinball"] = float(loss.mean())
    out["pinball_by_q"] = dict(zip(map(str, QUANTILES), map(float, loss), strict=True))
    out["coverage"] = dict(zip(map(str, QUANTILES), map(float, coverage(y, pred)), strict=True))
    if base is not None:
        ok = ~np.isnan(base).any(axis=1)
        out["baseline_rows"] = int(ok.sum())
        if ok.any():
            b_loss = pinball(y[ok], base[ok])
            out["pinball_model_same_rows"] = float(pinball(y[ok], pred[ok]).mean())
            out["pinball_baseline"] = float(b_loss.mean())
            out["pinball_baseline_by_q"] = dict(zip(map(str, QUANTILES), map(float, b_loss), strict=True))
            out["coverage_baseline"] = dict(zip(map(str, QUANTILES), map(float, coverage(y[ok], base[ok])),
                                                strict=True))
    return out


def data_hash(frame: pl.DataFrame) -> str:
    """A content hash of the training rows (keys, dates, targets), for the registry."""
    h = hashlib.sha256()
    for col in ("warehouse_id", "product_id"):
        h.update("\x1f".join(frame[col].to_list()).encode())
    h.update(frame["date"].cast(pl.Int32).to_numpy().tobytes())
    h.update(frame["target"].to_numpy().astype(np.float64).tobytes())
    return h.hexdigest()


def _save(model: QuantileDemandModel, directory: Path) -> None:
    model.booster.save_model(directory / "booster.ubj")
    meta = {"quantiles": list(model.quantiles), "features": model.features, "warehouses": model.warehouses}
    (directory / "model.json").write_text(json.dumps(meta, indent=2))


def _load(directory: Path) -> QuantileDemandModel:
    meta = json.loads((directory / "model.json").read_text())
    booster = xgb.Booster()
    booster.load_model(directory / "booster.ubj")
    return QuantileDemandModel(booster, tuple(meta["quantiles"]), meta["features"], meta["warehouses"])


# The booster in XGBoost's own binary format plus a small JSON of what scoring needs: no pickle.
FORMAT = FnFormat("xgboost-quantile", _save, _load)
