"""The behavior job: which channels and campaigns bring users who stay, click and buy; what to show next.

One night, as of the run date:
1. segments — k-means on per-user recency, frequency, monetary value and channel mix, ids kept
   stable against the last saved centroids (`behavior_segments`);
2. click-through — XGBoost on ad impressions vs the campaign-CTR baseline, the better on the
   holdout challenging the champion (the one selection rule), predicted CTR per campaign for
   tomorrow with the model in use (`ctr.py`);
3. recommendations — item-to-item cosine on co-carts/co-purchases, written to
   `recommendations.parquet` (holds user ids: an operational output, never on the page), with an
   offline hit-rate check against popularity (`behavior_recs`);
4. channel, campaign and segment aggregates about people — only through the privacy layer
   (`behavior_channels`); the page is built from released tables and model metrics only.
The job reads canonical columns only; mapping a user's own column names is the sources' job.
"""

from __future__ import annotations

import time
from typing import Any

import polars as pl

from nightshift import cadence
from nightshift.jobs import JobContext, JobResult
from nightshift.jobs.behavior import channels, ctr, event_history, recommendations, report, segments
from nightshift.modeling import has_gpu
from nightshift.modeling.xgb import xgb_device
from nightshift.privacy.keys import fold_other
from nightshift.selection import by_format, candidate_name

WINDOW_DAYS = 90  # trends, segment features and recommendations look back this far
CTR_DAYS = 60  # impressions the click model learns from (history features look back further)
CTR_HISTORY_DAYS = event_history.DAYS  # the history features' window: the event history kept between nights
CTR_MAX_ROWS = 1_000_000  # a hash sample beyond this: enough rows for a stable model, bounded time
ACTIVE_DAYS = 28  # users seen in the last 28 days get personal recommendations
TOP_N = 10


# What tonight's answer takes from nights run before it (the manifest says so: not point in time).
DEPENDS_ON_EARLIER_NIGHTS = {
    "ctr champion": "click-through is scored by the registry's champion, which tonight's challenger "
                    "replaces only if it beats it on the holdout",
    "segment ids": "matched to the centroids saved by the last night before D, so a segment keeps "
                   "its id",
    "training cadence": "between training nights ([retrain] behavior), the model the period's training night "
                        "chose scores (its state)",
}


def _segments(ctx: JobContext, features: pl.DataFrame, warnings: list[str]) -> segments.Segmentation | None:
    if features.height < 20:
        warnings.append(f"segments skipped: only {'a handful of' if features.height else 'no'} active users")
        return None
    previous, prev_day = segments.load_previous(ctx.state, ctx.run_date)
    plan = cadence.plan(ctx.state, ctx.settings.cadence(ctx.job), ctx.run_date)
    keep = None if plan.trains else segments.kept_k(previous, prev_day, plan.last_trained)
    seg = segments.segment(features, previous, seed=ctx.settings.seed,
                           k_range=(keep, keep) if keep else segments.K_RANGE)
    seg.kept_k, seg.previous_day = keep is not None, prev_day
    segments.save(ctx.state, ctx.run_date, seg)
    return seg


def _ctr(ctx: JobContext, warnings: list[str]) -> dict[str, Any] | None:
    rows = ctx.sql("impressions", days=CTR_DAYS, history_days=CTR_HISTORY_DAYS, max_rows=CTR_MAX_ROWS)
    if rows.is_empty():
        warnings.append("click-through model skipped: no ad impressions (events need event_type "
                        "'ad_impression' with a campaign_id)")
        return None
    plan, kept = cadence.tonight(ctx, by_format(ctr.FORMATS))
    try:
        if plan.trains:
            out = ctr.fit_and_register(rows, ctx.run_date, ctx.registry)
            cadence.record(ctx.state, ctx.run_date, {"version": out["scorer_version"]})
        else:
            out = ctr.score_kept(rows, ctx.run_date, kept, candidate_name(kept.metadata, kept.version))
    except ValueError as e:
        warnings.append(f"click-through model skipped: {e}")
        return None
    warnings += out["notes"]
    out["cadence"] = plan.page(ctx.run_date)
    out["predicted"] = ctr.predict_tomorrow(out["scorer"], out["holdout"], ctx.run_date)
    return out


