"""Model quality measures shared by the jobs: discrimination, calibration and drift.

All take numpy arrays (labels 0/1, probabilities in [0, 1]) and return plain floats or small Polars
frames, so they serve any model family and feed report tables directly.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_EPS = 1e-6


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def roc_points(y: np.ndarray, p: np.ndarray, max_points: int = 200) -> pl.DataFrame:
    """ROC curve (fpr, tpr, threshold), thinned to at most `max_points` for charts."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    idx = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    return pl.DataFrame({"fpr": fpr[idx], "tpr": tpr[idx], "threshold": np.clip(thr[idx], 0, 1)})


def ks(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov–Smirnov statistic: the largest gap between the score CDFs of the two classes."""
    from sklearn.metrics import roc_curve

    y = np.asarray(y)
    if not 0 < y.sum() < len(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probabilities."""
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood, probabilities clipped away from 0 and 1."""
    y = np.asarray(y, float)
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, KS, Brier, log loss, mean prediction and observed rate for one model on one set."""
    return {"auc": auc(y, p), "ks": ks(y, p), "brier": brier(y, p), "log_loss": log_loss(y, p),
            "mean_predicted": float(np.mean(p)), "observed_rate": float(np.mean(y)), "n": int(len(y))}


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int | list[float] = 10) -> pl.DataFrame:
    """Observed rate vs mean prediction per bin (equal-count bins, or the given probability edges)."""
    frame = pl.DataFrame({"y": np.asarray(y, float), "p": np.asarray(p, float)})
    if isinstance(bins, int):
        frame = frame.with_columns(((pl.col("p").rank("ordinal") - 1) * bins // pl.len()).alias("bin"))
    else:
        edges = np.asarray(bins, float)
        frame = frame.with_columns(pl.Series("bin", np.searchsorted(edges, frame["p"].to_numpy(), side="right")))
    out = (
        frame.group_by("bin")
        .agg(n=pl.len(), mean_predicted=pl.col("p").mean(), observed_rate=pl.col("y").mean(),
             p_min=pl.col("p").min(), p_max=pl.col("p").max())
        .sort("bin")
    )
    se = (out["observed_rate"] * (1 - out["observed_rate"]) / out["n"]).sqrt()
    return out.with_columns(gap=pl.col("mean_predicted") - pl.col("observed_rate"), observed_se=se)


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of a numeric feature: quantile bins of `expected`, ε-smoothed."""
    expected = np.asarray(expected, float)
    actual = np.asarray(actual, float)
    expected, actual = expected[np.isfinite(expected)], actual[np.isfinite(actual)]
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    return _psi_from_counts(e, a)


def psi_categorical(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of a categorical feature over the union of its levels."""
    levels = np.union1d(np.asarray(expected, str), np.asarray(actual, str))
    e = np.array([(np.asarray(expected, str) == lv).sum() for lv in levels])
    a = np.array([(np.asarray(actual, str) == lv).sum() for lv in levels])
    return _psi_from_counts(e, a)


def _psi_from_counts(e: np.ndarray, a: np.ndarray) -> float:
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    pe = np.maximum(e / e.sum(), 1e-4)
    pa = np.maximum(a / a.sum(), 1e-4)
    return float(np.sum((pa - pe) * np.log(pa / pe)))
