"""Model quality on demo loans against the planted default probabilities, on several draws.

Each draw of the generator plants a default probability per application (`_truth`), so the best any
model can do on a holdout is known: the AUC of the true probabilities on those rows. The checks allow
that truth's sampling error and no more, and each has a degraded model that must fail it, so a check
that can no longer fail is itself caught.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from truth import Z, hanley_mcneil_se

from nightshift.demo import SIZES
from nightshift.demo.loans import generate
from nightshift.jobs.loans.features import Split, time_split
from nightshift.jobs.loans.job import fit_candidates, select
from nightshift.jobs.loans.model import PlattScaled, fit_model
from nightshift.jobs.loans.report import band_of
from nightshift.modeling import metrics
from nightshift.registry import ModelRegistry
from nightshift.warehouse import Warehouse

pytestmark = pytest.mark.slow
D = date(2026, 3, 1)
# Big enough that a 2-point calibration check per band is not swamped by sampling noise.
SIZE = dataclasses.replace(SIZES["small"], loans_per_day=120, loan_days=730)
SEEDS = (11, 12, 13)  # fixed before looking at any result: three independent draws of the generator
# "Within noise" of the logistic baseline (the rule a later issue revisits): the AUC's Hanley–McNeil s.e.
# on these holdouts is 0.0065-0.007, and two AUCs on the same rows differ by less noise than one.
BASELINE_SLACK = 0.01
CALIBRATION_POINTS = 0.02


def _load(seed: int, directory: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The loans mart's training rows for one draw, and that draw's planted probabilities."""
    tables = generate(np.random.default_rng(seed), D - timedelta(days=SIZE.loan_days - 1), D, SIZE)
    wh = Warehouse(directory / "w.duckdb")
    cur = wh.cursor
    for t, col in (("loans", "application_date"), ("loan_outcomes", "observed_date")):
        cur.register("f", tables[t].with_columns(pl.col(col).alias("_partition")).to_arrow())
        cur.execute(f"insert into {t} select * from f")  # noqa: S608 - fixed table names
        cur.unregister("f")
    feats = wh.run_sql("marts/loans/features", run_date=D, pending_days=30)
    wh.close()
    return feats.filter(pl.col("role") == "train"), tables["_truth"]["default_prob"].select("application_id", "p_default")


def _shuffled(split: Split, seed: int) -> Split:
    """The same windows with each window's labels permuted: features no longer say anything about default."""
    rng = np.random.default_rng(seed)

    def shuffle(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.Series("defaulted", rng.permutation(frame["defaulted"].to_numpy())))

    return dataclasses.replace(split, train=shuffle(split.train), valid=shuffle(split.valid))


@pytest.fixture(scope="module", params=SEEDS, ids=lambda s: f"seed{s}")
def fitted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory = tmp_path_factory.mktemp(f"loans{request.param}")
    labelled, truth = _load(request.param, directory)
    split = time_split(labelled)
    candidates = {c.name: c for c in fit_candidates(split, seed=7)}
    model, logistic = candidates["xgboost"].model, candidates["logistic baseline"].model
    reg = ModelRegistry(directory / "models", "loans")
    judged = select(reg, split, list(candidates.values()), save=lambda c, extra: reg.save(
        c.model, c.fmt, run_date=D, training_window=split.window("valid"), data_hash=c.name, features=[],
        params={}, metrics={}, extra=extra))
    hold = split.holdout.join(truth, on="application_id", how="left")
    assert hold["p_default"].null_count() == 0  # every holdout row has its planted probability
    return {"seed": request.param, "split": split, "model": model, "hold": hold, "judged": judged,
            "models": {"xgboost": model, "logistic baseline": logistic},
            "y": hold["defaulted"].to_numpy(), "p": model.predict(hold), "p_base": logistic.predict(hold),
            "p_true": hold["p_default"].to_numpy()}