def _recommendations(ctx: JobContext, features: pl.DataFrame, warnings: list[str]) -> dict[str, Any] | None:
    inter = ctx.sql("interactions", days=WINDOW_DAYS)
    if inter.is_empty():
        warnings.append("recommendations skipped: no add_to_cart or purchase events with a product_id")
        return None
    model = recommendations.fit(inter)
    active = features.filter(pl.col("recency_days") < ACTIVE_DAYS)["user_id"].to_numpy()
    per_user = recommendations.recommend(model, active, TOP_N)
    per_item = recommendations.similar_items(model, TOP_N)
    frame = pl.concat([
        per_user.select(pl.lit("user").alias("kind"), "user_id", pl.lit(None, pl.String).alias("for_product_id"),
                        "rank", "product_id", "score", "source"),
        per_item.select(pl.lit("product").alias("kind"), pl.lit(None, pl.Int64).alias("user_id"), "for_product_id",
                        "rank", "product_id", "score", pl.lit("similar items").alias("source")),
    ])
    path = ctx.write_export("recommendations", frame)  # user ids: an owner-only export, not a report
    return {"evaluation": recommendations.evaluate(inter, ctx.run_date, k=TOP_N),
            "file": str(path.relative_to(ctx.settings.home)),
            "products": len(model.items)}


