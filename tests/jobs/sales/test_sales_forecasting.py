"""Forecasting pieces: measures, baselines, edge series never crash, SARIMA learns, the menu chooses on
older origins only, fan-out limits BLAS."""

from __future__ import annotations

import numpy as np
import pytest

from nightshift.jobs.sales import menu, sarima
from nightshift.jobs.sales.baselines import mean_baseline, seasonal_naive
from nightshift.jobs.sales.metrics import coverage, mase, mase_scale, smape
from nightshift.jobs.sales.parallel import ProcessMapper, SerialMapper, blas_threads
from nightshift.jobs.sales.task import SeriesTask, run_task

H = 14
WEEKLY = sarima.Spec((0, 1, 1), (0, 1, 1, 7), True)


def test_measures_on_hand_computed_values():
    y = np.array([1, 2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7, 8, 9], float)  # seasonal diffs all 2
    assert mase_scale(y, 7) == pytest.approx(2.0)
    assert mase([10, 10], [8, 12], 2.0) == pytest.approx(1.0)
    assert np.isnan(mase([1], [1], float("nan")))
    assert smape([0, 100], [0, 50]) == pytest.approx(100 * (0 + 2 * 50 / 150) / 2)
    assert coverage([1, 5, 9], np.array([0, 6, 0]), np.array([2, 7, 10])) == pytest.approx(2 / 3)
    assert np.isnan(mase_scale(np.zeros(20), 7))  # no scale for a flat series: MASE is undefined, not 0


def test_seasonal_naive_repeats_last_week_and_widens_per_season():
    y = np.tile(np.arange(7, dtype=float), 6) + np.random.default_rng(0).normal(0, 0.5, 42)
    f = seasonal_naive(y, 21, 7)
    np.testing.assert_allclose(f.mean[:7], y[-7:])
    np.testing.assert_allclose(f.mean[7:14], y[-7:])
    width = f.upper_95 - f.lower_95
    assert width[20] > width[10] > width[0] > 0
    assert (f.lower_95 >= 0).all() and (f.lower_80 >= f.lower_95).all() and (f.upper_80 <= f.upper_95).all()
    m = mean_baseline(y, 5, 28)
    assert m.mean[0] == pytest.approx(y[-28:].mean())


def _task(y, promo=None, horizon=H, **kw) -> SeriesTask:
    y = np.asarray(y, float)
    promo = np.zeros(y.size) if promo is None else promo
    return SeriesTask(key="S/P", y=y, promo=promo, future_promo=np.zeros(horizon), horizon=horizon,
                      fit_periods=365, **kw)