def check_discrimination(y: np.ndarray, p: np.ndarray, p_true: np.ndarray, p_base: np.ndarray) -> list[str]:
    """Failures of the holdout AUC against the truth's AUC on the same rows, and against the baseline.

    No model ranks better than the planted probabilities except by luck, so the truth's AUC on this
    holdout is the ceiling. Lower bound: the truth's AUC minus Z Hanley–McNeil standard errors (a model
    that learned the planted risk differs from it by less than the AUC's sampling noise). Upper bound:
    the truth's AUC plus Z standard errors (beyond that the model saw the holdout's outcomes).
    """
    auc, auc_true, auc_base = metrics.auc(y, p), metrics.auc(y, p_true), metrics.auc(y, p_base)
    se = hanley_mcneil_se(auc_true, int(y.sum()), int(len(y) - y.sum()))
    failures = []
    if auc < auc_true - Z * se:
        failures.append(f"AUC {auc:.4f} below the planted probabilities' {auc_true:.4f} - {Z:g} s.e. ({se:.4f})")
    if auc > auc_true + Z * se:
        failures.append(f"AUC {auc:.4f} above the planted probabilities' {auc_true:.4f} + {Z:g} s.e.: leakage")
    if auc < auc_base - BASELINE_SLACK:
        failures.append(f"AUC {auc:.4f} worse than the logistic baseline's {auc_base:.4f} - {BASELINE_SLACK}")
    return failures


def calibration_se(model: PlattScaled, valid: pl.DataFrame, rows: pl.DataFrame) -> np.ndarray:
    """Per row, the standard error of the calibrated probability that the Platt fit leaves (delta method).

    Platt scaling is a logistic fit of the validation outcomes on the booster's log-odds; its two
    coefficients have covariance (X'WX)^-1, and a row's calibrated log-odds a * margin + b inherits
    x' cov x, which becomes p(1 - p) times its square root on the probability scale.
    """
    margin = model.margin(valid)
    p_valid = 1 / (1 + np.exp(-(model.cal_a * margin + model.cal_b)))
    x = np.column_stack([margin, np.ones_like(margin)])
    cov = np.linalg.inv(x.T @ (x * (p_valid * (1 - p_valid))[:, None]))
    xr = np.column_stack([model.margin(rows), np.ones(rows.height)])
    p = model.predict(rows)
    return p * (1 - p) * np.sqrt(np.einsum("ij,jk,ik->i", xr, cov, xr))


def check_calibration(y: np.ndarray, p: np.ndarray, p_true: np.ndarray, se_map: np.ndarray) -> list[str]:
    """Failures of the per-band calibration against the planted probabilities and the observed rates.

    Each band's mean prediction must be within 2 points of the band's mean planted probability, or
    within Z standard errors of the calibration map where that is wider (the high band: Platt's two
    coefficients come from one validation window, and they move a 60% prediction by about a point).
    Against the observed rate the band's outcome noise adds in: its standard error follows from the
    planted probabilities, sqrt(sum p(1 - p)) / n. Every band with 200 rows or more is checked.
    """
    f = pl.DataFrame({"band": band_of(p), "p": p, "y": y.astype(float), "truth": p_true, "se_map": se_map})
    bands = (f.group_by("band")
             .agg(n=pl.len(), predicted=pl.col("p").mean(), observed=pl.col("y").mean(),
                  true_p=pl.col("truth").mean(), se_map=pl.col("se_map").mean(),
                  se_obs=(pl.col("truth") * (1 - pl.col("truth"))).sum().sqrt() / pl.len())
             .filter(pl.col("n") >= 200).sort("band"))
    failures = []
    for r in bands.iter_rows(named=True):
        tol_true = max(CALIBRATION_POINTS, Z * r["se_map"])
        tol_obs = max(CALIBRATION_POINTS, Z * float(np.hypot(r["se_map"], r["se_obs"])))
        if abs(r["predicted"] - r["true_p"]) > tol_true:
            failures.append(f"band {r['band']}: predicted {r['predicted']:.3f}, planted {r['true_p']:.3f} "
                            f"(tolerance {tol_true:.3f})")
        if abs(r["predicted"] - r["observed"]) > tol_obs:
            failures.append(f"band {r['band']}: predicted {r['predicted']:.3f}, observed {r['observed']:.3f} "
                            f"(tolerance {tol_obs:.3f})")
    if bands.height < 4:
        failures.append(f"only {bands.height} risk bands with 200 rows: too few to judge calibration")
    return failures


