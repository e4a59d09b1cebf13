"""Charts and tables for the behavior page, built only from released (noisy) tables and model metrics.

Nothing here sees a person-level frame: inputs are the privacy layer's tables (values with their
95% margins of error) and model evaluation numbers, so the page cannot leak a user id or a raw count.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl

from nightshift.reporting import charts, number

COLOUR = "#636efa"
AVG_NIGHTS = 7  # the trend line averages the stored releases of this many nights
AVG_MIN_NIGHTS = 4  # ... drawn once at least this many of them ran


def _num(v: Any, digits: int = 3) -> Any:
    return None if v is None else round(float(v), digits)


def pm(v: Any, moe: Any, digits: int = 3, scale: float = 1.0) -> str:
    """A value with its margin of error, as text: '12.3 ± 4.5' (or 'suppressed')."""
    if v is None:
        return "suppressed"
    # The pages' one number rule: a noisy share clipped to exactly 0 reads "0", not "0.000".
    return f"{number(float(v) * scale, digits)} ± {number(float(moe or 0) * scale, digits)}"


def nights_shown(day_series: pl.DataFrame | None) -> int:
    """How many nights have a stored one-day release in the trend."""
    return 0 if day_series is None else day_series["day"].n_unique()


def window_as_of(run_date: date, carried: date | None, agg_days: int) -> dict[str, Any]:
    """The dates of the window aggregates shown: tonight's release, or the stored one re-served."""
    made = carried or run_date
    return {"released": made.isoformat(), "start": (made - timedelta(days=agg_days - 1)).isoformat(),
            "end": made.isoformat(), "carried": bool(carried)}


def trend_charts(series: dict[str, pl.DataFrame | None], run_date: date, days: int) -> list[charts.Chart]:
    """Daily active users (all channels) from the stored nightly releases, each point with its ± as an error bar.

    Every calendar day of the window is on the x axis; a day whose night did not run (no stored
    release) is a gap in the line, never filled in.
    """
    daily = series.get("day_totals")
    if daily is None:
        return []
    calendar = pl.DataFrame({"day": [run_date - timedelta(days=i) for i in range(days - 1, -1, -1)]})
    part = calendar.join(daily, on="day", how="left").sort("day")
    x = [d.isoformat() for d in part["day"]]
    value = part["active_users"].cast(pl.Float64)
    fig = go.Figure([
        go.Scatter(x=x, y=value.to_list(), mode="markers", name="nightly release", marker=dict(size=5, color=COLOUR),
                   error_y=dict(type="data", array=part["active_users_moe"].to_list(), thickness=0.6, width=2)),
        # Averaging stored releases is post-processing (free): independent noise shrinks ~1/sqrt(n).
        go.Scatter(x=x, y=value.rolling_mean(window_size=AVG_NIGHTS, min_samples=AVG_MIN_NIGHTS).to_list(),
                   mode="lines", name=f"{AVG_NIGHTS}-night average", connectgaps=False,
                   line=dict(color=COLOUR, width=2)),
    ])
    fig.update_xaxes(range=[calendar["day"][0].isoformat(), run_date.isoformat()])
    return [charts.chart(fig, f"Active users per day, all channels — nightly releases ± 95%; line: "
                              f"{AVG_NIGHTS}-night average")]


def channel_charts(table: pl.DataFrame | None) -> list[charts.Chart]:
    """Conversion, revenue per user, funnel and retention per channel, with error bars."""
    if table is None:
        return []
    t = table.sort("channel")
    x = t["channel"].to_list()
    out = [
        charts.bar(x, {"conversion": t["conversion"].to_list()}, "Conversion: share of the channel's users who bought",
                   "share of users", errors={"conversion": t["conversion_moe"].to_list()}),
        charts.bar(x, {"revenue per user": (t["revenue_per_user_cents"] / 100).to_list()},
                   "Revenue per user (noisy sum / noisy count)", "currency units",
                   errors={"revenue per user": (t["revenue_per_user_cents_moe"] / 100).to_list()}),
        charts.bar(x, {"saw an ad and clicked": t["click_rate"].to_list(), "added to cart": t["cart_rate"].to_list(),
                       "purchased": t["purchase_rate"].to_list()},
                   "Funnel per channel: share of visiting users reaching each step", "share of users",
                   errors={"saw an ad and clicked": t["click_rate_moe"].to_list(),
                           "added to cart": t["cart_rate_moe"].to_list(),
                           "purchased": t["purchase_rate_moe"].to_list()}),
    ]
    if "retention_7d" in t.columns:
        out.append(charts.bar(
            x, {"7-day": t["retention_7d"].to_list(), "28-day": t["retention_28d"].to_list()},
            "Retention per signup-channel cohort", "share of cohort",
            errors={"7-day": t["retention_7d_moe"].to_list(), "28-day": t["retention_28d_moe"].to_list()}))
    return out


