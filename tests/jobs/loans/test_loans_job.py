"""The loans job: demo signal, label lag in the features SQL, encoding, and a full night on mapped user data."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nightshift import reporting
from nightshift.demo import SIZES
from nightshift.demo.loans import generate
from nightshift.jobs import JobContext
from nightshift.jobs.loans.features import OTHER, Encoder
from nightshift.settings import SourceSettings, load_settings
from nightshift.tables import TABLES
from nightshift.warehouse import Warehouse

D = date(2026, 3, 1)
SMALL = dataclasses.replace(SIZES["tiny"], loans_per_day=16, loan_days=420)
DTYPES = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "INTEGER": pl.Int32, "DOUBLE": pl.Float64, "DATE": pl.Date}


@pytest.fixture(scope="module")
def demo() -> dict:
    return generate(np.random.default_rng(3), D - timedelta(days=SMALL.loan_days - 1), D, SMALL)


def _load(wh: Warehouse, tables: dict) -> None:
    cur = wh.cursor
    for t, col in (("loans", "application_date"), ("loan_outcomes", "observed_date")):
        cur.register("f", tables[t].with_columns(pl.col(col).alias("_partition")).to_arrow())
        cur.execute(f"insert into {t} select * from f")  # noqa: S608 - fixed table names
        cur.unregister("f")


def test_generator_tables_and_planted_signal(demo: dict) -> None:
    for t in ("loans", "loan_outcomes"):
        assert {c.name: DTYPES[c.type] for c in TABLES[t].columns} == dict(demo[t].schema)
    loans, out = demo["loans"], demo["loan_outcomes"]
    assert loans["applicant_id"].is_duplicated().any()  # repeat applicants exist
    lag = out.join(loans, on="application_id").select((pl.col("observed_date") - pl.col("application_date")).dt.total_days())
    assert lag.min().item() >= 30 and out["observed_date"].max() <= D
    truth = demo["_truth"]["default_prob"].join(loans, on="application_id")
    by_dti = truth.group_by((pl.col("debt_to_income").rank("ordinal") - 1).mul(5).floordiv(pl.len()).alias("q")).agg(
        pl.col("defaulted").mean()).sort("q")["defaulted"].to_list()
    assert by_dti == sorted(by_dti)  # observed default rate rises with debt-to-income


def test_features_respect_label_lag_and_point_in_time(demo: dict, tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    _load(wh, demo)
    d1 = D - timedelta(days=90)
    f1 = wh.run_sql("marts/loans/features", run_date=d1, pending_days=30)
    train = f1.filter(pl.col("role") == "train")
    assert train["outcome_date"].max() <= d1 and f1["application_date"].max() <= d1
    # an outcome observed after d1 must not label its application at d1
    resolved_late = demo["_truth"]["default_prob"].filter(pl.col("resolved_on") > d1)["application_id"]
    assert not train["application_id"].is_in(resolved_late.implode()).any()
    scored = f1.filter(pl.col("role") == "score")
    assert scored["application_date"].min() > d1 - timedelta(days=30) and scored["defaulted"].null_count() == scored.height
    # the same date gives the same rows whether or not later data has arrived (backfill safety)
    wh2 = Warehouse(tmp_path / "w2.duckdb")
    _load(wh2, {t: demo[t].filter(pl.col(c) <= d1) for t, c in
                (("loans", "application_date"), ("loan_outcomes", "observed_date"))})
    assert f1.equals(wh2.run_sql("marts/loans/features", run_date=d1, pending_days=30))
    later = wh.run_sql("marts/loans/features", run_date=D, pending_days=30)
    assert later.filter(pl.col("role") == "train").height > train.height


def test_encoder_pools_rare_and_unseen_levels() -> None:
    rows = pl.DataFrame({c: [1.0] * 30 for c in Encoder().numeric}).with_columns(
        home_ownership=pl.lit("rent"), purpose=pl.Series(["car"] * 25 + ["boat"] * 5), region=pl.lit("north"))
    enc = Encoder.fit(rows)
    assert enc.levels["purpose"] == ["car", OTHER]
    new = rows.head(2).with_columns(purpose=pl.Series(["spaceship", "car"]))
    m = enc.transform(new)
    cols = enc.names
    assert m[0, cols.index("purpose=other")] == 1 and m[1, cols.index("purpose=car")] == 1
    assert Encoder.from_dict(enc.to_dict()).names == cols
    assert enc.monotone_constraints().count("1") >= 3


@pytest.mark.slow  # loads a CSV day by day and trains twice: ~10-40 s on the shared 2-core machine
def test_night_on_user_data_with_other_column_names(demo: dict, tmp_path: Path) -> None:
    """A user's CSV with their own column names and extra columns, mapped through source settings."""
    from nightshift.ingest import ingest
    from nightshift.jobs.loans.job import run

    rename = {"application_id": "AppRef", "applicant_id": "CustomerNo", "application_date": "Applied",
              "debt_to_income": "DTI", "credit_score": "FICO", "region": "Area"}
    loans = demo["loans"].rename(rename).with_columns(branch_code=pl.lit("X1"), notes=pl.lit("n/a"))
    outcomes = demo["loan_outcomes"].rename({"application_id": "AppRef", "status": "State"}).with_columns(
        source_system=pl.lit("core"))
    loans.write_csv(tmp_path / "my_loans.csv")
    outcomes.write_csv(tmp_path / "my_outcomes.csv")
    settings = load_settings(home=tmp_path, sources={
        "loans": SourceSettings(path=str(tmp_path / "my_loans.csv"), columns={v: k for k, v in rename.items()}),
        "loan_outcomes": SourceSettings(path=str(tmp_path / "my_outcomes.csv"),
                                        columns={"AppRef": "application_id", "State": "status"}),
    })
    wh = Warehouse(settings.warehouse_path)
    loads = ingest(settings, wh, D, ["loans", "loan_outcomes"])
    assert all(load.usable for load in loads.values())

    ctx = JobContext("loans", D, settings, wh, out_dir=tmp_path / "out")
    res = run(ctx)
    assert res.models["default_model"] == res.context["scoring_version"]
    assert res.summary["holdout_auc"] > 0.7 and res.context["promoted"]  # first night: no champion yet
    # the published model is the bake-off's best: never below the logistic baseline on the holdout
    assert res.summary["holdout_auc"] >= res.summary["baseline_auc"]
    export = settings.exports_dir / D.isoformat() / "loans" / "scores.parquet"
    assert export.stat().st_mode & 0o077 == 0  # person-level rows: owner only, never in the reports
    assert not (tmp_path / "out" / "scores.parquet").exists()
    scores = pl.read_parquet(export)
    assert scores.height == res.context["counts"]["scored"] > 0
    assert {"probability_default", "risk_band", "top_feature_1", "contribution_1", "model_version"} <= set(scores.columns)
    assert scores["probability_default"].is_between(0, 1).all()
    assert set(scores["top_feature_1"]) <= set(res.context["importance_rows"][0].keys()) | {
        r["feature"] for r in res.context["importance_rows"]} | {"home_ownership", "purpose", "region"}

    # A second run of the same night reuses the stored model: no new version, same champion.
    again = run(JobContext("loans", D, settings, wh, out_dir=tmp_path / "out2"))
    assert again.context["challenger_version"] == res.context["challenger_version"]
    assert ctx.registry.versions() == [res.context["challenger_version"]]

    html = reporting.render("loans.html.j2", **res.context, run_date=D, job="loans", selections=res.selections,
                            warnings=res.warnings, assets=".", root=".")
    assert res.context["scoring_version"] in html and "Calibration" in html
    verdict = res.selections["default_model"]
    assert {e["name"] for e in verdict["board"]} == {"xgboost", "logistic baseline"}
    assert f"<strong>{verdict['winner']}</strong> won" in html and verdict["published"] == verdict["winner"]
    assert not any(a in html for a in scores["application_id"].head(50).to_list())  # no person-level ids


