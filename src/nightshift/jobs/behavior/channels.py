"""Channel, campaign and segment aggregates about people, all released through `nightshift.privacy`.

Every number here is a noisy count or sum of bounded person-level rows (the user is the privacy
unit); ratios (conversion, CTR, retention, revenue per user) are noisy sum / noisy count, which is
post-processing and costs nothing more. Keys are public: the calendar, the declared channel list,
fixed histogram bins, the segment ids and the company's own campaign catalogue.

Two kinds of release, because re-releasing a long window every night burns the budget on noise:
- *day* releases (`DAY_SHARES`): each night releases only its own day (keys day=[run date] x
  channels, K=1 user-day). The trend is the stack of those stored nightly releases (read back
  from the ledger by `behavior_history`), never re-noised.
- *window* releases (`WINDOW_SHARES`): the last `AGG_DAYS` days (retention: cohorts of the last
  `RETENTION_DAYS`), released at most once every `CADENCE_DAYS` nights with that many nights' share
  of ε, and re-served from the ledger in between. Fewer, larger releases: the margin of error
  shrinks with ε, so one weekly release at 7x ε is 7x more precise than seven nightly ones.
ε: the `users` budget spread evenly over its window (budget / window_days a night), split by the
shares below, which add up to 1, so a year of nights (and at most ceil(365/7) window releases)
fits the budget exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

from nightshift.jobs.behavior import history
from nightshift.privacy import Count, Mean, Release, Sum
from nightshift.tables import CHANNELS

DATASET = "users"
AGG_DAYS = 28  # window aggregates: channel totals, funnel, campaigns, visits histogram
RETENTION_DAYS = 84  # signup cohorts: 28-day retention needs cohorts at least 28 days old
CADENCE_DAYS = 7  # a window release is made at most once a week
# Shares of one night's ε. The headline (channel totals: users, conversion, funnel) gets the most.
DAY_SHARES = {"channel_day": 0.22, "new_users_day": 0.06}
WINDOW_SHARES = {"channel_window": 0.36, "retention_cohorts": 0.14, "campaign_window": 0.12,
                 "segment_profiles": 0.06, "segment_channels": 0.02, "visits_histogram": 0.02}
DAY_COLUMNS = {"channel_day": ["day", "channel", "active_users", "active_users_moe", "visits", "visits_moe",
                               "purchases", "purchases_moe", "revenue_cents", "revenue_cents_moe"],
               "new_users_day": ["day", "channel", "new_users", "new_users_moe"]}
VISIT_BINS = ("1", "2", "3-4", "5-9", "10-19", "20+")
HORIZONS = (7, 28)


def night_epsilon(settings: Any) -> float:
    """The ε one night may spend on `users`: the budget spread evenly over its window."""
    b = settings.privacy_budgets[DATASET]
    return float(b.epsilon) / float(b.window_days)


def epsilons(settings: Any) -> dict[str, float]:
    """ε per release: a day release spends its nightly share; a window release saves up CADENCE nights'.

    A window release spends share x budget / ceil(window_days / CADENCE_DAYS): at most that many can
    fall in any budget window when they are CADENCE_DAYS apart, so the year's total stays in budget.
    """
    b = settings.privacy_budgets[DATASET]
    night = night_epsilon(settings)
    per_window_release = float(b.epsilon) / math.ceil(float(b.window_days) / CADENCE_DAYS)
    return {**{k: night * v for k, v in DAY_SHARES.items()},
            **{k: per_window_release * v for k, v in WINDOW_SHARES.items()}}


def declarations(eps: dict[str, float], run_date: date, campaigns: list[str], segments: list[int]) -> dict[str, Release]:
    """The releases of one night, with public keys and contribution bounds."""
    ch = list(CHANNELS)
    day = [run_date]
    return {
        # K=1 user-day: a user counts in one channel of tonight's day; clips are per user-day.
        "channel_day": Release(
            "channel_day", DATASET, "user_id", {"day": day, "channel": ch},
            [Count("active_users"), Sum("visits", "visits", 0, 2), Sum("purchases", "purchases", 0, 1),
             Sum("revenue_cents", "revenue_cents", 0, 5_000)],
            max_rows_per_unit=1, epsilon=eps["channel_day"]),
        "new_users_day": Release("new_users_day", DATASET, "user_id", {"day": day, "channel": ch},
                                 [Count("new_users")], max_rows_per_unit=1, epsilon=eps["new_users_day"]),
        # K=1: each user counts in one of their channels (a salted-hash choice), so one person moves
        # each number by at most its clip. Conversion = users who bought in the channel / users.
        "channel_window": Release(
            "channel_window", DATASET, "user_id", {"channel": ch},
            [Count("users"), Sum("visits", "visits", 0, 6), Sum("purchases", "purchases", 0, 3),
             Sum("revenue_cents", "revenue_cents", 0, 20_000), Sum("clicked", "clicked", 0, 1),
             Sum("carted", "carted", 0, 1), Sum("purchased", "purchased", 0, 1)],
            max_rows_per_unit=1, epsilon=eps["channel_window"]),
        "visits_histogram": Release("visits_histogram", DATASET, "user_id", {"bin": list(VISIT_BINS)},
                                    [Count("users")], max_rows_per_unit=1, epsilon=eps["visits_histogram"]),
        "retention_cohorts": Release(
            "retention_cohorts", DATASET, "user_id", {"signup_channel": ch, "horizon": list(HORIZONS)},
            [Count("cohort"), Sum("retained", "retained", 0, 1)], max_rows_per_unit=2,
            epsilon=eps["retention_cohorts"]),
        # CTR only needs the two sums; K=1 user-campaign and tight clips keep the clicks readable.
        "campaign_window": Release(
            "campaign_window", DATASET, "user_id", {"campaign_id": campaigns},
            [Sum("impressions", "impressions", 0, 10), Sum("clicks", "clicks", 0, 2)],
            max_rows_per_unit=1, epsilon=eps["campaign_window"]),
        "segment_profiles": Release(
            "segment_profiles", DATASET, "user_id", {"segment": segments},
            [Count("users"), Mean("recency_days", "recency_days", 0, 90), Mean("sessions", "sessions", 0, 60),
             Mean("purchases", "purchases", 0, 30), Mean("revenue", "revenue", 0, 2000, resolution=0.01)],
            max_rows_per_unit=1, epsilon=eps["segment_profiles"]),
        "segment_channels": Release(
            "segment_channels", DATASET, "user_id", {"segment": segments, "channel": ch}, [Count("users")],
            max_rows_per_unit=1, epsilon=eps["segment_channels"]),
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
    # Window releases re-served from an earlier night: name -> (its run date, its ε)
    carried: dict[str, tuple[date, float]] = field(default_factory=dict)


def _columns(rel: Release) -> list[str]:
    return [*rel.keys, *(c for m in rel.measures for c in (m.name, f"{m.name}_moe"))]


def release_all(privacy: Any, decl: dict[str, Release], frames: dict[str, pl.DataFrame]) -> Released:
    """Release tonight's day tables, and each window table when due; a refusal keeps the last good numbers.

    A window release that is not due (made fewer than CADENCE_DAYS nights ago) is re-served as
    stored, untouched: no new noise, no new ε.
    """
    out: dict[str, pl.DataFrame | None] = {}
    refused: list[str] = []
    carried: dict[str, tuple[date, float]] = {}
    cur = privacy.warehouse.cursor
    for name, rel in decl.items():
        if name not in frames:
            continue
        if name in WINDOW_SHARES:
            last = history.latest(cur, privacy.job, name, privacy.run_date, _columns(rel), rel.max_rows_per_unit)
            if not history.due(last, privacy.run_date, CADENCE_DAYS):
                out[name], carried[name] = last.table, (last.run_date, last.epsilon)
                continue
        res = privacy.release(rel, frames[name])
        out[name] = res.table
        if res.refused:
            refused.append(f"{name}: {res.refused}" + (f" (showing the numbers of {res.run_date})" if res.stale else ""))
    return Released(out, refused, carried)


def person_frames(sql: Any, features: pl.DataFrame, labels: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    """The person-level input of each release (never leaves the job except through the privacy layer)."""
    funnel = sql("funnel", days=AGG_DAYS)
    per_user = funnel.group_by("user_id").agg(pl.col("visits").sum().alias("sessions"))
    frames = {
        "channel_day": sql("user_day", days=1),
        "new_users_day": sql("new_users", days=1),
        "channel_window": funnel,
        "retention_cohorts": sql("retention", days=RETENTION_DAYS),
        "campaign_window": sql("campaign_users", days=AGG_DAYS),
        "visits_histogram": per_user.select("user_id", visits_bin(pl.col("sessions")).alias("bin")),
    }
    if labels is not None:
        # Segments are defined on the k-means features (their own look-back); one row per user.
        seg = labels.join(features, on="user_id").with_columns(revenue=pl.col("revenue_cents") / 100)
        frames["segment_profiles"] = seg
        shares = [f"share_{c}" for c in CHANNELS]
        main = pl.concat_list(shares).list.arg_max()
        frames["segment_channels"] = seg.select(
            "user_id", "segment",
            main.replace_strict(dict(enumerate(CHANNELS)), return_dtype=pl.String).alias("channel"))
    return frames


def trend(cur: Any, job: str, run_date: date, days: int) -> dict[str, pl.DataFrame | None]:
    """The stored nightly day releases of the last `days` nights (gaps where no night ran)."""
    return {name: history.stored_series(cur, job, name, run_date, days, cols) for name, cols in DAY_COLUMNS.items()}


def channel_table(t: dict[str, pl.DataFrame | None]) -> pl.DataFrame | None:
    """Per channel: users, visits, conversion, revenue per user, funnel rates and retention, each with ±."""
    tot = t.get("channel_window")
    if tot is None:
        return None
    out = tot.with_columns(
        *ratio("purchased", "users", "conversion"),
        *ratio("revenue_cents", "users", "revenue_per_user_cents"),
        *ratio("clicked", "users", "click_rate"),
        *ratio("carted", "users", "cart_rate"),
        *ratio("purchased", "users", "purchase_rate"),
    )
    ret = t.get("retention_cohorts")
    if ret is not None:
        r = ret.with_columns(*ratio("retained", "cohort", "rate"))
        for h in HORIZONS:
            part = r.filter(pl.col("horizon") == h).select(
                pl.col("signup_channel").alias("channel"), pl.col("rate").alias(f"retention_{h}d"),
                pl.col("rate_moe").alias(f"retention_{h}d_moe"))
            out = out.join(part, on="channel", how="left")
    return out


def best_channel(table: pl.DataFrame | None) -> str | None:
    """The channel with the highest released conversion (share of its users who bought)."""
    if table is None:
        return None
    ok = table.filter(pl.col("conversion").is_not_null())
    return ok.sort("conversion", descending=True)["channel"][0] if ok.height else None


def campaign_table(t: dict[str, pl.DataFrame | None], predicted: pl.DataFrame | None) -> pl.DataFrame | None:
    """Per campaign: noisy impressions, clicks and CTR (±), beside the model's CTR for tomorrow."""
    c = t.get("campaign_window")
    if c is None:
        return None
    c = c.with_columns(*ratio("clicks", "impressions", "ctr"))
    if predicted is not None:
        c = c.join(predicted.with_columns(pl.col("predicted_ctr").cast(pl.Float64)), on="campaign_id", how="left")
    return c.sort("campaign_id")


def trend_window(run_date: date, days: int) -> list[date]:
    """The public calendar keys of the trend: the last `days` days up to the run date."""
    return [run_date - timedelta(days=i) for i in range(days - 1, -1, -1)]
