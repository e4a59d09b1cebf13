"""XGBoost helpers shared by the jobs: device choice, save/load, contributions, early-stopped fits."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nightshift.modeling import FnFormat, has_gpu


def xgb_device() -> str:
    """`"cuda"` when a GPU is present and this XGBoost build supports CUDA, else `"cpu"`."""
    if not has_gpu():
        return "cpu"
    import xgboost as xgb

    return "cuda" if xgb.build_info().get("USE_CUDA") else "cpu"


def default_threads() -> int:
    """Half the cores: OpenMP threads that spin on a shared, busy machine slow training badly."""
    return max(1, (os.cpu_count() or 1) // 2)


def save_booster(booster: Any, directory: Path) -> None:
    """Write a Booster as portable JSON (`booster.json`)."""
    booster.save_model(directory / "booster.json")


def load_booster(directory: Path) -> Any:
    """Read a Booster written by `save_booster` (predicts on CPU unless told otherwise)."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(directory / "booster.json")
    booster.set_param({"device": "cpu"})
    return booster


XGB_BOOSTER = FnFormat("xgboost-json", save_booster, load_booster)


def train_early_stopped(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                        params: dict[str, Any], *, feature_names: list[str], num_boost_round: int = 500,
                        early_stopping_rounds: int = 30, weight_train: np.ndarray | None = None) -> Any:
    """Train a `hist` booster with early stopping on the (time-based) validation set.

    When the job runs on a Dask worker (the flow's Dask runner), training goes through
    `xgboost.dask` across the cluster's workers; otherwise it runs here.
    """
    from nightshift.modeling.distributed import train_xgb, worker_client_or_none

    p = {"tree_method": "hist", "device": xgb_device(), "nthread": default_threads(), **params}
    with worker_client_or_none() as client:
        booster = train_xgb(p, x_train, y_train, rounds=num_boost_round, client=client, x_valid=x_valid,
                            y_valid=y_valid, early_stopping_rounds=early_stopping_rounds, weight=weight_train,
                            feature_names=feature_names)
    booster.set_param({"device": "cpu"})  # later predictions take host arrays; avoid device copies
    return booster


def predict_margin(booster: Any, x: np.ndarray, feature_names: list[str]) -> np.ndarray:
    """Raw scores (log-odds for binary:logistic) up to the best iteration."""
    import xgboost as xgb

    d = xgb.DMatrix(x, feature_names=feature_names, nthread=default_threads())
    return booster.predict(d, output_margin=True, iteration_range=_best_range(booster))


def contributions(booster: Any, x: np.ndarray, feature_names: list[str]) -> np.ndarray:
    """SHAP contributions (n, features + 1; last column is the bias), in log-odds."""
    import xgboost as xgb

    d = xgb.DMatrix(x, feature_names=feature_names, nthread=default_threads())
    return booster.predict(d, pred_contribs=True, iteration_range=_best_range(booster))


def _best_range(booster: Any) -> tuple[int, int]:
    best = booster.attributes().get("best_iteration")
    return (0, int(best) + 1) if best is not None else (0, 0)


def booster_summary(booster: Any) -> dict[str, Any]:
    """Best iteration and number of trees (for metadata)."""
    attrs = booster.attributes()
    return {"best_iteration": int(attrs["best_iteration"]) if "best_iteration" in attrs else None,
            "trained_with": attrs.get("trained_with"),
            "trees": len(json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"])}
