"""The loans job: train default models as of D, pick one by the selection rule, score D's applications.

Training uses only outcomes observed by D (label lag respected in `sql/marts/loans/features.sql`),
split by application date: fit on the oldest, early-stop and calibrate on the next window, judge
on the newest (the holdout no model ever saw). XGBoost and the logistic baseline compete on that
holdout by AUC (`nightshift.selection.compete`: a tie goes to the baseline); the winner challenges
the champion, scoring always uses the champion, and the page names the candidate and its version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import polars as pl

from nightshift.jobs import JobContext, JobResult
from nightshift.jobs.loans import report
from nightshift.jobs.loans.features import Split, data_hash, time_split
from nightshift.jobs.loans.model import LOANS_FORMAT, LOGISTIC_FORMAT, PlattScaled, fit_logistic, fit_model
from nightshift.modeling import metrics
from nightshift.modeling.xgb import xgb_device
from nightshift.registry import ModelRegistry, ModelVersion
from nightshift.selection import Candidate, Judge, Selection, compete

log = logging.getLogger(__name__)
PENDING_DAYS = 30  # an application with no outcome row this long after applying is still undecided
METRIC = "auc"  # the champion/challenger metric (higher is better); settings.champion_margin applies
JUDGE = Judge(METRIC, higher_is_better=True, min_rows=100)
PORTFOLIO_EPSILON = 0.1
PORTFOLIO_MAX_ROWS = 1  # K: applications one applicant may contribute per night (more are sampled away)


def run(ctx: JobContext) -> JobResult:
    """Train, judge, score and explain loan default risk for `ctx.run_date`."""
    warnings: list[str] = []
    feats = ctx.sql("features", pending_days=PENDING_DAYS)
    labelled = feats.filter(pl.col("role") == "train")
    to_score = feats.filter(pl.col("role") == "score")
    split = time_split(labelled)

    candidates = fit_candidates(split, seed=ctx.settings.seed)
    reg = ctx.registry
    judged = select(reg, split, candidates, save=lambda c, extra: _register(ctx, split, c, extra))
    warnings += judged.notes
    absent = judged.model.encoder.absent
    if absent:
        warnings.append(f"the data has no {', '.join(absent)}: the model does without them (optional columns "
                        "of the loans table left out of the source)")
    compare = judged.holdout
    y_cmp = compare["defaulted"].to_numpy()
    preds = {c.name: c.model.predict(compare) for c in candidates}
    if judged.champion is not None and judged.champion.version != judged.decision.challenger:
        preds[f"champion {judged.champion.version}"] = judged.champion.model.predict(compare)
    promoted, reason = judged.decision.promoted, judged.decision.reason
    scoring_model: PlattScaled = judged.model
    scoring_version = judged.version

    p = _score(ctx, scoring_model, scoring_version, to_score)

    # Explanations on the holdout with the model that scores.
    p_hold = scoring_model.predict(compare)
    hold_contribs = scoring_model.contributions(compare)
    imp_chart, imp_rows = report.importance(hold_contribs)
    top_numeric = [r["feature"] for r in imp_rows if r["feature"] in compare.columns
                   and compare.schema[r["feature"]].is_numeric()][:3]
    sample = compare.sample(min(400, compare.height), seed=ctx.settings.seed)
    cal_chart, cal_rows = report.calibration_chart(y_cmp, p_hold)
    drift_rows = report.drift(split.train, to_score)
    for r in drift_rows:
        if r["flagged"]:
            warnings.append(f"drift: {r['feature']} has PSI {r['psi']:.2f} (> {report.PSI_FLAG}) between the training "
                            "window and tonight's applications")
    portfolio, portfolio_note = _portfolio(ctx, to_score, p, scoring_model)
    if portfolio_note:
        warnings.append(portfolio_note)

    context = {
        "scoring_version": scoring_version, "published": judged.published, "absent_features": absent, "challenger_version": judged.decision.challenger,
        "promoted": promoted, "decision_reason": reason, "margin": reg.margin, "metric": METRIC,
        "holdout": {"start": compare["application_date"].min(), "end": compare["application_date"].max(),
                    "applications": compare.height, "default_rate": float(y_cmp.mean())},
        "windows": {part: split.window(part) for part in ("train", "valid", "holdout")},
        "counts": {"labelled": labelled.height, "scored": to_score.height,
                   "applied_today": to_score.filter(pl.col("application_date") == ctx.run_date).height},
        "metrics_rows": report.metric_rows(y_cmp, preds), "band_rows": report.band_table(y_cmp, p_hold),
        "calibration_rows": cal_rows, "label_lag_rows": ctx.sql("label_lag").to_dicts(),
        "importance_rows": imp_rows, "drift_rows": drift_rows, "psi_flag": report.PSI_FLAG,
        "portfolio_rows": portfolio, "bands": [{"band": b, "from": lo} for b, lo in report.BANDS],
        "charts": {
            "roc": report.roc_chart(y_cmp, preds), "calibration": cal_chart,
            "distribution": report.score_distribution(y_cmp, p_hold, p),
            "importance": imp_chart,
            "pdp": [report.partial_dependence(scoring_model.predict, sample, f) for f in top_numeric],
        },
    }
    summary = {
        "holdout_auc": metrics.auc(y_cmp, p_hold), "baseline_auc": metrics.auc(y_cmp, preds["logistic baseline"]),
        "published": judged.published, "champion": scoring_version, "promoted": promoted, "scored": to_score.height,
        "mean_probability": float(p.mean()) if len(p) else None,
    }
    headline = (f"Scored {to_score.height:,} applications with the {judged.published} model (holdout AUC "
                f"{summary['holdout_auc']:.3f}; logistic baseline {summary['baseline_auc']:.3f})"
                + (f"; mean probability of default {summary['mean_probability']:.1%}." if len(p) else "."))
    return JobResult(summary=summary, context=context, models={"default_model": scoring_version}, headline=headline,
                     warnings=warnings, extra={"device": xgb_device(), "challenger": judged.decision.challenger},
                     selections={"default_model": judged.verdict()})


def fit_candidates(split: Split, *, seed: int) -> list[Candidate]:
    """Tonight's candidates, both learning from the same windows (fit on train, stop early / calibrate on valid)."""
    return [Candidate("xgboost", fit_model(split, seed=seed), LOANS_FORMAT),
            Candidate("logistic baseline", fit_logistic(split), LOGISTIC_FORMAT, baseline=True)]


