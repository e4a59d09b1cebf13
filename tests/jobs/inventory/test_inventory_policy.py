"""The inventory maths: quantile function, fill-rate reorder point, EOQ, pinball, and the replay."""

from __future__ import annotations

import numpy as np
from scipy import stats

from nightshift.jobs.inventory import demand, policy, simulation

ALPHAS = demand.QUANTILES


def _normal_quantiles(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return mean[:, None] + sd[:, None] * stats.norm.ppf(ALPHAS)[None, :]


def test_quantile_function_is_monotone_and_hits_the_knots() -> None:
    q = _normal_quantiles(np.array([100.0, 20.0]), np.array([15.0, 5.0]))
    v = policy.quantile_function(q, ALPHAS)
    assert (np.diff(v, axis=1) >= 0).all()
    u = (np.arange(policy.GRID) + 0.5) / policy.GRID
    for i, a in enumerate(ALPHAS):
        j = np.argmin(np.abs(u - a))
        assert np.allclose(v[:, j], q[:, i], rtol=0.02)
    crossed = q[:, ::-1]  # crossing input is sorted, not trusted
    assert np.allclose(policy.quantile_function(crossed, ALPHAS), v)


def test_expected_shortage_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    v = np.sort(rng.gamma(3, 10, size=(3, policy.GRID)), axis=1)
    got = policy.expected_shortage(v)
    for j in (0, 50, 200, 399):
        want = np.maximum(v - v[:, [j]], 0).mean(axis=1)
        assert np.allclose(got[:, j], want)


def test_fill_rate_reorder_point_meets_the_shortage_budget() -> None:
    mean, sd = np.array([100.0, 100.0, 100.0]), np.array([20.0, 20.0, 20.0])
    v = policy.quantile_function(_normal_quantiles(mean, sd), ALPHAS)
    qty = np.array([50.0, 200.0, 200.0])
    s95 = policy.fill_rate_reorder_point(v, qty, 0.95)
    s99 = policy.fill_rate_reorder_point(v, qty, 0.99)
    # Normal loss function: E[(X - s)+] = sd * (phi(z) - z (1 - Phi(z)))
    z = (s95 - mean) / sd
    loss = sd * (stats.norm.pdf(z) - z * stats.norm.sf(z))
    assert np.allclose(loss, 0.05 * qty, rtol=0.15)  # piecewise-linear between the quantile knots
    assert (s99 > s95).all() and s95[0] > s95[1]  # higher target or smaller orders -> higher s


def test_eoq_order_rule_and_cover() -> None:
    q = policy.eoq(np.array([10.0]), np.array([5000.0]), np.array([2000.0]), np.array([0.25]))
    assert q[0] == np.ceil(np.sqrt(2 * 3650 * 5000 / 500))
    assert policy.order_quantity(np.array([5.0, 11.0, 10.0]), np.array([10.0, 10.0, 10.0]),
                             np.array([30.0, 30.0, 30.0])).tolist() == [25.0, 0.0, 20.0]
    assert policy.days_of_cover(np.array([30.0, 5.0]), np.array([10.0, 0.0])).tolist() == [3.0, np.inf]


def test_stockout_risk_values() -> None:
    v = policy.quantile_function(_normal_quantiles(np.array([100.0, 100.0, 100.0]), np.array([10.0, 10.0, 10.0])),
                             ALPHAS)
    risk = policy.stockout_risk(v, np.array([100.0, 116.45, 500.0]))
    assert abs(risk[0] - 0.5) < 0.02 and abs(risk[1] - 0.05) < 0.02 and risk[2] == 0


def test_pinball_and_coverage() -> None:
    y = np.array([10.0, 20.0])
    pred = np.array([[12.0, 12.0, 12.0, 12.0], [12.0, 12.0, 12.0, 12.0]])
    loss = demand.pinball(y, pred)
    assert np.allclose(loss, [(0.5 * 2 + 0.5 * 8) / 2, (0.1 * 2 + 0.9 * 8) / 2, (0.05 * 2 + 0.95 * 8) / 2,
                              (0.01 * 2 + 0.99 * 8) / 2])
    assert demand.coverage(y, pred).tolist() == [0.5] * 4


def test_replay_timing_by_hand() -> None:
    demand = np.array([[5.0, 5.0, 5.0, 5.0, 5.0, 5.0]])
    s = np.full((1, 6), 10.0)
    big_s = np.full((1, 6), 20.0)
    r = simulation.simulate(demand, np.array([2]), np.array([12.0]), s, big_s, np.array([100.0]), np.array([0.365]),
                      np.array([50.0]))
    # day 0: 12-5=7 <= 10 -> order 13, arrives day 2; day 1: 2, pos 15 no order; day 2: 2+13-5=10 -> order 10 ...
    assert r.on_hand[0].tolist() == [7.0, 2.0, 10.0, 5.0, 10.0, 5.0]
    assert r.orders[0].tolist() == [13.0, 0.0, 10.0, 0.0, 10.0, 0.0]
    assert r.lost.sum() == 0 and r.summary()["fill_rate"] == 1.0
    assert r.counted[0].tolist() == [False, False, True, True, True, True]
    assert np.isclose(r.holding_cost[0, 0], 7 * 100 * 0.365 / 365)
    short = simulation.simulate(np.array([[5.0, 5.0, 5.0]]), np.array([0]), np.array([3.0]), np.full((1, 3), -1.0),
                          np.full((1, 3), 0.0), np.array([1.0]), np.array([0.1]), np.array([1.0]))
    assert short.lost[0].tolist() == [2.0, 5.0, 5.0] and short.summary()["stockout_events"] == 1


def test_replay_is_the_same_series_by_series_and_all_at_once() -> None:
    rng = np.random.default_rng(1)
    n, days = 6, 40
    demand = rng.poisson(8, size=(n, days)).astype(float)
    lead = rng.integers(1, 6, size=n)
    s = rng.uniform(10, 40, size=(n, days)).round()
    up = s + 30
    args = (np.full(n, 100.0), np.full(n, 0.2), np.full(n, 500.0))
    together = simulation.simulate(demand, lead, np.full(n, 20.0), s, up, *args)
    for i in range(n):
        one = simulation.simulate(demand[i:i + 1], lead[i:i + 1], np.array([20.0]), s[i:i + 1], up[i:i + 1],
                            *(a[i:i + 1] for a in args))
        assert np.array_equal(one.on_hand[0], together.on_hand[i])


def test_naive_levels_use_last_month() -> None:
    hist = np.concatenate([np.full((1, 30), 4.0), np.full((1, 5), 10.0)], axis=1)
    lv = simulation.naive_levels(hist, np.array([3]))
    assert lv[0, 0] == np.ceil((29 * 4 + 10) / 30 * 4) and lv.shape == (1, 5)
