"""Channel, campaign and segment aggregates about people, all released through `nightshift.privacy`.

Every number here is a noisy count or sum of bounded person-level rows (the user is the privacy
unit); ratios (conversion, CTR, retention, revenue per user) are noisy sum / noisy count, which is
post-processing and costs nothing more. Keys are public: the calendar, the declared channel list,
fixed histogram bins, the segment ids and the company's own campaign catalogue.

ε per night: the `users` budget spread evenly over its window (budget / window_days), so the job
can publish every night of the year without being refused; `SHARES` splits it across releases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl

from nightshift.privacy import Count, Mean, Release, Sum
from nightshift.tables import CHANNELS

DATASET = "users"
# The headline (per-channel conversion and funnel) gets the largest share.
SHARES = {"channel_totals": 0.40, "daily_channel": 0.15, "new_users": 0.05, "visits_histogram": 0.05,
          "retention": 0.10, "campaigns": 0.10, "segments": 0.10, "segment_channels": 0.05}
VISIT_BINS = ("1", "2", "3-4", "5-9", "10-19", "20+")
HORIZONS = (7, 28)


def night_epsilon(settings: Any) -> float:
    """The ε one night may spend on `users`: the budget spread evenly over its window."""
    b = settings.privacy_budgets[DATASET]
    return float(b.epsilon) / float(b.window_days)


def declarations(eps: float, days: list[date], campaigns: list[str], segments: list[int]) -> dict[str, Release]:
    """The releases of one night, with public keys and contribution bounds."""
    ch = list(CHANNELS)
    e = {k: eps * v for k, v in SHARES.items()}
    return {
        # K=2: a user counts in at most two channels' totals and funnels.
        "channel_totals": Release(
            "channel_totals", DATASET, "user_id", {"channel": ch},
            # Tight clips: sensitivity is K x bound, and most users stay well inside these.
            [Count("users"), Sum("visits", "visits", 0, 10), Sum("converting_visits", "converting_visits", 0, 5),
             Sum("revenue_cents", "revenue_cents", 0, 50_000), Sum("clicked", "clicked", 0, 1),
             Sum("carted", "carted", 0, 1), Sum("purchased", "purchased", 0, 1)],
            max_rows_per_unit=2, epsilon=e["channel_totals"]),
        # K=15 user-days (per channel) over the trend window; heavier users are sampled down to 15.
        "daily_channel": Release(
            "daily_channel", DATASET, "user_id", {"day": days, "channel": ch},
            [Count("active_users"), Sum("visits", "visits", 0, 3), Sum("converting_visits", "converting_visits", 0, 2),
             Sum("revenue_cents", "revenue_cents", 0, 20_000)],
            max_rows_per_unit=15, epsilon=e["daily_channel"]),
        "new_users": Release("new_users", DATASET, "user_id", {"day": days, "channel": ch}, [Count("new_users")],
                             max_rows_per_unit=1, epsilon=e["new_users"]),
        "visits_histogram": Release("visits_histogram", DATASET, "user_id", {"bin": list(VISIT_BINS)},
                                    [Count("users")], max_rows_per_unit=1, epsilon=e["visits_histogram"]),
        "retention": Release(
            "retention", DATASET, "user_id", {"signup_channel": ch, "horizon": list(HORIZONS)},
            [Count("cohort"), Sum("retained", "retained", 0, 1)], max_rows_per_unit=2, epsilon=e["retention"]),
        "campaigns": Release(
            "campaigns", DATASET, "user_id", {"campaign_id": campaigns},
            [Count("users"), Sum("impressions", "impressions", 0, 30), Sum("clicks", "clicks", 0, 10)],
            max_rows_per_unit=3, epsilon=e["campaigns"]),
        "segments": Release(
            "segments", DATASET, "user_id", {"segment": segments},
            [Count("users"), Mean("recency_days", "recency_days", 0, 90), Mean("sessions", "sessions", 0, 60),
             Mean("purchases", "purchases", 0, 30), Mean("revenue", "revenue", 0, 2000, resolution=0.01)],
            max_rows_per_unit=1, epsilon=e["segments"]),
        "segment_channels": Release(
            "segment_channels", DATASET, "user_id", {"segment": segments, "channel": ch}, [Count("users")],
            max_rows_per_unit=1, epsilon=e["segment_channels"]),
    }


def visits_bin(sessions: pl.Expr) -> pl.Expr:
    """The public histogram bin of a user's number of visits."""
    return (pl.when(sessions <= 1).then(pl.lit("1")).when(sessions == 2).then(pl.lit("2"))
            .when(sessions <= 4).then(pl.lit("3-4")).when(sessions <= 9).then(pl.lit("5-9"))
            .when(sessions <= 19).then(pl.lit("10-19")).otherwise(pl.lit("20+")))


