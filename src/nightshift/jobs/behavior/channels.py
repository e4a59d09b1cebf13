"""Channel, campaign and segment aggregates about people, all released through `nightshift.privacy`.

Every number here is a noisy count or sum of bounded person-level rows (the user is the privacy
unit); ratios (conversion, CTR, retention, revenue per user) are noisy sum / noisy count, which is
post-processing and costs nothing more. Keys are public: the calendar, the declared channel list,
fixed histogram bins and the campaign catalogue (`privacy_public_keys.campaigns`, or a DP key
selection when it is not declared; other campaigns are counted as "other").

Segments are not released here: they are fitted on the same users, so a segment id is not a public
key (removing one user can move every centroid). Their profiles are exact, team-only figures
(`segments.profiles`), kept out of the shareable tier and spending no ε.

Two kinds of release, because re-releasing a long window every night burns the budget on noise:
- the *day* release (`DAY_SHARES`): each night releases only its own day's active users over all
  channels together (keys day=[run date], K=1 user-day). The trend is the stack of those stored
  nightly releases (read back from the ledger by `behavior_history`), never re-noised.
- *window* releases (`WINDOW_SHARES`): the last `AGG_DAYS` days (retention: cohorts of the last
  `RETENTION_DAYS`), released by the privacy layer's `release_every` at most once every
  `CADENCES[name]` nights with that many nights' share of ε, and re-served from the ledger in between
  (free, and in the shareable tier like any release). Fewer, larger releases: the margin of error
  shrinks with ε, so one weekly release at 7x ε is 7x more precise than seven nightly ones.
ε: the `users` budget spread evenly over its window (budget / window_days a night), split by the
shares below, which add up to 1, so a year of nights (and at most ceil(365/cadence) releases of each
window release) fits the budget exactly.

What was coarsened so that most numbers read at ε 12 a year (`COARSENED`, shown on the page):
- per-channel numbers are window releases only; the nightly release is one number (active users over
  all channels): one channel on one day gets too thin a slice of a yearly budget to read;
- new users per day are not released (about a dozen a day is below any noise such a budget allows);
  signups per channel are the retention cohorts' sizes;
- the channel window asks five noisy sums, not seven (each sum splits the release's ε): visits are in
  the visits histogram, and conversion needs buyers, not purchases;
- campaigns are released every 28 days over their 28 days: a week's clicks per campaign were below
  their noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from nightshift.jobs.behavior import history
from nightshift.privacy import Count, KeySelection, Release, Sum
from nightshift.tables import CHANNELS

DATASET = "users"
AGG_DAYS = 28  # window aggregates: channel totals, funnel, campaigns, visits histogram
RETENTION_DAYS = 84  # signup cohorts: 28-day retention needs cohorts at least 28 days old
CADENCE_DAYS = 7  # the weekly window releases
CAMPAIGN_CADENCE_DAYS = 28  # campaigns: one release per 28-day window, so that clicks per campaign read
# Shares of the budget (day: of each night's ε; window: of each release's saved-up ε); they add up to 1.
DAY_SHARES = {"day_totals": 0.20}
# The headline (channel totals: users, conversion, funnel) gets the most. campaign_keys is spent only
# when the campaign list is not declared (a DP key selection).
WINDOW_SHARES = {"channel_window": 0.46, "retention_cohorts": 0.14, "visits_histogram": 0.02,
                 "campaign_window": 0.14, "campaign_keys": 0.04}
CADENCES = {"channel_window": CADENCE_DAYS, "retention_cohorts": CADENCE_DAYS, "visits_histogram": CADENCE_DAYS,
            "campaign_window": CAMPAIGN_CADENCE_DAYS, "campaign_keys": CAMPAIGN_CADENCE_DAYS}
DAY_COLUMNS = {"day_totals": ["day", "active_users", "active_users_moe"]}
VISIT_BINS = ("1", "2", "3-4", "5-9", "10-19", "20+")
HORIZONS = (7, 28)
COARSENED = ("Daily numbers are one count over all channels (active users); per-channel numbers are released "
             f"over {AGG_DAYS} days every {CADENCE_DAYS} nights, with five noisy sums instead of seven, and "
             f"campaigns over {AGG_DAYS} days every {CAMPAIGN_CADENCE_DAYS} nights; new users per day are no "
             "longer released. Why: each release gets a thin slice of a yearly budget, and one channel "
             "or one campaign on one day (or one week) was below its noise.")


def night_epsilon(settings: Any) -> float:
    """The ε one night may spend on `users`: the budget spread evenly over its window."""
    b = settings.privacy_budgets[DATASET]
    return float(b.epsilon) / float(b.window_days)


def epsilons(settings: Any) -> dict[str, float]:
    """ε per release: the day release spends its nightly share; a window release saves up its cadence's.

    A window release spends share x budget / ceil(window_days / cadence): at most that many can fall
    in any budget window when they are `cadence` nights apart, so the year's total stays in budget.
    """
    b = settings.privacy_budgets[DATASET]
    night = night_epsilon(settings)
    return {**{k: night * v for k, v in DAY_SHARES.items()},
            **{k: float(b.epsilon) / math.ceil(float(b.window_days) / CADENCES[k]) * v
               for k, v in WINDOW_SHARES.items()}}


def campaign_selection(eps: dict[str, float]) -> KeySelection:
    """The DP key selection of campaigns, used when `privacy_public_keys.campaigns` is not declared."""
    return KeySelection("campaign_keys", DATASET, "user_id", "campaign_id", "campaigns", max_keys_per_unit=1,
                        epsilon=eps["campaign_keys"])


def declarations(eps: dict[str, float], run_date: date, campaigns: list[str]) -> dict[str, Release]:
    """The releases of one night, with public keys and contribution bounds; `campaigns` ends in "other"."""
    ch = list(CHANNELS)
    day = [run_date]
    return {
        # K=1 user-day: a user counts once in tonight's day, whatever their channels.
        "day_totals": Release("day_totals", DATASET, "user_id", {"day": day}, [Count("active_users")],
                              max_rows_per_unit=1, epsilon=eps["day_totals"]),
        # K=1: each user counts in one of their channels (a salted-hash choice), so one person moves
        # each number by at most its clip. Conversion = users who bought in the channel / users.
        "channel_window": Release(
            "channel_window", DATASET, "user_id", {"channel": ch},
            [Count("users"), Sum("revenue_cents", "revenue_cents", 0, 20_000), Sum("clicked", "clicked", 0, 1),
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
            max_rows_per_unit=1, epsilon=eps["campaign_window"], public_lists={"campaign_id": "campaigns"}),
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
    # Window releases re-served from an earlier night by `release_every`: name -> that night
    carried: dict[str, date] = field(default_factory=dict)


def release_all(privacy: Any, decl: dict[str, Release], frames: dict[str, pl.DataFrame]) -> Released:
    """Release tonight's day table, and each window table through `release_every` (made when due, else the
    stored one re-served, free); a refusal keeps the last good numbers."""
    out: dict[str, pl.DataFrame | None] = {}
    refused: list[str] = []
    carried: dict[str, date] = {}
    for name, rel in decl.items():
        if name in DAY_SHARES:
            res = privacy.release(rel, frames[name])
        else:
            res = privacy.release_every(rel, frames[name], CADENCES[name])
        out[name] = res.table
        if res.refused:
            refused.append(f"{name}: {res.refused}" + (f" (showing the numbers of {res.run_date})" if res.stale else ""))
        elif res.reused and res.run_date != privacy.run_date:
            carried[name] = res.run_date
    return Released(out, refused, carried)


def person_frames(sql: Any) -> dict[str, pl.DataFrame]:
    """The person-level input of each release (never leaves the job except through the privacy layer)."""
    funnel = sql("funnel", days=AGG_DAYS)
    per_user = funnel.group_by("user_id").agg(pl.col("visits").sum().alias("sessions"))
    frames = {
        "day_totals": sql("user_day", days=1),
        "channel_window": funnel,
        "retention_cohorts": sql("retention", days=RETENTION_DAYS),
        "campaign_window": sql("campaign_users", days=AGG_DAYS),
        "visits_histogram": per_user.select("user_id", visits_bin(pl.col("sessions")).alias("bin")),
    }
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

