"""Seasonal ARIMA for one series on the log scale: order selection, warm-started fits and forecasts.

The menu (`menu.py`) hands it log1p(units), already adjusted for a yearly season where there is
one; the seasonal differencing is at the series' main period (7 for days, 12 for months, ...),
promotion an exogenous regressor (regression with SARIMA errors). The log scale turns
multiplicative seasonal and promotion effects into additive ones.

Estimation uses `simple_differencing=True` (a much smaller state vector, several times faster);
the forecast is then made with the full model on the same parameters over a recent window, so
that means and intervals come out on the level scale with the differencing accounted for.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from statsmodels.tsa.statespace.sarimax import SARIMAX

# The orders searched by AIC, with seasonal (0,1,1) at the series' period: all share d=1, D=1 so
# their likelihoods are over the same data and AIC compares like with like. Richer seasonal terms
# cost much more and rarely won.
ORDERS: tuple[tuple[int, int, int], ...] = ((0, 1, 1), (1, 1, 1), (2, 1, 1))
SELECT_PERIODS = 112  # selection looks at the last 112 periods (16 weeks of days): orders are stable
FILTER_PERIODS = 112  # the forecast's state is rebuilt from as many periods with fixed parameters
FIT_PERIODS = 365  # parameters from at most a year: the yearly season is taken out before, and
# a longer window only costs fit time (the smoothing members use the whole history)
MAXITER_COLD, MAXITER_WARM = 100, 50


class FitError(RuntimeError):
    """A fit failed or produced an unusable forecast; the message is the recorded reason."""


@dataclass(frozen=True)
class Spec:
    """A model structure: ARIMA order, seasonal order, and whether promotion is a regressor."""

    order: tuple[int, int, int]
    seasonal_order: tuple[int, int, int, int]
    exog: bool

    @property
    def label(self) -> str:
        """A short name for reports, e.g. `sarima(1,1,1)(0,1,1)7+promo`."""
        o, s = self.order, self.seasonal_order
        return f"sarima({o[0]},{o[1]},{o[2]})({s[0]},{s[1]},{s[2]}){s[3]}" + ("+promo" if self.exog else "")

    def to_json(self) -> dict:
        """The spec as plain JSON values, for the state file."""
        return {"order": list(self.order), "seasonal_order": list(self.seasonal_order), "exog": self.exog}

    @classmethod
    def from_json(cls, d: dict) -> Spec:
        """A spec read back from the state file."""
        return cls(tuple(d["order"]), tuple(d["seasonal_order"]), bool(d["exog"]))  # type: ignore[arg-type]


@dataclass
class Fit:
    """Estimated parameters (sigma2 last), the AIC and whether the optimiser converged."""

    spec: Spec
    params: np.ndarray
    aic: float
    converged: bool
    iterations: int
    named: dict[str, float]  # parameters by name, to warm-start a neighbouring order


def has_variation(x: np.ndarray | None) -> bool:
    """Whether a regressor varies at all (a constant column is not identifiable after differencing)."""
    return x is not None and x.size > 1 and bool(np.nanmax(x) != np.nanmin(x))


def _exog(x: np.ndarray | None, spec: Spec) -> np.ndarray | None:
    return np.asarray(x, float)[:, None] if spec.exog else None


def grid(m: int) -> list[Spec]:
    """The specs selection tries for season `m` (promotion decided by the data)."""
    return [Spec(o, (0, 1, 1, m), False) for o in ORDERS]


def fit(z: np.ndarray, x: np.ndarray | None, spec: Spec,
        start_params: np.ndarray | dict[str, float] | None = None) -> Fit:
    """Estimate `spec` on log units `z` (NaN = unknown), warm-started from `start_params` when they fit.

    `start_params` is either last night's vector (used when its length matches) or values by
    parameter name from a nested model (absent terms start at zero).
    """
    model = SARIMAX(z, exog=_exog(x, spec), order=spec.order, seasonal_order=spec.seasonal_order,
                    simple_differencing=True, concentrate_scale=True)
    start = None
    if isinstance(start_params, dict):
        start = np.array([start_params.get(name, 0.0) for name in model.param_names], float)
    elif start_params is not None and len(start_params) == len(model.param_names) + 1:
        start = np.asarray(start_params[:-1], float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is read from mle_retvals, not from warnings
        # Only the parameters, AIC and scale are read: no covariance (a fifth of a fit) and no smoothing
        res = model.fit(start_params=start, disp=False, method="lbfgs", cov_type="none", low_memory=True,
                        maxiter=MAXITER_WARM if start is not None else MAXITER_COLD)
    params = np.r_[np.asarray(res.params, float), float(res.scale)]
    converged = bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True
    if not np.all(np.isfinite(params)) or not np.isfinite(res.aic):
        raise FitError("the fit produced non-finite parameters")
    return Fit(spec, params, float(res.aic), converged, int((res.mle_retvals or {}).get("iterations", 0)),
               dict(zip(model.param_names, params[:-1], strict=True)))


def select(z: np.ndarray, x: np.ndarray | None, specs: list[Spec]) -> tuple[Fit, list[dict]]:
    """The spec with the lowest AIC on the recent window, and every candidate's AIC."""
    z_sel = z[-SELECT_PERIODS:]
    x_sel = None if x is None else x[-SELECT_PERIODS:]
    exog = has_variation(x_sel)
    best: Fit | None = None
    tried: list[dict] = []
    previous: dict[str, float] | None = None
    for spec in specs:
        spec = Spec(spec.order, spec.seasonal_order, exog)
        try:
            # The grid grows one term at a time: start each member from its smaller neighbour.
            f = fit(z_sel, x_sel, spec, previous)
            previous = f.named if f.converged else previous
        except Exception as e:  # one bad candidate should not sink the others
            tried.append({"spec": spec.label, "aic": None, "error": str(e)[:200]})
            continue
        tried.append({"spec": spec.label, "aic": f.aic, "converged": f.converged})
        if f.converged and (best is None or f.aic < best.aic):
            best = f
    if best is None:
        raise FitError("no order in the grid converged during selection")
    return best, tried


def forecast(z: np.ndarray, x: np.ndarray | None, future_x: np.ndarray | None, fitted: Fit,
             horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the next `horizon` log units, from fixed parameters."""
    spec = fitted.spec
    z_tail = z[-FILTER_PERIODS:]
    x_tail = None if x is None else x[-FILTER_PERIODS:]
    model = SARIMAX(z_tail, exog=_exog(x_tail, spec), order=spec.order, seasonal_order=spec.seasonal_order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.filter(fitted.params, cov_type="none")
        fx = None
        if spec.exog:
            fx = np.zeros(horizon) if future_x is None else np.asarray(future_x, float)
        pred = res.get_forecast(horizon, exog=_exog(fx, spec))
    return (np.asarray(pred.predicted_mean, float),
            np.sqrt(np.clip(np.asarray(pred.var_pred_mean, float), 0, None)))
