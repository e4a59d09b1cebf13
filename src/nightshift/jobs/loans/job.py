"""The loans job: train default models as of D, pick one by the selection rule, score D's applications.

Training uses only outcomes observed by D (label lag respected in `sql/marts/loans/features.sql`),
split by application date: fit on the oldest, early-stop and calibrate on the next window, judge
on the newest (the holdout no model ever saw). XGBoost and the logistic baseline compete on that
holdout by AUC (`nightshift.selection.compete`: a tie goes to the baseline); the winner challenges
the champion, scoring always uses the champion, and the page names the candidate and its version.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from nightshift import cadence
from nightshift.jobs import JobContext, JobResult
from nightshift.jobs.loans import quality, report
from nightshift.jobs.loans.features import Split, data_hash, time_split
from nightshift.jobs.loans.model import LOANS_FORMAT, LOGISTIC_FORMAT, PlattScaled, fit_logistic, fit_model
from nightshift.modeling import metrics
from nightshift.modeling.xgb import xgb_device
from nightshift.registry import ModelRegistry, ModelVersion
from nightshift.selection import Candidate, Judge, Selection, by_format, candidate_name, compete

log = logging.getLogger(__name__)
PENDING_DAYS = 30  # an application with no outcome row this long after applying is still undecided
METRIC = "auc"  # the champion/challenger metric (higher is better); settings.champion_margin applies
JUDGE = Judge(METRIC, higher_is_better=True, min_rows=100)
# Privacy: the `applicants` budget is spent in weekly releases (one every CADENCE_DAYS nights, re-served
# in between), each saving up a week's share: a year holds at most ceil(window_days / CADENCE_DAYS) of
# them, so the shares below (adding up to 1) keep a year of nights inside the budget.
CADENCE_DAYS = 7
SHARES = {"loans_portfolio": 0.25, "loans_portfolio_bands": 0.25, "loans_model_quality": 0.4, "loan_region_keys": 0.1}
COARSENED = ("Portfolio: pending applications per region and, separately, per risk band, counts only: region × "
             "band cells and a region's mean predicted risk held fewer applications than their noise.")
FORMATS = {f.name: f for f in (LOANS_FORMAT, LOGISTIC_FORMAT)}
PORTFOLIO_MAX_ROWS = 1  # K: applications one applicant may contribute to a release (more are sampled away)


# What tonight's answer takes from nights run before it (the manifest says so: not point in time).
DEPENDS_ON_EARLIER_NIGHTS = {
    "default_model champion": "applications are scored by the registry's champion, which tonight's "
                              "challenger replaces only if it beats it on the holdout",
    "training cadence": "between training nights ([retrain] loans), the model the period's training night "
                        "chose scores (its state)",
}


def run(ctx: JobContext) -> JobResult:
    """Train, judge, score and explain loan default risk for `ctx.run_date`."""
    warnings: list[str] = []
    feats = ctx.sql("features", pending_days=PENDING_DAYS)
    labelled = feats.filter(pl.col("role") == "train")
    to_score = feats.filter(pl.col("role") == "score")
    split = time_split(labelled)

    use = model_in_use(ctx, split)
    warnings += use.notes
    absent = use.model.encoder.absent
    if absent:
        warnings.append(f"the data has no {', '.join(absent)}: the model does without them (optional columns "
                        "of the loans table left out of the source)")
    compare = split.holdout
    y_cmp = compare["defaulted"].to_numpy()
    preds = {name: model.predict(compare) for name, model in use.compared.items()}
    if use.selection is None:
        aucs = {name: metrics.auc(y_cmp, p) for name, p in preds.items()}
        warnings += cadence.lost_to_baseline(JUDGE, use.published, aucs, ["logistic baseline"])
    promoted, reason = use.promoted, use.reason
    scoring_model: PlattScaled = use.model
    scoring_version = use.version

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
    eps = epsilons(ctx.settings)
    portfolio, portfolio_note = _portfolio(ctx, to_score, p, eps)
    dp_quality = _quality(ctx, compare, p_hold, eps)
    ctx.privacy.coarsened += [COARSENED, quality.COARSENED]
    warnings += [n for n in (portfolio_note, dp_quality.get("note")) if n]

    context = {
        "scoring_version": scoring_version, "published": use.published, "absent_features": absent, "challenger_version": use.challenger,
        "promoted": promoted, "decision_reason": reason, "margin": ctx.registry.margin, "metric": METRIC,
        "holdout": {"start": compare["application_date"].min(), "end": compare["application_date"].max(),
                    "applications": compare.height, "default_rate": float(y_cmp.mean())},
        "windows": {part: split.window(part) for part in ("train", "valid", "holdout")},
        "counts": {"labelled": labelled.height, "scored": to_score.height,
                   "applied_today": to_score.filter(pl.col("application_date") == ctx.run_date).height},
        "metrics_rows": report.metric_rows(y_cmp, preds), "band_rows": report.band_table(y_cmp, p_hold),
        "calibration_rows": cal_rows, "label_lag_rows": ctx.sql("label_lag").to_dicts(),
        "importance_rows": imp_rows, "drift_rows": drift_rows, "psi_flag": report.PSI_FLAG,
        "portfolio_rows": portfolio, "dp_quality": dp_quality, "cadence_days": CADENCE_DAYS,
        "cadence": use.cadence,
        "epsilons": {k: round(v, 4) for k, v in eps.items()}, "bands": [{"band": b, "from": lo} for b, lo in report.BANDS],
        "charts": {
            "roc": report.roc_chart(y_cmp, preds), "calibration": cal_chart,
            "distribution": report.score_distribution(y_cmp, p_hold, p),
            "importance": imp_chart,
            "pdp": [report.partial_dependence(scoring_model.predict, sample, f) for f in top_numeric],
        },
    }
    summary = {
        "holdout_auc": metrics.auc(y_cmp, p_hold), "baseline_auc": metrics.auc(y_cmp, preds["logistic baseline"]),
        "published": use.published, "champion": scoring_version, "promoted": promoted, "scored": to_score.height,
        "mean_probability": float(p.mean()) if len(p) else None,
    }
    headline = (f"Scored {to_score.height:,} applications with the {use.published} model (holdout AUC "
                f"{summary['holdout_auc']:.3f}; logistic baseline {summary['baseline_auc']:.3f})"
                + (f"; mean probability of default {summary['mean_probability']:.1%}." if len(p) else "."))
    return JobResult(summary=summary, context=context, models={"default_model": scoring_version}, headline=headline,
                     warnings=warnings, extra={"device": xgb_device(), "challenger": use.challenger, "depends_on_earlier_nights": DEPENDS_ON_EARLIER_NIGHTS},
                     selections={"default_model": use.selection.verdict()} if use.selection else {})


@dataclass
class InUse:
    """The model that scores tonight, how it was chosen, and what the page compares on the holdout."""

    model: PlattScaled
    version: str
    published: str
    compared: dict[str, Any]  # name -> model, each scored on tonight's holdout
    cadence: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    selection: Selection | None = None  # a training night's verdict
    challenger: str | None = None
    promoted: bool = False
    reason: str = ""


def model_in_use(ctx: JobContext, split: Split) -> InUse:
    """A training night (`[retrain] loans`) fits both candidates and judges them by the one rule;
    the nights between score with the model that night chose, beside tonight's logistic baseline."""
    baseline = Candidate("logistic baseline", fit_logistic(split), LOGISTIC_FORMAT, baseline=True)
    plan, kept = cadence.tonight(ctx, by_format(FORMATS),
                                 lambda meta: meta.get("features") == baseline.model.encoder.names)
    if not plan.trains:
        name = candidate_name(kept.metadata, kept.version)
        if name == baseline.name:  # the training night chose the baseline: its model and tonight's refit, both shown
            name = f"{name} {kept.version} (in use)"
        return InUse(kept.model, kept.version, name, {baseline.name: baseline.model, name: kept.model},
                     plan.page(ctx.run_date), kept.warnings,
                     reason=f"nothing was judged tonight: the model chosen on {plan.last_trained} scores until "
                            f"the next training night")
    candidates = fit_candidates(split, seed=ctx.settings.seed, baseline=baseline)
    judged = select(ctx.registry, split, candidates, save=lambda c, extra: _register(ctx, split, c, extra))
    cadence.record(ctx.state, ctx.run_date, {"version": judged.version})
    compared = {c.name: c.model for c in candidates}
    if judged.champion is not None and judged.champion.version != judged.decision.challenger:
        compared[f"champion {judged.champion.version}"] = judged.champion.model
    return InUse(judged.model, judged.version, judged.published, compared, plan.page(ctx.run_date), judged.notes,
                 judged, judged.decision.challenger, judged.decision.promoted, judged.decision.reason)