def run(ctx: JobContext) -> JobResult:
    """Run the behavior job for `ctx.run_date`."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    warnings: list[str] = []

    def lap(name: str) -> None:
        nonlocal t0
        timings[name] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()

    features = ctx.sql("user_features", days=WINDOW_DAYS)
    lap("features")
    seg = _segments(ctx, features, warnings)
    lap("segments")
    model = _ctr(ctx, warnings)
    lap("ctr_model")
    rec = _recommendations(ctx, features, warnings)
    lap("recommendations")

    # -- aggregates about people: the privacy layer only --------------------------------------------
    frames = channels.person_frames(ctx.sql)
    eps = channels.epsilons(ctx.settings)
    # The campaign keys: the declared catalogue, or a DP key selection made with the release it keys (every
    # CADENCES nights; in between the stored selection is served, so the stored release is re-served too).
    campaigns = ctx.privacy.public_keys(channels.campaign_selection(eps), frames["campaign_window"],
                                        every=channels.CADENCES["campaign_keys"])
    frames["campaign_window"] = fold_other(frames["campaign_window"], "campaign_id", campaigns)
    decl = channels.declarations(eps, ctx.run_date, campaigns)
    released = channels.release_all(ctx.privacy, decl, frames)
    ctx.privacy.coarsened.append(channels.COARSENED)
    warnings += [f"privacy budget refused {r}" for r in released.refused]
    t = released.tables
    series = channels.trend(ctx.warehouse.cursor, ctx.job, ctx.run_date, WINDOW_DAYS)
    lap("privacy")

    table = channels.channel_table(t)
    best = channels.best_channel(table)
    camp = channels.campaign_table(t, model["predicted"] if model else None)
    seg_rows, seg_chart = report.segment_rows(segments.profiles(seg, features) if seg else None, segments.describe,
                                              WINDOW_DAYS)
    context: dict[str, Any] = {
        "window_days": WINDOW_DAYS,
        "agg_days": channels.AGG_DAYS,
        "retention_days": channels.RETENTION_DAYS,
        "cadence_days": channels.CADENCE_DAYS,
        "campaign_cadence_days": channels.CAMPAIGN_CADENCE_DAYS,
        "window_as_of": report.window_as_of(ctx.run_date, released.carried.get("channel_window"), channels.AGG_DAYS),
        "campaigns_as_of": report.window_as_of(ctx.run_date, released.carried.get("campaign_window"),
                                               channels.AGG_DAYS),
        "carried": [{"release": k, "released on": d.isoformat()} for k, d in released.carried.items()],
        "night_epsilon": channels.night_epsilon(ctx.settings),
        "campaign_keys": "declared" if ctx.settings.privacy_public_keys.get("campaigns") else "selected",
        "epsilons": {k: round(v, 4) for k, v in eps.items()},
        "best_channel": best,
        "channel_rows": report.channel_rows(table),
        "channel_charts": report.channel_charts(table),
        "trend_charts": report.trend_charts(series, ctx.run_date, WINDOW_DAYS),
        "trend_nights": report.nights_shown(series.get("day_totals")),
        "histogram_chart": report.histogram_chart(t.get("visits_histogram"), channels.VISIT_BINS),
        "campaign_rows": report.campaign_rows(camp),
        "campaign_chart": report.campaign_chart(camp),
        "segment_rows": seg_rows,
        "segment_chart": seg_chart,
        "segments": None if seg is None else {
            "k": seg.k, "silhouettes": [{"k": k, "silhouette": round(v, 3)} for k, v in sorted(seg.silhouettes.items())],
            "matched": seg.matched, "previous_day": seg.previous_day, "kept_k": seg.kept_k},
        "ctr": None,
        "recs": None,
    }
    summary: dict[str, Any] = {"best_channel": best, "epsilon_night": round(channels.night_epsilon(ctx.settings), 5),
                              "trend_nights": report.nights_shown(series.get("day_totals"))}
    models: dict[str, str] = {}
    selections: dict[str, dict[str, Any]] = {}
    if model:
        ev, d = model["evaluation"], model["decision"]
        context["ctr"] = {
            "model": {k: round(ev["model"][k], 4) for k in ("log_loss", "auc", "brier", "mean_predicted")},
            "baseline": {k: round(ev["baseline"][k], 4) for k in ("log_loss", "auc", "brier", "mean_predicted")},
            "challenger": model["version"], "scorer": model["scorer_version"], "promoted": d and d.promoted,
            "published": model["published"], "model_label": model["model_label"], "cadence": model["cadence"],
            "reason": d and d.reason, "holdout_days": ctr.HOLDOUT_DAYS, "margin": d and d.margin,
            "calibration_rows": report.calibration_rows(ev["calibration"]),
            "calibration_chart": report.calibration_chart(ev["calibration"]),
        }
        summary |= {"ctr_log_loss": round(ev["model"]["log_loss"], 4),
                    "ctr_baseline_log_loss": round(ev["baseline"]["log_loss"], 4),
                    "ctr_auc": round(ev["model"]["auc"], 4)}
        models["ctr"] = model["scorer_version"]
        if model["selection"] is not None:  # a training night judged the candidates
            selections["ctr"] = model["selection"].verdict()
    if rec:
        e = rec["evaluation"]
        context["recs"] = {"file": rec["file"], "top_n": TOP_N, "active_days": ACTIVE_DAYS,
                           "test_days": recommendations.TEST_DAYS,
                           "metrics": [{"method": "item-to-item (cosine)", "hit rate@10": _r(e.get("item_item_hit_rate")),
                                        "coverage": _r(e.get("item_item_coverage"))},
                                       {"method": "popularity", "hit rate@10": _r(e.get("popularity_hit_rate")),
                                        "coverage": _r(e.get("popularity_coverage"))}] if e else []}
        summary |= {"recs_hit_rate_at_10": _r(e.get("item_item_hit_rate")),
                    "popularity_hit_rate_at_10": _r(e.get("popularity_hit_rate"))}
    if seg:
        summary["segments"] = seg.k
    lap("report")
    headline = f"The channel whose users did best: {best}." + (
        f" Click-through: {model['published']} (holdout log loss {summary['ctr_log_loss']:.3f}, "
        f"campaign rates {summary['ctr_baseline_log_loss']:.3f})." if model else "")
    return JobResult(summary=summary, context=context, models=models, warnings=warnings, selections=selections,
                     headline=headline,
                     extra={"timings_s": timings, "device": xgb_device() if has_gpu() else "cpu", "depends_on_earlier_nights": DEPENDS_ON_EARLIER_NIGHTS})


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)