def ratio(num: str, den: str, name: str) -> list[pl.Expr]:
    """A noisy ratio with a first-order 95% margin; suppressed (null) when the denominator is mostly noise."""
    n, d = pl.col(num).cast(pl.Float64), pl.col(den).cast(pl.Float64)
    nm, dm = pl.col(f"{num}_moe").cast(pl.Float64), pl.col(f"{den}_moe").cast(pl.Float64)
    ok = d > 2 * dm
    r = (n / d).clip(lower_bound=0)
    return [pl.when(ok).then(r).alias(name), pl.when(ok).then((nm + r * dm) / d).alias(f"{name}_moe")]


@dataclass
class Released:
    """The released tables of one night (None where a release was refused with nothing stored)."""

    tables: dict[str, pl.DataFrame | None]
    refused: list[str]


def release_all(privacy: Any, decl: dict[str, Release], frames: dict[str, pl.DataFrame]) -> Released:
    """Release each declared table from its person-level frame; a refusal keeps the last good numbers."""
    out, refused = {}, []
    for name, rel in decl.items():
        if name not in frames:
            continue
        res = privacy.release(rel, frames[name])
        out[name] = res.table
        if res.refused:
            refused.append(f"{name}: {res.refused}" + (f" (showing the numbers of {res.run_date})" if res.stale else ""))
    return Released(out, refused)


def person_frames(sql: Any, features: pl.DataFrame, labels: pl.DataFrame | None, days: int) -> dict[str, pl.DataFrame]:
    """The person-level input of each release (never leaves the job except through the privacy layer)."""
    frames = {
        "channel_totals": sql("behavior_funnel", days=days),
        "daily_channel": sql("behavior_user_day", days=days),
        "new_users": sql("behavior_new_users", days=days),
        "retention": sql("behavior_retention", days=days),
        "campaigns": sql("behavior_campaign_users", days=days),
        "visits_histogram": features.select("user_id", visits_bin(pl.col("sessions")).alias("bin")),
    }
    if labels is not None:
        seg = labels.join(features, on="user_id").with_columns(revenue=pl.col("revenue_cents") / 100)
        frames["segments"] = seg
        shares = [f"share_{c}" for c in CHANNELS]
        main = pl.concat_list(shares).list.arg_max()
        frames["segment_channels"] = seg.select(
            "user_id", "segment",
            main.replace_strict(dict(enumerate(CHANNELS)), return_dtype=pl.String).alias("channel"))
    return frames


def channel_table(t: dict[str, pl.DataFrame | None]) -> pl.DataFrame | None:
    """Per channel: users, visits, conversion, revenue per user, funnel rates and retention, each with ±."""
    tot = t.get("channel_totals")
    if tot is None:
        return None
    out = tot.with_columns(
        *ratio("converting_visits", "visits", "conversion"),
        *ratio("revenue_cents", "users", "revenue_per_user_cents"),
        *ratio("clicked", "users", "click_rate"),
        *ratio("carted", "users", "cart_rate"),
        *ratio("purchased", "users", "purchase_rate"),
    )
    ret = t.get("retention")
    if ret is not None:
        r = ret.with_columns(*ratio("retained", "cohort", "rate"))
        for h in HORIZONS:
            part = r.filter(pl.col("horizon") == h).select(
                pl.col("signup_channel").alias("channel"), pl.col("rate").alias(f"retention_{h}d"),
                pl.col("rate_moe").alias(f"retention_{h}d_moe"))
            out = out.join(part, on="channel", how="left")
    return out


def best_channel(table: pl.DataFrame | None) -> str | None:
    """The channel with the highest released conversion (visits that led to a purchase)."""
    if table is None:
        return None
    ok = table.filter(pl.col("conversion").is_not_null())
    return ok.sort("conversion", descending=True)["channel"][0] if ok.height else None


def campaign_table(t: dict[str, pl.DataFrame | None], predicted: pl.DataFrame | None) -> pl.DataFrame | None:
    """Per campaign: noisy impressions, clicks and CTR (±), beside the model's CTR for tomorrow."""
    c = t.get("campaigns")
    if c is None:
        return None
    c = c.with_columns(*ratio("clicks", "impressions", "ctr"))
    if predicted is not None:
        c = c.join(predicted.with_columns(pl.col("predicted_ctr").cast(pl.Float64)), on="campaign_id", how="left")
    return c.sort("campaign_id")


def trend_window(run_date: date, days: int) -> list[date]:
    """The public calendar keys of the trend: the last `days` days up to the run date."""
    return [run_date - timedelta(days=i) for i in range(days - 1, -1, -1)]