def test_auc_near_the_planted_probabilities_and_not_worse_than_logistic(fitted: dict) -> None:
    y = fitted["y"]
    print(f"seed {fitted['seed']}: holdout n={len(y)} AUC xgb={metrics.auc(y, fitted['p']):.4f} "
          f"logistic={metrics.auc(y, fitted['p_base']):.4f} planted={metrics.auc(y, fitted['p_true']):.4f} "
          f"s.e.={hanley_mcneil_se(metrics.auc(y, fitted['p_true']), int(y.sum()), int(len(y) - y.sum())):.4f}")
    assert check_discrimination(y, fitted["p"], fitted["p_true"], fitted["p_base"]) == []


def test_the_auc_check_fails_a_model_trained_on_shuffled_labels(fitted: dict) -> None:
    shuffled = fit_model(_shuffled(fitted["split"], fitted["seed"]))
    p = shuffled.predict(fitted["hold"])
    failures = check_discrimination(fitted["y"], p, fitted["p_true"], fitted["p_base"])
    print(f"seed {fitted['seed']}: shuffled-label AUC={metrics.auc(fitted['y'], p):.4f}", failures)
    assert any("below the planted" in f for f in failures)


def test_the_auc_check_fails_a_model_that_saw_the_holdout_outcomes(fitted: dict) -> None:
    leaky = 0.8 * fitted["p_true"] + 0.2 * fitted["y"]  # a feature that leaks a fifth of the label
    failures = check_discrimination(fitted["y"], leaky, fitted["p_true"], fitted["p_base"])
    assert any("leakage" in f for f in failures)


def test_risk_rises_with_debt_to_income(fitted: dict) -> None:
    sample = fitted["hold"].sample(500, seed=1)
    grid = np.quantile(sample["debt_to_income"].to_numpy(), np.linspace(0.05, 0.95, 10))
    stacked = pl.concat([sample.with_columns(debt_to_income=pl.lit(float(g))) for g in grid])
    mean = fitted["model"].predict(stacked).reshape(len(grid), -1).mean(axis=1)
    assert np.all(np.diff(mean) >= -1e-9) and mean[-1] > mean[0] + 0.05
    # and per application: raising only the debt-to-income never lowers the risk
    up = sample.with_columns(pl.col("debt_to_income") + 0.2)
    assert np.all(fitted["model"].predict(up) >= fitted["model"].predict(sample) - 1e-9)


def test_the_published_model_is_the_best_on_the_holdout_and_never_below_the_baseline(fitted: dict) -> None:
    judged, y = fitted["judged"], fitted["y"]
    auc = {name: metrics.auc(y, m.predict(fitted["hold"])) for name, m in fitted["models"].items()}
    print(f"seed {fitted['seed']}: published {judged.published}, AUC", {k: round(v, 4) for k, v in auc.items()})
    assert judged.published == max(auc, key=lambda name: (auc[name], name == "logistic baseline"))
    assert auc[judged.published] >= auc["logistic baseline"]
    assert judged.verdict()["learned_lost"] == (judged.published == "logistic baseline")


@pytest.mark.parametrize("which", ["xgboost", "published"])
def test_calibrated_per_band_against_planted_and_observed_rates(fitted: dict, which: str) -> None:
    """XGBoost + Platt, and whichever candidate the selection publishes (the logistic baseline won seed 11)."""
    model = fitted["judged"].model if which == "published" else fitted["model"]
    se_map = calibration_se(model, fitted["split"].valid, fitted["hold"])
    assert check_calibration(fitted["y"], model.predict(fitted["hold"]), fitted["p_true"], se_map) == []


def test_the_calibration_check_fails_odds_off_by_a_half(fitted: dict) -> None:
    odds = 1.5 * fitted["p"] / (1 - fitted["p"])  # risk overstated by half: a miscalibrated model
    se_map = calibration_se(fitted["model"], fitted["split"].valid, fitted["hold"])
    assert check_calibration(fitted["y"], odds / (1 + odds), fitted["p_true"], se_map)
