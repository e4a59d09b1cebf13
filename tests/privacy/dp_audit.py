"""An empirical neighbour audit: does a release tell D from D plus one unit more than its claimed ε allows?

Both neighbours go through the layer's own `measure` (declared cells, the contribution-bounding SQL,
the query plan), so a bug anywhere before the noise shows up here. Then each neighbour's true query
vectors get noise at the planned scales, `n` times. The test statistic is the privacy loss that the
claimed noise implies, LLR(x) = Σ_queries Σ_cells (|x − b| − |x − a|) / scale (a: with the unit,
b: without): for a correct release it never exceeds ε, so every event {LLR ≥ t} has
P_a / P_b ≤ e^ε. The observed ε̂ is the largest Clopper–Pearson lower bound of log(P_a / P_b) (and of
the mirrored events) over thresholds fixed before sampling, Bonferroni-corrected. A release whose
cells differ between the neighbours is distinguishable outright (ε̂ = ∞).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from nightshift.privacy import layer
from nightshift.privacy.noise import add_noise
from nightshift.privacy.spec import Release

Sampler = Callable[[np.ndarray, float], np.ndarray]


@dataclass(frozen=True)
class Verdict:
    """The audit's answer: the ε the release claims, a lower bound on the ε it shows, and why."""

    claimed: float
    observed: float
    reason: str

    @property
    def passed(self) -> bool:
        return self.observed <= self.claimed


def numpy_sampler(seed: int) -> Sampler:
    """Discrete Laplace draws as a difference of two geometrics: the distribution OpenDP samples (the
    chi-square test in test_privacy_noise.py checks OpenDP against it), ~1000x faster, seeded so the
    fast audits are deterministic. Never used by releases."""
    rng = np.random.default_rng(seed)

    def draw(truth: np.ndarray, scale: float) -> np.ndarray:
        p = -math.expm1(-1.0 / scale)
        return truth + rng.geometric(p, truth.shape) - rng.geometric(p, truth.shape)

    return draw


def opendp_sampler(truth: np.ndarray, scale: float) -> np.ndarray:
    """The releases' own noise (OpenDP's discrete Laplace); slow, for the slow audit."""
    return np.array(add_noise(truth.ravel().tolist(), scale)).reshape(truth.shape)


def _cp_lower(k: int, n: int, alpha: float) -> float:
    return 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))


def _cp_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))


def epsilon_lower_bound(llr_a: np.ndarray, llr_b: np.ndarray, thresholds: np.ndarray, alpha: float) -> float:
    """The largest CP lower bound on ε over {LLR >= t} (a over b) and {LLR <= -t} (b over a)."""
    each = alpha / (2 * 2 * len(thresholds))
    best = 0.0
    for t in thresholds:
        for x, y in (((llr_a >= t), (llr_b >= t)), ((llr_b <= -t), (llr_a <= -t))):
            hi, lo = _cp_lower(int(x.sum()), x.size, each), _cp_upper(int(y.sum()), y.size, each)
            if hi > 0:
                best = max(best, math.log(hi / lo))
    return best


def audit(cur: Any, declare: Callable[[pl.DataFrame], Release], without: pl.DataFrame, with_unit: pl.DataFrame,
          *, sampler: Sampler, n: int = 20_000, alpha: float = 1e-4) -> Verdict:
    """Audit the release `declare(frame)` on the neighbours `without` and `with_unit` (one unit more)."""
    rel_a, rel_b = declare(with_unit), declare(without)
    a, b = (layer.measure(cur, r, f, salt="audit") for r, f in ((rel_a, with_unit), (rel_b, without)))
    claimed = float(rel_a.epsilon)
    if not a.grid.equals(b.grid):
        return Verdict(claimed, math.inf, "the released cells differ between the neighbours (a data-derived key)")
    llr_a, llr_b = np.zeros(n), np.zeros(n)
    reach = 0.0  # the largest LLR the claimed noise allows for these truths
    for key, q in a.queries.items():
        ta, tb = np.array(a.truth.vectors[key]), np.array(b.truth.vectors[key])
        for truth, llr in ((ta, llr_a), (tb, llr_b)):
            x = sampler(np.tile(truth, (n, 1)), q.scale)
            llr += (np.abs(x - tb) - np.abs(x - ta)).sum(axis=1) / q.scale
        reach += np.abs(ta - tb).sum() / q.scale
    if reach == 0:
        return Verdict(claimed, 0.0, "the unit changed no true answer")
    observed = epsilon_lower_bound(llr_a, llr_b, np.linspace(0.0, reach, 25)[1:], alpha)
    return Verdict(claimed, observed, f"largest possible loss under the claimed noise: {reach:.3g}")