def _weekly(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    promo = (rng.random(n) < 0.08).astype(float)
    mu = 30 * (1 + 0.4 * np.sin(2 * np.pi * t / 7)) * np.where(promo > 0, 1.6, 1.0)
    return rng.poisson(mu).astype(float), promo


@pytest.mark.parametrize(
    "y, kind, reason",
    [
        (np.zeros(120), "baseline", "no sales"),
        (np.array([4.0]), "baseline", "too short"),
        (np.full(120, 9.0), "baseline", "constant"),
        (np.array([], float), "baseline", "too short"),
    ],
    ids=["all-zeros", "one-observation", "constant", "empty"],
)
def test_edge_series_get_a_baseline_with_a_reason(y, kind, reason):
    r = run_task(_task(y, origins=(H,)))
    assert r.kind == kind and reason in r.reason
    for a in (r.forecast.mean, r.forecast.lower_80, r.forecast.upper_95):
        assert a.shape == (H,) and np.isfinite(a).all() and (a >= 0).all()


def test_series_with_a_gap_is_modelled_and_forecast():
    y, promo = _weekly(84)
    y[30:40] = np.nan  # ten unknown days in the middle
    r = run_task(_task(y, promo, spec=WEEKLY))
    assert r.kind == "sarima", r.reason  # no origins: the default member
    f = r.forecast
    assert np.isfinite(f.mean).all() and (f.lower_95 >= 0).all()
    assert (f.lower_95 <= f.lower_80).all() and (f.lower_80 <= f.mean).all() and (f.mean <= f.upper_80).all()
    assert (f.upper_80 <= f.upper_95).all()


def test_failed_fit_falls_back_to_seasonal_naive_and_says_why(monkeypatch):
    def boom(*a, **k):
        raise np.linalg.LinAlgError("singular matrix")

    monkeypatch.setattr(sarima, "fit", boom)
    y, promo = _weekly(84)
    r = run_task(_task(y, promo, spec=WEEKLY))  # no origins to choose on: SARIMA, which fails
    assert r.kind == "fallback" and "singular matrix" in r.reason
    assert r.forecast.model == "seasonal_naive"


def test_a_series_where_seasonal_naive_wins_publishes_it_and_says_so(monkeypatch):
    def boom(*a, **k):
        raise np.linalg.LinAlgError("singular matrix")

    for module, name in ((sarima, "fit"), (menu, "ets"), (menu, "theta")):
        monkeypatch.setattr(module, name, boom)
    y, promo = _weekly(140)
    r = run_task(_task(y, promo, spec=WEEKLY, origins=(H, 2 * H, 3 * H)))
    assert r.kind == "seasonal_naive" and "seasonal naive won the backtest" in r.reason
    assert r.forecast.model == "seasonal_naive" and "singular matrix" in r.failures["ets"]
    assert all(o.chosen == "seasonal_naive" for o in r.backtest if o.cut < 3 * H)


def test_each_origin_is_scored_by_a_member_chosen_on_older_origins_only():
    y, promo = _weekly(260, seed=2)
    origins = (H, 2 * H, 3 * H, 4 * H, 5 * H)
    r = run_task(_task(y, promo, spec=WEEKLY, origins=origins))
    assert r.kind in menu.MEMBERS and set(r.scores) == set(menu.MEMBERS)
    by_cut = {o.cut: o for o in r.backtest}
    assert {c for c, o in by_cut.items() if o.scored} == {H, 2 * H, 3 * H}
    for cut in (H, 2 * H, 3 * H):
        older = [by_cut[cut + H], by_cut[cut + 2 * H]]  # forecasts that ended by this origin
        score = {m: np.mean([np.mean(np.abs(o.members[m].mean - o.actual)) / o.scale for o in older])
                 for m in menu.MEMBERS}
        assert by_cut[cut].chosen == min(score, key=score.get)
        assert by_cut[cut].model is by_cut[cut].members[by_cut[cut].chosen]
    tonight = {m: np.mean([np.mean(np.abs(o.members[m].mean - o.actual)) / o.scale for o in (by_cut[H], by_cut[2 * H])])
               for m in menu.MEMBERS}
    assert r.kind == min(tonight, key=tonight.get)
    assert (r.forecast.lower_95 <= r.forecast.mean).all() and (r.forecast.lower_95 >= 0).all()


def test_selection_warm_start_and_promotion_effect():
    y, promo = _weekly(280, seed=3)
    z = np.log1p(y)
    best, tried = sarima.select(z, promo, sarima.grid(7)[:2])
    assert len(tried) == 2 and best.aic == min(t["aic"] for t in tried if t["aic"] is not None)
    assert best.spec.exog  # the series has promotions, so promotion is a regressor
    full = sarima.fit(z, promo, best.spec, best.params)  # warm start from the selection fit
    assert full.converged
    assert full.named["x1"] == pytest.approx(np.log(1.6), abs=0.15)  # planted lift, on the log scale
    again = sarima.fit(z, promo, best.spec, full.params)  # tomorrow's warm start: already at the optimum
    assert again.iterations <= 3 and again.params == pytest.approx(full.params, abs=0.02)


def test_backtest_parameters_are_reused_until_the_order_is_reselected(monkeypatch):
    y, promo = _weekly(200, seed=4)
    origins = (H, 2 * H)
    last_night = run_task(_task(y[:-1], promo[:-1], spec=WEEKLY, origins=origins))
    assert last_night.backtest_fit is not None
    start = None if last_night.params is None else np.asarray(last_night.params)  # None: SARIMA not published
    fits = []
    real_fit = sarima.fit
    monkeypatch.setattr(sarima, "fit", lambda *a, **k: fits.append(1) or real_fit(*a, **k))

    tonight = run_task(_task(y, promo, spec=WEEKLY, start_params=start, origins=origins,
                             backtest_fit=last_night.backtest_fit))
    assert len(fits) == (tonight.kind in ("sarima", "combination"))  # tonight's model only, if published
    assert all("sarima" in o.members for o in tonight.backtest)
    np.testing.assert_array_equal(tonight.backtest_fit[1], last_night.backtest_fit[1])

    fits.clear()  # parameters of another model are not reused: the backtest estimates its own
    other = (sarima.Spec((1, 1, 1), (0, 1, 1, 7), True), np.r_[0.1, last_night.backtest_fit[1]])
    refit = run_task(_task(y, promo, spec=WEEKLY, start_params=start, origins=origins,
                           backtest_fit=other))
    assert len(fits) == 1 + (refit.kind in ("sarima", "combination"))
    assert refit.backtest_fit[0] == last_night.backtest_fit[0]


def test_every_member_follows_the_weekly_shape():
    y, promo = _weekly(140, seed=5)
    s = menu.prepare(y[:-H], H, yearly=False)
    fitted = sarima.fit(s.z, promo[:-H], WEEKLY)
    scale = mase_scale(y[:-H], 7)
    flat = mase(y[-H:], mean_baseline(y[:-H], H, 28).mean, scale)
    members = {"sarima": sarima.forecast(s.z, promo[:-H], promo[-H:], fitted, H),
               "ets": menu.ets(s, H, 7), "theta": menu.theta(s, H, 7)}
    for name, (mu, sd) in members.items():
        f = menu.to_units(s, mu, sd, name)
        assert mase(y[-H:], f.mean, scale) < flat, name
        assert (np.diff(sd) >= -1e-9).all() and sd[0] > 0, name  # spreads grow with the horizon


def test_yearly_season_of_daily_data_is_learnt_by_fourier_terms():
    rng = np.random.default_rng(6)
    t = np.arange(800)
    y = rng.poisson(40 * (1 + 0.3 * np.sin(2 * np.pi * t / 365.25)) * (1 + 0.3 * (t % 7 == 5))).astype(float)
    s = menu.prepare(y[:-60], 60, yearly=True)
    planted = np.log(1 + 0.3 * np.sin(2 * np.pi * t[-60:] / 365.25))
    assert np.corrcoef(s.yearly_ahead, planted)[0, 1] > 0.9  # the shape of the year carries on ahead
    assert not menu.prepare(y[:300], 60, yearly=True).yearly_ahead.any()  # under a year: not estimated


def test_mappers_keep_order_and_limit_blas_to_one_thread():
    assert SerialMapper().map(blas_threads, range(3)) == [1, 1, 1]
    # Preload nothing heavy: this checks the pool's wiring, not statsmodels' import time.
    with ProcessMapper(2, preload=("nightshift.jobs.sales.parallel",)) as mapper:
        assert mapper.map(abs, [-3, -1, -2, 5]) == [3, 1, 2, 5]
        assert set(mapper.map(blas_threads, range(4))) == {1}


def test_a_backfill_starts_its_pool_once_and_replaces_one_that_broke():
    import os
    import signal

    from nightshift.jobs.sales import parallel

    with parallel.kept_pools():
        with parallel.make_mapper(2) as night1:
            pids = set(night1.map(_pid, range(8)))
        with parallel.make_mapper(2) as night2:  # the next night: the same workers, not a fresh pool
            assert set(night2.map(_pid, range(8))) <= pids
            os.kill(next(iter(pids)), signal.SIGKILL)
            assert night2.map(abs, [-1, -2]) == [1, 2]  # a dead worker: a new pool, the work still done
        pool = parallel._KEPT[2]._pool  # noqa: SLF001 - the pool to be closed when the block ends
    assert parallel._KEPT is None  # noqa: SLF001
    assert pool._shutdown_thread  # noqa: SLF001 - closed at the end of the backfill
    with parallel.make_mapper(2) as alone:  # outside a backfill each night owns (and closes) its pool
        assert isinstance(alone, parallel.ProcessMapper)


def _pid(_: object) -> int:
    import os
    import time

    time.sleep(0.05)  # both workers get some of the work
    return os.getpid()
