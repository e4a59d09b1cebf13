"""The model menu on the log scale: exponential smoothing, Theta and their combination with SARIMA.

Every member models z = log1p(units): seasonal and promotion effects are multiplicative on units
and additive there, and back-transformed intervals stay non-negative. The point forecast is the
back-transformed median, which is what absolute-error measures reward. A daily series' yearly
season is taken out first by a regression on Fourier terms (with a linear trend, so that growth is
not read as season) and added back to every member's forecast: no 365-lag model is ever fitted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from nightshift.jobs.sales.baselines import Z80, Z95, Forecast
from nightshift.jobs.sales.sarima import FitError

MEMBERS = ("sarima", "ets", "theta", "combination", "seasonal_naive")
COMBINED = ("sarima", "ets", "theta")  # the combination is the mean of these on the log scale
YEAR = 365.25
FOURIER_K = 3  # pairs of yearly harmonics: a smooth yearly shape, little to estimate
MIN_YEARLY_DAYS = 400  # a yearly season is only estimated from more than a year of known days
ZERO_AS_MISSING_MEDIAN = 5.0


@dataclass
class LogSeries:
    """One window of a series as the members see it."""

    z: np.ndarray  # log units without the yearly season, NaN = unknown (SARIMA takes NaN directly)
    z_full: np.ndarray  # the same with unknowns interpolated (smoothing needs every period)
    yearly_ahead: np.ndarray  # the yearly season over the horizon, added back to every forecast
    y: np.ndarray  # the units, for the explosion check


def for_model(y: np.ndarray) -> np.ndarray:
    """The units as the models see them: in a series that normally sells (median >= 5 a period), a
    zero is a stock-out or closure, not demand, so it is marked unknown instead of dragging the log."""
    y = np.asarray(y, float).copy()
    known = y[np.isfinite(y)]
    if known.size and np.median(known) >= ZERO_AS_MISSING_MEDIAN:
        y[y == 0] = np.nan
    return y


def _fourier(t: np.ndarray) -> np.ndarray:
    w = 2 * np.pi * np.outer(t, np.arange(1, FOURIER_K + 1)) / YEAR
    return np.hstack([np.sin(w), np.cos(w)])


def prepare(y: np.ndarray, horizon: int, yearly: bool) -> LogSeries:
    """Log units of one window, the yearly season removed when asked for and estimable."""
    z = np.log1p(for_model(y))
    ahead = np.zeros(horizon)
    known = np.isfinite(z)
    if yearly and known.sum() >= MIN_YEARLY_DAYS:
        t = np.arange(z.size + horizon, dtype=float)
        f = _fourier(t)
        design = np.column_stack([np.ones(z.size), t[: z.size], f[: z.size]])
        coef = np.linalg.lstsq(design[known], z[known], rcond=None)[0]
        season = f @ coef[2:]
        z, ahead = z - season[: z.size], season[z.size:]
    full = z.copy()
    if not known.all() and known.any():
        idx = np.arange(z.size)
        full[~known] = np.interp(idx[~known], idx[known], z[known])
    return LogSeries(z, full, ahead, np.asarray(y, float))


def ets(s: LogSeries, horizon: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Additive Holt-Winters with a damped trend (ETS(A,Ad,A)); no season with under two of them."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = s.z_full.size >= 2 * m + 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ExponentialSmoothing(s.z_full, trend="add", damped_trend=True, seasonal="add" if seasonal else None,
                                   seasonal_periods=m if seasonal else None,
                                   initialization_method="estimated").fit(use_brute=False)
    p = res.params
    alpha, beta, phi = p["smoothing_level"], p["smoothing_trend"], p["damping_trend"]
    gamma = p["smoothing_seasonal"] if seasonal else 0.0
    # Forecast variance of ETS(A,Ad,A) (Hyndman et al. 2008, Table 6.1), with the trend's
    # smoothing written per unit of level smoothing as statsmodels has it.
    j = np.arange(1, horizon)
    phi_j = np.cumsum(phi ** j)
    c = alpha * (1 + beta * phi_j) + gamma * (j % m == 0)
    sigma2 = float(res.sse) / s.z_full.size
    return np.asarray(res.forecast(horizon), float), np.sqrt(sigma2 * (1 + np.r_[0.0, np.cumsum(c**2)]))


def theta(s: LogSeries, horizon: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The Theta method (SES with drift on the seasonally adjusted series; additive on the log scale).

    The spread is SES's, sigma^2 (1 + (h-1) alpha^2), from its one-step errors on the adjusted series
    (statsmodels' own `sigma2` fits an ARIMA by maximum likelihood: most of the method's cost).
    """
    from statsmodels.tsa.forecasting.theta import ThetaModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ThetaModel(s.z_full, period=m, deseasonalize=s.z_full.size >= 2 * m, method="additive").fit()
        mu = np.asarray(res.forecast(horizon), float)
    alpha = float(res.params["alpha"])
    season = np.asarray(res._seasonal, float)  # one period of the additive seasonal index (empty: none)
    adj = s.z_full - np.resize(season, s.z_full.size) if season.size else s.z_full
    level, errors = adj[0], np.empty(adj.size - 1)
    for t in range(1, adj.size):
        errors[t - 1] = adj[t] - level
        level += alpha * errors[t - 1]
    sigma2 = float(np.mean(errors**2)) if errors.size else 0.0
    return mu, np.sqrt(sigma2 * (1 + np.arange(horizon) * alpha**2))


def combination(parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the members' log forecasts; the mean of their spreads (errors of the members
    are strongly correlated, so the mean's spread is close to theirs, not smaller)."""
    if len(parts) < 2:
        raise FitError("fewer than two members to combine")
    return np.mean([p[0] for p in parts.values()], axis=0), np.mean([p[1] for p in parts.values()], axis=0)


def to_units(s: LogSeries, mu: np.ndarray, sd: np.ndarray, label: str) -> Forecast:
    """The log forecast with the yearly season added back, as a median and intervals in units."""
    mu = mu + s.yearly_ahead[: mu.size]
    back = lambda v: np.clip(np.expm1(v), 0.0, None)  # noqa: E731
    out = Forecast(back(mu), back(mu - Z80 * sd), back(mu + Z80 * sd), back(mu - Z95 * sd), back(mu + Z95 * sd),
                   label)
    _check(out, s.y)
    return out


def _check(f: Forecast, y: np.ndarray) -> None:
    """Refuse forecasts no one should publish: non-finite, or exploding far past anything seen."""
    arrays = (f.mean, f.lower_80, f.upper_80, f.lower_95, f.upper_95)
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise FitError(f"{f.model}: the forecast has non-finite values")
    ceiling = 10 * (np.nanmax(y) + 10)
    if np.max(f.mean) > ceiling:
        raise FitError(f"{f.model}: the forecast explodes (max {np.max(f.mean):.0f} vs history max {np.nanmax(y):.0f})")
    # Very wide 95% bands at long horizons are honest, but infinite ones are not: cap them.
    np.minimum(f.upper_95, 5 * ceiling, out=f.upper_95)
    np.minimum(f.upper_80, f.upper_95, out=f.upper_80)
