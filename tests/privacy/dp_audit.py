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

from nightshift.privacy import keys, layer
from nightshift.privacy.keys import KeySelection
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


def epsilon_lower_bound(llr_a: np.ndarray, llr_b: np.ndarray, thresholds: np.ndarray, alpha: float,
                        delta: float = 0.0) -> float:
    """The largest CP lower bound on ε over {LLR >= t} (a over b) and {LLR <= -t} (b over a).

    (ε, δ)-DP allows P_a(E) <= e^ε P_b(E) + δ, so δ is taken off the larger side first. A threshold
    of +inf is the event "an output impossible under the other neighbour" (a key named from one unit)."""
    each = alpha / (2 * 2 * len(thresholds))
    best = 0.0
    for t in thresholds:
        for x, y in (((llr_a >= t), (llr_b >= t)), ((llr_b <= -t), (llr_a <= -t))):
            hi, lo = _cp_lower(int(x.sum()), x.size, each) - delta, _cp_upper(int(y.sum()), y.size, each)
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


# -- key selection: thresholded noisy counts, (ε, δ)-DP ----------------------------------------------
Selector = Callable[[KeySelection, dict[str, int], int, int], list[dict[str, int]]]


def numpy_selector(seed: int) -> Selector:
    """`n` draws of the thresholded Laplace the layer uses (`keys.select`): candidates with a count above 0,
    noisy count kept when it reaches the threshold. Fast and seeded; the slow audit uses `opendp_selector`."""
    noise = numpy_sampler(seed)

    def draw(selection: KeySelection, counts: dict[str, int], at: int, n: int) -> list[dict[str, int]]:
        names = [k for k, v in counts.items() if v > 0]
        x = noise(np.tile(np.array([counts[k] for k in names], dtype=np.int64), (n, 1)), selection.scale)
        return [{k: int(v) for k, v, keep in zip(names, row, row >= at, strict=True) if keep} for row in x]

    return draw


def opendp_selector(selection: KeySelection, counts: dict[str, int], at: int, n: int) -> list[dict[str, int]]:
    """The layer's own selection (`keys.select`, OpenDP's `make_laplace_threshold`), `n` times; slow."""
    return [keys.select(selection, counts, at) for _ in range(n)]


def _log_cdf_below(m: np.ndarray, scale: float) -> np.ndarray:
    """log P(Z < m) for Z ~ discrete Laplace(scale), elementwise (P(Z <= k), k = m - 1)."""
    q, k = math.exp(-1.0 / scale), m - 1
    low = k / scale - math.log1p(q)  # k < 0: q^-k / (1 + q)
    high = np.log1p(-np.exp(-(np.maximum(k, 0) + 1) / scale) / (1 + q))  # k >= 0: 1 - q^(k+1) / (1 + q)
    return np.where(k < 0, low, high)


def _log_likelihood(outs: list[dict[str, int]], names: list[str], truth: np.ndarray, at: int,
                    scale: float) -> np.ndarray:
    """log P(output | truth) per draw, up to a constant shared by both neighbours (-inf: impossible)."""
    kept = np.array([[k in o for k in names] for o in outs])
    x = np.array([[o.get(k, 0) for k in names] for o in outs], dtype=float)
    candidate = truth > 0
    per_key = np.where(kept, -np.abs(x - truth) / scale, _log_cdf_below(at - truth, scale))
    per_key = np.where(candidate, per_key, np.where(kept, -np.inf, 0.0))  # a non-candidate is never named
    return per_key.sum(axis=1)


def audit_selection(cur: Any, selection: KeySelection, without: pl.DataFrame, with_unit: pl.DataFrame, *,
                    selector: Selector, n: int = 20_000, alpha: float = 1e-4) -> Verdict:
    """Audit a DP key selection against its declared (ε, δ) on the neighbours `without` and `with_unit`.

    Both go through the layer's own `candidate_counts` (the bounding SQL) and `keys.threshold`; the
    outputs are the kept keys with their noisy counts. The statistic is the privacy loss the claimed
    mechanism implies (kept: the Laplace term; dropped: the log-probability of staying under the
    threshold; a key named although one neighbour has no such candidate: ±inf)."""
    a, _ = layer.candidate_counts(cur, selection, with_unit, salt="audit")
    b, _ = layer.candidate_counts(cur, selection, without, salt="audit")
    at, scale = keys.threshold(selection), selection.scale
    names = sorted(set(a) | set(b))
    ta, tb = (np.array([c.get(k, 0) for k in names], dtype=float) for c in (a, b))
    llr = []
    for counts in (a, b):
        outs = selector(selection, counts, at, n)
        llr.append(_log_likelihood(outs, names, ta, at, scale) - _log_likelihood(outs, names, tb, at, scale))
    both = (ta > 0) & (tb > 0)
    reach = float(np.abs(ta - tb)[both].sum() / scale)
    thresholds = np.append(np.linspace(0.0, reach, 25)[1:] if reach > 0 else [], np.inf)
    observed = epsilon_lower_bound(llr[0], llr[1], thresholds, alpha, delta=selection.delta)
    return Verdict(float(selection.epsilon), observed,
                   f"threshold {at}, δ {selection.delta:g}; largest finite loss under the claimed noise: {reach:.3g}")
