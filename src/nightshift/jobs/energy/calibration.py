"""The forecast interval: rolling split-conformal per horizon block, recalibrated on recent errors.

A forecast's error depends on how far ahead it is and on the hour of day it lands on (evening peaks
miss by more than nights), so residuals are pooled per block: (days ahead, target hour of day),
7 × 24 blocks. Errors also come in spells (a cold snap, a holiday week: on the demo the holdout's
weekly error moved by a factor of three), so each residual is measured relative to the error level
when its forecast was made (the mean absolute error of the hours observed in the `LEVEL_DAYS`
before), and the interval is the conformal quantile of those relative residuals over the last
`RECENT_DAYS` of observed forecast hours, times tonight's error level. Only hours already observed
count: what a user of tonight's forecast could have checked.

The holdout's coverage is measured the same way, origin by origin: each holdout forecast gets the
interval calibrated on forecast hours observed before it was made (validation forecasts, then earlier
holdout forecasts), so the coverage the page reports is out of sample, whichever model is published.
On the small demo's holdout (2026-11-28) this covered 90.1% for the network, 91.1% for ridge and 89.9%
for seasonal naive, and 89.8% for the one network trained since; the plain quantile of the last four
weeks' residuals covered 77.5% to 85.6%.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nightshift.jobs.energy.dataset import HORIZON, Windows

COVERAGE = 0.9  # nominal coverage of the forecast interval
RECENT_DAYS = 42  # observed forecast hours this recent calibrate the shape of the interval (per block)
LEVEL_DAYS = 3  # the error level a residual is measured against: the last days' mean absolute error
BLOCKS = 7 * 24  # (days ahead, target hour of day)


def blocks(origin: np.ndarray, first_hour_of_day: int) -> np.ndarray:
    """Block of each (window, horizon hour): days ahead × 24 + the target's hour of day (N × H)."""
    k = np.arange(HORIZON)[None, :]
    hod = (first_hour_of_day + origin[:, None] + k) % 24
    return (k // 24) * 24 + hod


def halfwidths(resid: np.ndarray, block: np.ndarray, coverage: float = COVERAGE) -> np.ndarray:
    """Conformal half-width per block (BLOCKS,): the round((n + 1) c)-th smallest absolute residual.

    A new forecast's error falls below the r-th of n exchangeable residuals with probability
    r / (n + 1): the rank nearest to nominal coverage is taken (ceil would guarantee at least `c`,
    over-covering by up to 1 / (n + 1) in every block). A block with no residual takes the largest
    half-width of the others (no data: be wide).
    """
    ok = np.isfinite(resid)
    r, b = np.abs(resid[ok]), block[ok]
    # Sorted by block, then residual: a quicksort of the residuals, then a stable (radix) sort of
    # the small block numbers; np.lexsort does the same in about fifteen times the time.
    by_r = np.argsort(r)
    order = by_r[np.argsort(b[by_r].astype(np.int16), kind="stable")]
    r, b = r[order], b[order]
    start = np.searchsorted(b, np.arange(BLOCKS))
    n = np.bincount(b, minlength=BLOCKS)
    rank = np.clip(np.round((n + 1) * coverage).astype(int), 1, np.maximum(n, 1)) - 1
    q = np.where(n > 0, r[np.clip(start + rank, 0, max(len(r) - 1, 0))] if len(r) else np.nan, np.nan)
    return np.where(np.isnan(q), np.nanmax(q) if np.isfinite(q).any() else np.inf, q)


@dataclass
class Calibration:
    """The residuals (scaled) of a model's forecasts, with their origins and blocks."""

    resid: np.ndarray  # (N, H) truth - forecast, scaled; NaN where the truth is unknown
    origin: np.ndarray  # (N,)
    block: np.ndarray  # (N, H)

    def level(self, at: np.ndarray) -> np.ndarray:
        """The recent error level at each hour in `at`: mean |residual| of the forecast hours observed
        in the `LEVEL_DAYS` before it (NaN when none were)."""
        target = (self.origin[:, None] + np.arange(HORIZON)[None, :]).ravel()
        r = np.abs(self.resid).ravel()
        ok = np.isfinite(r)
        t0, n = int(target.min()), int(target.max() - target.min()) + 1
        total = np.concatenate([[0.0], np.cumsum(np.bincount(target[ok] - t0, weights=r[ok], minlength=n))])
        count = np.concatenate([[0], np.cumsum(np.bincount(target[ok] - t0, minlength=n))])
        hi, lo = np.clip(at - t0, 0, n), np.clip(at - LEVEL_DAYS * 24 - t0, 0, n)
        seen = count[hi] - count[lo]
        return np.where(seen > 0, (total[hi] - total[lo]) / np.maximum(seen, 1), np.nan)

    # What follows is the same for every `before`: computed once for the few dozen holdout origins.
    @cached_property
    def _target(self) -> np.ndarray:
        """The hour each residual's forecast is for (N × H)."""
        return self.origin[:, None] + np.arange(HORIZON)[None, :]

    @cached_property
    def _then(self) -> np.ndarray:
        """The error level when each forecast was made (N × 1; NaN where none was observed)."""
        return self.level(self.origin)[:, None]

    @cached_property
    def _relative(self) -> np.ndarray:
        """Each residual over the error level when its forecast was made (N × H)."""
        return self.resid / self._then

    def halfwidths(self, before: int, coverage: float = COVERAGE, recent_days: int = RECENT_DAYS) -> np.ndarray:
        """Half-widths for a forecast made at hour `before`: conformal quantiles of the residuals, each
        relative to the error level when its forecast was made, of the forecast hours observed in the last
        `recent_days`, times the error level now."""
        target, known = self._target, np.isfinite(self._then)
        cells = (target < before) & (target >= before - recent_days * 24) & known
        if not cells.any():  # nothing observed in the window: everything observed before
            cells = (target < before) & known
        now = self.level(np.array([before]))[0]
        return halfwidths(self._relative[cells], self.block[cells], coverage) * now


def calibration(windows: list[Windows], preds: list[np.ndarray], first_hour_of_day: int) -> Calibration:
    """Pool the residuals of several window sets (validation, holdout) of one model."""
    resid = np.concatenate([w.target.astype(np.float64) - p for w, p in zip(windows, preds, strict=True)])
    origin = np.concatenate([w.origin for w in windows])
    return Calibration(resid, origin, blocks(origin, first_hour_of_day))


def holdout_halfwidths(cal: Calibration, hold: Windows, first_hour_of_day: int,
                       coverage: float = COVERAGE) -> np.ndarray:
    """Each holdout forecast's half-widths (N × H, scaled), calibrated only on what was finished before it."""
    out = np.empty(hold.target.shape)
    own = blocks(hold.origin, first_hour_of_day)
    for o in np.unique(hold.origin):  # one calibration per origin (a few dozen)
        rows = hold.origin == o
        out[rows] = cal.halfwidths(int(o), coverage)[own[rows]]
    return out


def coverage(pred: np.ndarray, half: np.ndarray, w: Windows) -> float:
    """Share of known truths inside forecast ± half-width."""
    t = w.target.astype(np.float64)
    ok = np.isfinite(t)
    return float(np.mean((np.abs(t - pred) <= half)[ok]))


def sampling_error(n_days: int, nominal: float = COVERAGE) -> float:
    """Binomial s.e. of a coverage measured on `n_days` target days (the days, not the hours, are
    independent: the hours of one day share its weather and its holiday)."""
    return float(np.sqrt(nominal * (1 - nominal) / max(n_days, 1)))
