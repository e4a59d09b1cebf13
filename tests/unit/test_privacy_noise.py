"""The noise: scale = sensitivity/ε (recomputed here), the sampler's distribution, its margin of error.

The empirical neighbour audit, on every release shape and against planted bugs, is in
tests/privacy/test_dp_audit.py. Data are seeded; the noise never is.
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