def test_a_scoring_night_whose_kept_model_is_the_baseline_shows_it_beside_tonights_refit(
        demo: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both are logistic baselines: the kept one must not hide tonight's refit (they once shared a name)."""
    from nightshift import cadence
    from nightshift.jobs.loans import job
    from nightshift.jobs.loans.features import time_split
    from nightshift.jobs.loans.model import fit_logistic
    from nightshift.registry import LoadedModel

    wh = Warehouse(tmp_path / "w.duckdb")
    _load(wh, demo)
    ctx = JobContext("loans", D, load_settings(home=tmp_path), wh, out_dir=tmp_path / "out")
    split = time_split(ctx.sql("features", pending_days=job.PENDING_DAYS).filter(pl.col("role") == "train"))
    older = time_split(wh.run_sql("marts/loans/features", run_date=D - timedelta(days=3), pending_days=30)
                       .filter(pl.col("role") == "train"))
    kept = LoadedModel(fit_logistic(older), "v0003-20260226", {"extra": {"candidate": "logistic baseline"}})
    plan = cadence.Plan("weekly", False, D - timedelta(days=3), {"version": kept.version})
    monkeypatch.setattr(cadence, "tonight", lambda ctx, loader, usable: (plan, kept))

    use = job.model_in_use(ctx, split)

    assert list(use.compared) == ["logistic baseline", "logistic baseline v0003-20260226 (in use)"]
    assert use.published == "logistic baseline v0003-20260226 (in use)" and use.model is kept.model
    assert use.compared["logistic baseline"] is not kept.model  # tonight's refit, on tonight's windows
