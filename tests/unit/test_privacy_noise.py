"""The noise: scale = sensitivity/ε (recomputed here), the sampler's distribution, and a neighbour audit.

The audit draws many noisy answers for two neighbouring datasets (one person at the contribution limit
and well past it) through the layer's own bounding SQL and noise, and checks that a Clopper–Pearson
lower bound on the observed privacy loss stays below the claimed ε — and that the same audit catches
a variant without contribution bounding. Data are seeded; the noise never is.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import stats

from nightshift.privacy import Count, PrivacyLayer, Release, Sum
from nightshift.privacy import noise as noise_mod
from nightshift.privacy.bounding import bound_and_aggregate, key_grid, prepare
from nightshift.privacy.noise import add_noise, margin_of_error, privacy_loss
from nightshift.privacy.spec import plan, sum_key
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)


@pytest.fixture
def wh(tmp_path):
    with Warehouse(tmp_path / "data" / "warehouse.duckdb") as w:
        yield w


def _dl_pmf(z: np.ndarray, s: float) -> np.ndarray:
    # Written out here rather than imported, so the test does not check the code against itself.
    q = math.exp(-1.0 / s)
    return (1 - q) / (1 + q) * q ** np.abs(z)


def test_scale_is_sensitivity_over_epsilon_for_counts_and_sums(wh, tmp_path, monkeypatch):
    seen: list[float] = []
    real = noise_mod.measurements.make_laplace

    def spy(domain, metric, scale, *a, **kw):
        seen.append(scale)
        return real(domain, metric, scale, *a, **kw)

    monkeypatch.setattr(noise_mod.measurements, "make_laplace", spy)
    settings = Settings(home=tmp_path, privacy_budgets={"users": Budget(epsilon=10)})
    layer = PrivacyLayer(wh, settings, "behavior", RUN)
    frame = pl.DataFrame({"user_id": [1, 1, 2], "channel": ["a", "a", "b"], "cents": [10**9, -(10**9), 3]})

    counts = Release("c", "users", "user_id", keys={"channel": ["a", "b"]}, measures=[Count("n")],
                     max_rows_per_unit=3, epsilon=0.6)
    layer.release(counts, frame)
    assert seen == [pytest.approx(3 / 0.6)]  # one query: K / ε

    seen.clear()
    mixed = Release("m", "users", "user_id", keys={"channel": ["a", "b"]},
                    measures=[Count("n"), Sum("rev", "cents", -500, 2_000)], max_rows_per_unit=2, epsilon=1.0)
    res = layer.release(mixed, frame)
    eps_each = 1.0 / 2  # two noisy queries share ε equally
    assert sorted(seen) == [pytest.approx(2 / eps_each), pytest.approx(2 * 2_000 / eps_each)]
    # Sensitivity comes from the declaration: data with values far outside the bounds change nothing.
    assert {q["key"]: q["sensitivity"] for q in res.queries} == {"rows": 2, sum_key(mixed.measures[1]): 4_000}
    # OpenDP's own privacy map agrees: each query's mechanism at that scale costs its ε share.
    for q in res.queries:
        assert privacy_loss(q["scale"], q["sensitivity"]) == pytest.approx(q["epsilon"], rel=1e-9)
    assert sum(q["epsilon"] for q in res.queries) == pytest.approx(mixed.epsilon)


def test_sum_in_non_integer_units_is_noised_on_integers():
    rel = Release("kwh", "households", "meter_id", measures=[Sum("kwh", "kwh", 0.0, 5.0, resolution=0.01)],
                  max_rows_per_unit=24, epsilon=0.5)
    (q,) = plan(rel).values()
    assert q.sensitivity == 24 * 500 and q.scale == pytest.approx(24 * 500 / 0.5)


def test_noise_follows_the_discrete_laplace_chi_square():
    s, n = 3.0, 20_000
    draws = np.array(add_noise([0] * n, s))
    assert draws.dtype.kind == "i"
    edge = 12  # |z| <= 12 one bin each (expected >= 5 per bin), both tails lumped
    z = np.arange(-edge, edge + 1)

    def chi2_p(scale: float) -> float:
        p = _dl_pmf(z, scale)
        tail = (1 - p.sum()) / 2
        expected = n * np.concatenate([[tail], p, [tail]])
        observed = np.array([(draws < -edge).sum(), *[(draws == v).sum() for v in z], (draws > edge).sum()])
        return stats.chisquare(observed, expected).pvalue

    assert chi2_p(s) > 1e-3
    assert chi2_p(s * 1.3) < 1e-6  # the test has power: a 30% wrong scale is rejected


def test_margin_of_error_covers_95_percent():
    for s in (0.7, 3.0, 40.0, 15_000.0):
        a = margin_of_error(s)
        q = math.exp(-1 / s)
        tail = [2 * q ** (k + 1) / (1 + q) for k in (a - 1, a)]  # P(|Z| > a - 1), P(|Z| > a)
        assert tail[1] <= 0.05 and (a == 0 or tail[0] > 0.05)
    draws = np.abs(np.array(add_noise([0] * 10_000, 5.0)))
    assert (draws <= margin_of_error(5.0)).mean() > 0.94


def _cp_lower(k: int, n: int, alpha: float) -> float:
    return 0.0 if k == 0 else stats.beta.ppf(alpha, k, n - k + 1)


def _cp_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k == n else stats.beta.ppf(1 - alpha, k + 1, n - k)


def audit_lower_bound(a: np.ndarray, b: np.ndarray, thresholds: np.ndarray, alpha: float = 1e-3) -> float:
    """The largest Clopper–Pearson lower bound on ε over events {X >= t}, both directions, Bonferroni."""
    each = alpha / (2 * 2 * len(thresholds))
    best = 0.0
    for t in thresholds:
        for x, y in ((a, b), (b, a)):
            hi = _cp_lower(int((x >= t).sum()), x.size, each)
            lo = _cp_upper(int((y >= t).sum()), y.size, each)
            if hi > 0:
                best = max(best, math.log(hi / lo))
    return best


def _neighbours(extra_rows: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(11)  # the data only
    base = pl.DataFrame({"user_id": rng.integers(0, 40, 120), "channel": "search", "cents": rng.integers(0, 100, 120)})
    person = pl.DataFrame({"user_id": [10_000] * extra_rows, "channel": ["search"] * extra_rows,
                           "cents": [100] * extra_rows})
    return pl.concat([base, person]), base


def _audit(wh, release: Release, query: str, k_bound: int | None, n: int) -> float:
    with_person, without = _neighbours(extra_rows=20)
    grid = key_grid(release)
    scale = plan(release)[query].scale  # the noise the release claims, whatever the bounding did
    answers, truths = [], []
    for frame in (with_person, without):
        truth = bound_and_aggregate(wh.cursor, release, prepare(release, frame, grid), grid.height, k=k_bound)
        truths.append(truth.vectors[query][0])
        answers.append(np.array(add_noise([truths[-1]] * n, scale)))
    centre = truths[1]  # thresholds fixed before looking at the noisy answers
    thresholds = centre + scale * np.arange(-4, 6, 0.5)
    return audit_lower_bound(answers[0], answers[1], thresholds)


@pytest.mark.parametrize("kind", ["count", "sum"])
def test_neighbour_audit_passes_with_bounding_and_fails_without(wh, kind):
    eps, k = 1.0, 2
    measure = Count("n") if kind == "count" else Sum("rev", "cents", 0, 100)
    rel = Release("audit", "users", "user_id", keys={"channel": ["search"]}, measures=[measure],
                  max_rows_per_unit=k, epsilon=eps)
    query = "rows" if kind == "count" else sum_key(measure)
    observed = _audit(wh, rel, query, k_bound=None, n=10_000)
    assert observed < eps, f"observed ε lower bound {observed:.3f} exceeds the claimed {eps}"
    broken = _audit(wh, rel, query, k_bound=10**9, n=10_000)  # same noise, no contribution bound
    assert broken > eps, f"the audit failed to catch unbounded contributions ({broken:.3f})"


@pytest.mark.slow
@pytest.mark.parametrize("eps", [0.25, 1.0, 3.0])
def test_neighbour_audit_long(wh, eps):
    rel = Release("audit", "users", "user_id", keys={"channel": ["search"]}, measures=[Count("n")],
                  max_rows_per_unit=3, epsilon=eps)
    observed = _audit(wh, rel, "rows", k_bound=None, n=200_000)
    assert 0.5 * eps < observed < eps  # tight: the discrete Laplace attains e^ε on its tails