def select(registry: ModelRegistry, split: Split, candidates: list[Candidate],
           save: Callable[[Candidate, dict], ModelVersion]) -> Selection:
    """The one rule (nightshift.selection), judged on holdout applications newer than every model's training."""
    return compete(registry, candidates, judge=JUDGE, trained_until=split.window("valid")[1],
                   holdout_after=lambda end: split.holdout.filter(pl.col("application_date") > end),
                   score=lambda model, rows: metrics.auc(rows["defaulted"].to_numpy(), model.predict(rows)),
                   save=save, rows=_decidable_rows)


def _register(ctx: JobContext, split: Split, candidate: Candidate, extra: dict) -> ModelVersion:
    """Store tonight's winning candidate with its training window, inputs and holdout metrics."""
    model = candidate.model
    y_hold = split.holdout["defaulted"].to_numpy()
    own = {k: model.info[k] for k in ("device", "best_iteration", "trained_with") if k in model.info}
    return ctx.registry.save(
        model, candidate.fmt, run_date=ctx.run_date,
        training_window=(split.window("train")[0], split.window("valid")[1]),
        data_hash=data_hash(split.train.vstack(split.valid)), features=model.encoder.names,
        params=model.info["params"],
        metrics=metrics.binary_metrics(y_hold, model.predict(split.holdout)),
        holdout={"start": split.window("holdout")[0], "end": split.window("holdout")[1], "rows": split.holdout.height},
        extra={**own, **extra},
    )


def _score(ctx: JobContext, model: PlattScaled, version: str, to_score: pl.DataFrame) -> np.ndarray:
    """Score tonight's applications with the model in use; export the scores (person-level rows: an
    owner-only export, never a report); the probabilities."""
    p = model.predict(to_score) if to_score.height else np.array([])
    contribs = model.contributions(to_score) if to_score.height else pl.DataFrame()
    scores = pl.concat([
        to_score.select("application_id", "application_date"),
        pl.DataFrame({"probability_default": p, "risk_band": report.band_of(p) if len(p) else np.array([], str)}),
        report.top_contributions(contribs) if to_score.height else pl.DataFrame(),
    ], how="horizontal").with_columns(pl.lit(version).alias("model_version"), pl.lit(ctx.run_date).alias("run_date"))
    ctx.write_export("scores", scores)
    return p


def _decidable_rows(rows: pl.DataFrame) -> int:
    """Holdout applications an AUC can be judged on: none unless both outcomes occur."""
    return rows.height if rows["defaulted"].n_unique() == 2 else 0


def _portfolio(ctx: JobContext, scored: pl.DataFrame, p: np.ndarray, model: PlattScaled) -> tuple[list[dict], str | None]:
    """Applications and expected defaults per region and band, released through the privacy layer."""
    from nightshift.privacy import Count, Release, Sum

    regions = model.encoder.levels.get("region") or ["other"]
    known = [r for r in regions if r != "other"]
    frame = scored.select("applicant_id", "region").with_columns(
        pl.when(pl.col("region").is_in(known)).then(pl.col("region")).otherwise(pl.lit("other")).alias("region"),
        pl.Series("risk_band", report.band_of(p) if len(p) else np.array([], str)),
        pl.Series("probability_default", p),
    )
    release = Release(
        name="loans_portfolio", dataset="applicants", unit="applicant_id",
        keys={"region": list(regions), "risk_band": [b for b, _ in report.BANDS]},
        measures=[Count("applications"), Sum("expected_defaults", "probability_default", 0.0, 1.0, resolution=0.01)],
        max_rows_per_unit=PORTFOLIO_MAX_ROWS, epsilon=PORTFOLIO_EPSILON,
    )
    res = ctx.privacy.release(release, frame)
    if res.refused:
        return [], f"portfolio aggregates not published: {res.refused}"
    return res.table.to_dicts(), None
