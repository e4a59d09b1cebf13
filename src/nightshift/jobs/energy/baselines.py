"""Baselines that compete with the network, and the accuracy measures shared by all models.

Seasonal naive: each hour of the next week equals the same hour last week. Day-type profile: each
hour is that hour's mean over the past week's days of the same type (nothing fitted). The linear
baseline is a ridge regression on the network's inputs (past window, known future calendar), one
output per horizon hour. Errors are measured in kWh on the holdout, per horizon hour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nightshift.jobs.energy.dataset import Windows


def seasonal_naive(w: Windows) -> np.ndarray:
    """Scaled forecasts (N × H): the same hour one week earlier."""
    return w.naive.astype(np.float64)


def daytype_profile(w: Windows) -> np.ndarray:
    """Scaled forecasts (N × H): each hour's mean over the past week's days of the same type."""
    from nightshift.jobs.energy.dataset import FUTURE_FEATURES

    return w.future[:, :, FUTURE_FEATURES.index("load_daytype_mean")].astype(np.float64)


FIXED = {"seasonal naive": seasonal_naive, "day-type profile": daytype_profile}  # baselines with nothing fitted


def _features(w: Windows) -> np.ndarray:
    return np.concatenate([w.past.reshape(len(w), -1), w.future.reshape(len(w), -1)], axis=1)


@dataclass
class LinearBaseline:
    """A ridge regression (standardised features) predicting the correction to seasonal naive.

    `keep` marks the feature columns it uses: those the data has (without a temperature column the
    temperature features are NaN and left out, never read as 0 °C).
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    alpha: float
    keep: np.ndarray

    def forecast(self, w: Windows) -> np.ndarray:
        """Scaled forecasts (N × H)."""
        return ((_features(w)[:, self.keep] - self.mean) / self.scale) @ self.coef + self.intercept + w.naive


def fit_linear(train: Windows, val: Windows, alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)) -> LinearBaseline:
    """Ridge on the network's features (scikit-learn's scaler), penalty chosen on validation MAE.

    The Gram matrix is formed once and each penalty is one small solve: refitting scikit-learn's
    Ridge per penalty would redo the (windows × 2,000 features) product every time.
    """
    from sklearn.preprocessing import StandardScaler

    x = _features(train).astype(np.float64)
    keep = np.isfinite(x).all(axis=0)
    x = x[:, keep]
    y = (train.target - train.naive).astype(np.float64)  # the same head start the network gets
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    y_mean = y.mean(axis=0)
    xs32 = xs.astype(np.float32)  # the Gram product in float32: half the time, ample precision
    gram = (xs32.T @ xs32).astype(np.float64)
    xty = xs.T @ (y - y_mean)
    best, best_mae = None, np.inf
    for alpha in alphas:
        coef = np.linalg.solve(gram + alpha * np.eye(gram.shape[0]), xty)
        model = LinearBaseline(scaler.mean_, scale, coef, y_mean, alpha, keep)
        err = float(np.nanmean(np.abs(model.forecast(val) - val.target) * val.level[:, None]))
        if err < best_mae:
            best, best_mae = model, err
    return best


def to_kwh(scaled: np.ndarray, w: Windows) -> np.ndarray:
    """Undo the per-window scaling: kWh forecasts (N × H)."""
    return np.asarray(scaled, dtype=np.float64) * w.level[:, None]


def mae_by_horizon(pred_kwh: np.ndarray, w: Windows) -> np.ndarray:
    """Mean absolute error in kWh for each horizon hour (H,), over all windows."""
    truth = w.target.astype(np.float64) * w.level[:, None]
    return np.nanmean(np.abs(pred_kwh - truth), axis=0)


def mae(pred_kwh: np.ndarray, w: Windows) -> float:
    """Mean absolute error in kWh over all windows and horizon hours."""
    return float(np.nanmean(mae_by_horizon(pred_kwh, w)))


def wape(pred_kwh: np.ndarray, w: Windows) -> float:
    """Weighted absolute percentage error: total absolute error over total load."""
    truth = w.target.astype(np.float64) * w.level[:, None]
    return float(np.nansum(np.abs(pred_kwh - truth)) / np.nansum(np.abs(truth)))
