"""Sampling error of model metrics, for thresholds derived from the demo's planted truth.

The model tests compare a trained model with the probabilities or distributions the demo generators
planted, and allow only the sampling error of the holdout. These helpers give that error: the
Hanley–McNeil standard error of an AUC, the binomial standard error of a rate, a cluster-robust
standard error of a mean (rows that share a user or a SKU are not independent), and the critical value
that goes with it. `Z` is the band every test uses: 3 standard errors, a 0.27% false alarm rate per
check for a model that is as good as the truth allows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

Z = 3.0
TWO_SIDED_P = 2 * stats.norm.sf(Z)  # the false alarm rate of a ±Z band


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC estimated from `n_pos` positives and `n_neg` negatives (Hanley & McNeil 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return float(np.sqrt(var))


def binomial_se(p: float, n: float) -> float:
    """Standard error of a rate p observed on n independent trials."""
    return float(np.sqrt(p * (1 - p) / n))


def clustered_se(values: np.ndarray, clusters: np.ndarray) -> float:
    """Cluster-robust standard error of the mean of `values`: rows of one cluster may be correlated.

    The mean is sum(values) / n; its variance is the sum over clusters of (cluster sum - cluster size *
    mean)^2, divided by n^2, with the usual G / (G - 1) small-sample factor for G clusters.
    """
    values = np.asarray(values, float)
    _, idx = np.unique(np.asarray(clusters), return_inverse=True)
    g = idx.max() + 1
    resid = np.bincount(idx, weights=values - values.mean(), minlength=g)
    return float(np.sqrt(g / (g - 1) * np.sum(resid**2)) / len(values))


def t_critical(clusters: int) -> float:
    """The Student t value with the same two-sided coverage as ±Z, for an s.e. from `clusters` clusters."""
    return float(stats.t.isf(TWO_SIDED_P / 2, clusters - 1))


class RecordingRng:
    """A numpy Generator that records every draw, so a test can read latent values a generator drew.

    The demo generators take the rng as an argument and draw from it in a fixed order; wrapping it
    changes no draw, so the tables are the ones the plain Generator gives, and `draws(name)` returns
    what each call of method `name` returned (e.g. the users' planted click propensity).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.calls: list[tuple[str, tuple, dict, Any]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._rng, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            out = method(*args, **kwargs)
            self.calls.append((name, args, kwargs, out))
            return out

        return recorded

    def draws(self, name: str) -> list[Any]:
        """What each call of `name` returned, in call order."""
        return [out for method, _, _, out in self.calls if method == name]
