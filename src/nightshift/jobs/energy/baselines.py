"""Baselines the network must beat, and the accuracy and interval measures shared by all models.

Seasonal naive: each hour of the next week equals the same hour last week. The linear baseline is
a ridge regression on exactly the network's inputs (past window, known future calendar), one
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
    """Scaled forecasts (N × H): each hour's mean over the past week's days of the same type.

    A reference the network may correct, not a baseline it is judged against.
    """
    from nightshift.jobs.energy.dataset import FUTURE_FEATURES

    return w.future[:, :, FUTURE_FEATURES.index("load_daytype_mean")].astype(np.float64)


def _features(w: Windows) -> np.ndarray:
    return np.concatenate([w.past.reshape(len(w), -1), w.future.reshape(len(w), -1)], axis=1)


@dataclass
class LinearBaseline:
    """A ridge regression (standardised features) predicting the correction to seasonal naive."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    alpha: float

    def predict(self, w: Windows) -> np.ndarray:
        """Scaled forecasts (N × H)."""
        return ((_features(w) - self.mean) / self.scale) @ self.coef + self.intercept + w.naive


def fit_linear(train: Windows, val: Windows, alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)) -> LinearBaseline:
    """Ridge on the network's features (scikit-learn's scaler), penalty chosen on validation MAE.

    The Gram matrix is formed once and each penalty is one small solve: refitting scikit-learn's
    Ridge per penalty would redo the (windows × 2,000 features) product every time.
    """
    from sklearn.preprocessing import StandardScaler

    x = _features(train).astype(np.float64)
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
        model = LinearBaseline(scaler.mean_, scale, coef, y_mean, alpha)
        err = float(np.nanmean(np.abs(model.predict(val) - val.target) * val.level[:, None]))
        if err < best_mae:
            best, best_mae = model, err
    return best


def predict_linear(model: LinearBaseline, w: Windows) -> np.ndarray:
    """Scaled forecasts (N × H) of the ridge baseline."""
    return model.predict(w)


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


def residual_quantiles(pred_scaled: np.ndarray, w: Windows, coverage: float = 0.9,
                       smooth: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper quantiles of scaled residuals per horizon hour, from validation windows.

    Neighbouring horizon hours are pooled (±`smooth` // 2) so a quantile rests on more residuals.
    """
    resid = w.target.astype(np.float64) - pred_scaled
    h = resid.shape[1]
    half = smooth // 2
    lo, hi = np.empty(h), np.empty(h)
    a = (1 - coverage) / 2
    for k in range(h):  # per horizon hour (168), not per window
        block = resid[:, max(0, k - half): k + half + 1]
        lo[k], hi[k] = np.nanquantile(block, [a, 1 - a])
    return lo, hi


def interval_coverage(pred_scaled: np.ndarray, lo: np.ndarray, hi: np.ndarray, w: Windows) -> float:
    """Share of holdout truths inside the interval (checks the validation-based interval)."""
    t = w.target.astype(np.float64)
    inside = (t >= pred_scaled + lo) & (t <= pred_scaled + hi)
    return float(np.mean(inside[~np.isnan(t)]))


def conformal_halfwidth(pred_scaled: np.ndarray, w: Windows, coverage: float = 0.9, smooth: int = 5,
                        recent: float = 0.5) -> np.ndarray:
    """Split-conformal half-width per horizon hour: a quantile of absolute validation residuals.

    Only the most recent `recent` share of validation origins is used (errors drift with the
    season, and the latest ones are closest to tonight), neighbouring horizon hours are pooled
    (±`smooth` // 2), and the quantile level is the finite-sample ceil((n + 1) c) / n.
    """
    resid = np.abs(w.target.astype(np.float64) - pred_scaled)
    cut = np.quantile(w.origin, 1 - recent) if recent < 1 else -np.inf
    resid = resid[w.origin >= cut]
    h, half = resid.shape[1], smooth // 2
    q = np.empty(h)
    for k in range(h):  # per horizon hour (168), not per window
        block = resid[:, max(0, k - half): k + half + 1]
        n = int(np.sum(~np.isnan(block)))
        q[k] = np.nanquantile(block, min(1.0, np.ceil((n + 1) * coverage) / max(n, 1)))
    return q
