"""Loans' DP releases: public region keys (a planted region is counted as "other", never named), and
the shareable model quality computed from a DP band x outcome histogram that is charged to the ledger."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from nightshift import shareable
from nightshift.jobs.loans import job, quality
from nightshift.jobs.loans.report import BANDS, band_of
from nightshift.modeling import metrics
from nightshift.privacy import PrivacyLayer, ledger
from nightshift.privacy.store import Store
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)


def _settings(home) -> Settings:
    return Settings(home=home, privacy_budgets={"applicants": Budget(epsilon=400.0)})


def _holdout(n: int = 4000) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(5)  # the data only; the noise is OpenDP's
    p = rng.beta(1.2, 9, n)
    y = (rng.random(n) < p).astype(int)
    return pl.DataFrame({"applicant_id": [f"a{i}" for i in range(n)], "defaulted": y}), p


def test_auc_and_calibration_are_post_processing_of_the_histogram():
    holdout, p = _holdout()
    exact = quality.frame(holdout, p).group_by("risk_band", "outcome").agg(pl.len().alias("applications"))
    bands = list(quality.QUALITY_BANDS)
    grid = pl.DataFrame({"risk_band": [b for b in bands for _ in quality.OUTCOMES],
                         "outcome": [o for _ in bands for o in quality.OUTCOMES]})
    table = grid.join(exact, on=["risk_band", "outcome"], how="left").fill_null(0).with_columns(
        pl.lit(0).alias("applications_moe"))
    rank = np.array([bands.index(x) for x in quality.quality_band(band_of(p))])
    assert quality.auc(table) == pytest.approx(metrics.auc(holdout["defaulted"].to_numpy(), rank), abs=1e-9)
    cal = quality.calibration(table)
    assert cal["risk_band"].to_list() == bands
    assert cal["applications"].sum() == holdout.height
    # Each quality band's range of predictions pools whole risk bands: A–B is 0 to C's lower bound.
    assert cal.row(0, named=True)["predicted_from"] == 0.0 and cal.row(0, named=True)["predicted_to"] == dict(BANDS)["C"]
    assert cal["predicted_to"][-1] == 1.0


def test_model_quality_is_a_charged_dp_release_and_the_shareable_tier_derives_from_it(tmp_path):
    s = _settings(tmp_path)
    holdout, p = _holdout()
    eps = job.epsilons(s)
    with Warehouse(s.warehouse_path) as wh:
        ctx = SimpleNamespace(privacy=PrivacyLayer(wh, s, "loans", RUN))
        shown = job._quality(ctx, holdout, p, eps)
        results = ctx.privacy.results
        entries = shareable.collect(tmp_path / "build", "loans", results, ())
    store = Store.for_home(s.data_dir, s.reports_dir)
    (charge,) = [e.data for e in store.verify() if e.data["kind"] == "charge"]
    assert charge["release"] == quality.NAME and charge["epsilon"] == pytest.approx(eps[quality.NAME])
    stored = ledger.find(store, charge["release_id"]).table
    assert shown["headline"] == quality.headline(stored).to_dicts()[0]
    assert 0.5 < shown["headline"]["auc_banded"] < 1.0
    derived = {e["output"]: e for e in entries if e["kind"] == "dp-post"}
    assert set(derived) == set(quality.POST_PROCESSING)
    for output, entry in derived.items():
        published = pl.read_parquet(tmp_path / "build" / "shareable" / entry["file"])
        assert published.equals(quality.POST_PROCESSING[output](stored))
        assert entry["release_id"] == charge["release_id"]


def test_portfolio_regions_come_from_the_public_list_and_a_planted_region_is_other(tmp_path):
    s = _settings(tmp_path)
    regions = ["north"] * 300 + ["south"] * 200 + ["planted-region"] * 50
    scored = pl.DataFrame({"applicant_id": [f"a{i}" for i in range(len(regions))], "region": regions})
    with Warehouse(s.warehouse_path) as wh:
        ctx = SimpleNamespace(privacy=PrivacyLayer(wh, s, "loans", RUN))
        rows, note = job._portfolio(ctx, scored, np.full(len(regions), 0.1), job.epsilons(s))
    assert note is None
    assert [r["region"] for r in rows["regions"]] == [*s.privacy_public_keys["loan_regions"], "other"]
    assert [r["risk_band"] for r in rows["bands"]] == [b for b, _ in BANDS]  # fixed cut-points, not the data's
    store = Store.for_home(s.data_dir, s.reports_dir)
    charged = [e.data["release"] for e in store.verify() if e.data["kind"] == "charge"]
    assert charged == ["loans_portfolio", "loans_portfolio_bands"]


def test_shares_add_up_to_the_budget():
    assert sum(job.SHARES.values()) == pytest.approx(1.0)