def fit_candidates(split: Split, *, seed: int, baseline: Candidate | None = None) -> list[Candidate]:
    """Tonight's candidates, both learning from the same windows (fit on train, stop early / calibrate on valid)."""
    return [Candidate("xgboost", fit_model(split, seed=seed), LOANS_FORMAT),
            baseline or Candidate("logistic baseline", fit_logistic(split), LOGISTIC_FORMAT, baseline=True)]


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


def epsilons(settings: Any) -> dict[str, float]:
    """ε per weekly release: its share of the budget over the most weekly releases a window can hold."""
    b = settings.privacy_budgets["applicants"]
    week = float(b.epsilon) / math.ceil(float(b.window_days) / CADENCE_DAYS)
    return {name: week * share for name, share in SHARES.items()}


def _portfolio(ctx: JobContext, scored: pl.DataFrame, p: np.ndarray,
               eps: dict[str, float]) -> tuple[dict[str, list[dict]], str | None]:
    """Pending applications per region and per risk band, released through the privacy layer.

    Regions come from the public list `privacy_public_keys.loan_regions` (or a DP key selection, made
    with the weekly release, when it is not declared); any other region is counted as "other". Risk
    bands are the fixed cut-points. Coarsened on purpose (`COARSENED`): two one-way tables of counts,
    weekly, instead of region x band cells with a mean risk each, which were below their noise.
    """
    from nightshift.privacy import Count, KeySelection, Release
    from nightshift.privacy.keys import fold_other

    frame = scored.select("applicant_id", "region").with_columns(
        pl.Series("risk_band", report.band_of(p) if len(p) else [], dtype=pl.String))
    selection = KeySelection("loan_region_keys", "applicants", "applicant_id", "region", "loan_regions",
                             epsilon=eps["loan_region_keys"])
    regions = ctx.privacy.public_keys(selection, frame, every=CADENCE_DAYS)
    releases = {
        "regions": Release("loans_portfolio", "applicants", "applicant_id", {"region": regions},
                           [Count("applications")], max_rows_per_unit=PORTFOLIO_MAX_ROWS, epsilon=eps["loans_portfolio"],
                           public_lists={"region": "loan_regions"}),
        "bands": Release("loans_portfolio_bands", "applicants", "applicant_id",
                         {"risk_band": [b for b, _ in report.BANDS]}, [Count("applications")],
                         max_rows_per_unit=PORTFOLIO_MAX_ROWS, epsilon=eps["loans_portfolio_bands"]),
    }
    folded = fold_other(frame, "region", regions)
    out, notes = {}, []
    for part, release in releases.items():
        res = ctx.privacy.release_every(release, folded, CADENCE_DAYS)
        out[part] = [] if res.table is None else res.table.to_dicts()
        if res.refused:
            notes.append(f"{release.name}: {res.refused}")
    return out, (f"portfolio aggregates: {'; '.join(notes)}" if notes else None)


def _quality(ctx: JobContext, holdout: pl.DataFrame, p_hold: np.ndarray, eps: dict[str, float]) -> dict[str, Any]:
    """The model's AUC and calibration on the holdout, from a DP band x outcome histogram (`quality`)."""
    res = ctx.privacy.release_every(quality.declaration(eps["loans_model_quality"]),
                                    quality.frame(holdout, p_hold), CADENCE_DAYS)
    if res.table is None:
        return {"note": f"DP model quality not published: {res.refused}"}
    return {"as_of": res.run_date, "headline": quality.headline(res.table).to_dicts()[0],
            "calibration": quality.calibration(res.table).to_dicts(),
            "note": f"DP model quality: {res.refused}" if res.refused else None}