def channel_rows(table: pl.DataFrame | None) -> list[dict[str, Any]]:
    """One row per channel for the page's table, each number with its ±."""
    if table is None:
        return []
    rows = []
    for r in table.sort("conversion", descending=True, nulls_last=True).iter_rows(named=True):
        rows.append({
            "channel": r["channel"],
            "users": pm(r["users"], r["users_moe"], 0),
            "buyers": pm(r["purchased"], r["purchased_moe"], 0),
            "conversion": pm(r["conversion"], r["conversion_moe"]),
            "revenue per user": pm(r["revenue_per_user_cents"], r["revenue_per_user_cents_moe"], 2, 0.01),
            "7-day retention": pm(r.get("retention_7d"), r.get("retention_7d_moe")),
            "28-day retention": pm(r.get("retention_28d"), r.get("retention_28d_moe")),
        })
    return rows


def histogram_chart(hist: pl.DataFrame | None, bins: tuple[str, ...]) -> charts.Chart | None:
    """Users by number of visits in the window (public bins), with error bars."""
    if hist is None:
        return None
    h = hist.with_columns(pl.col("bin").replace_strict({b: i for i, b in enumerate(bins)}).alias("_o")).sort("_o")
    return charts.bar(h["bin"].to_list(), {"users": h["users"].to_list()}, "Users by number of visits in the window",
                      "users", errors={"users": h["users_moe"].to_list()})


def campaign_rows(table: pl.DataFrame | None) -> list[dict[str, Any]]:
    """One row per campaign: noisy impressions, clicks, CTR and the model's CTR for tomorrow."""
    if table is None:
        return []
    return [{
        "campaign": r["campaign_id"],
        "impressions": pm(r["impressions"], r["impressions_moe"], 0),
        "clicks": pm(r["clicks"], r["clicks_moe"], 0),
        "CTR": pm(r["ctr"], r["ctr_moe"]),
        "predicted CTR tomorrow": _num(r.get("predicted_ctr")),
    } for r in table.iter_rows(named=True)]


def campaign_chart(table: pl.DataFrame | None) -> charts.Chart | None:
    """Observed (noisy) CTR per campaign with error bars, beside tomorrow's predicted CTR."""
    if table is None:
        return None
    series = {"observed CTR (noisy)": table["ctr"].to_list()}
    errors = {"observed CTR (noisy)": table["ctr_moe"].to_list()}
    if "predicted_ctr" in table.columns:
        series["predicted CTR tomorrow"] = table["predicted_ctr"].to_list()
    return charts.bar(table["campaign_id"].to_list(), series, "Click-through rate per campaign", "CTR", errors=errors)


def calibration_chart(calib: pl.DataFrame) -> charts.Chart:
    """Reliability diagram of the click model on the holdout (mean prediction vs observed rate)."""
    fig = go.Figure([
        go.Scatter(x=[0, float(calib["p_max"].max())], y=[0, float(calib["p_max"].max())], mode="lines",
                   name="perfect", line=dict(dash="dot", color="grey")),
        go.Scatter(x=calib["mean_predicted"].to_list(), y=calib["observed_rate"].to_list(), mode="lines+markers",
                   name="model", error_y=dict(type="data", array=(1.96 * calib["observed_se"]).to_list())),
    ])
    fig.update_xaxes(title="mean predicted CTR")
    fig.update_yaxes(title="observed CTR")
    return charts.chart(fig, "Calibration on the holdout week (deciles of prediction)")


def calibration_rows(calib: pl.DataFrame) -> list[dict[str, Any]]:
    """Calibration deciles without their row counts (counts of people's actions stay off the page)."""
    return [{"decile": int(r["bin"]) + 1, "mean predicted": _num(r["mean_predicted"], 4),
             "observed": _num(r["observed_rate"], 4), "gap": _num(r["gap"], 4)} for r in calib.iter_rows(named=True)]


def segment_rows(seg: pl.DataFrame | None, describe: Any,
                 window_days: int) -> tuple[list[dict[str, Any]], charts.Chart | None]:
    """Segment profiles in plain words from exact averages (team page only), and a size chart."""
    if seg is None:
        return [], None
    rows = []
    for r in seg.iter_rows(named=True):
        profile = {k: r[k] for k in ("recency_days", "sessions", "revenue", "purchases")}
        rows.append({
            "segment": r["segment"], "in plain words": describe(profile, window_days, r["top_channel"]),
            "users": r["users"], "days since last visit": _num(r["recency_days"], 1),
            "visits": _num(r["sessions"], 1), "purchases": _num(r["purchases"], 2),
            "revenue per user": _num(r["revenue"], 2),
        })
    chart = charts.bar([f"segment {i}" for i in seg["segment"]], {"users": seg["users"].to_list()},
                       "Segment sizes", "users")
    return rows, chart
