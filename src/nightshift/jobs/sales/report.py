"""The sales page's template variables: headline numbers, scorecard tables and charts."""

from __future__ import annotations

from collections import Counter

import plotly.graph_objects as go
import polars as pl

from nightshift.jobs.sales.menu import MEMBERS
from nightshift.jobs.sales.task import SeriesResult
from nightshift.reporting import charts

TOP_SERIES = 6
WORST_SERIES = 10
MENU_ROWS = 200  # the menu table lists this many series (all of them on small data)
HISTORY_SHOWN = 120  # periods of actuals drawn before each forecast


def build_context(*, results: list[SeriesResult], forecast: pl.DataFrame, frame: pl.DataFrame,
                  status: pl.DataFrame, overall: pl.DataFrame, scorecard: pl.DataFrame, past: pl.DataFrame,
                  summary: dict, timings: dict, cadence: dict) -> dict:
    """Everything `sales.html.j2` shows, as plain rows and `Chart`s (no person-level data here)."""
    kinds = Counter(r.kind for r in results)
    headline = {
        "series forecast": len(results),
        "frequency": ", ".join(f"{k} ({n})" for k, n in summary["frequencies"].items()) or "none",
        "frequency from": summary["frequency_source"],
        "frequency unknown (not forecast)": summary["unknown_frequency"],
        "not listed any more (stopped)": max(0, status.height - len(results) - summary["unknown_frequency"]),
        **{f"published {m}": kinds[m] for m in MEMBERS if kinds.get(m)},
        "baseline by design": kinds.get("baseline", 0),
        "fell back (model failed)": kinds.get("fallback", 0),
        "SARIMA orders selected tonight": sum(r.selected for r in results),
        "SARIMA warm starts": sum(r.warm for r in results),
        "backtest MASE (model)": summary["mase"],
        "backtest MASE (seasonal naive)": summary["mase_seasonal_naive"],
        "coverage 80%": summary["coverage_80"],
        "coverage 95%": summary["coverage_95"],
        "run time (s)": round(timings["total_s"], 1),
        "fit time (s)": round(timings["fit_s"], 1),
        "worker processes": timings["workers"],
    }
    return {
        "headline": headline,
        "cadence": cadence,
        "overall": overall.with_columns(pl.col(pl.Float64).round(4)).to_dicts(),
        "over_time": past.with_columns(pl.col(pl.Float64).round(4)).to_dicts(),
        "over_time_chart": _over_time_chart(past),
        "worst": _worst(scorecard),
        "menu": _menu(results, scorecard),
        "menu_rows": MENU_ROWS,
        "fallbacks": [{"series": r.key, "kind": r.kind, "model": r.forecast.model, "reason": r.reason}
                      for r in results if r.reason],
        "model_mix": [{"model": m, "series": n} for m, n in Counter(r.forecast.model for r in results).most_common()],
        "by_store": _totals(forecast, frame, "store_id"),
        "by_product": _totals(forecast, frame, "product_id"),
        "store_chart": _totals_chart(forecast, frame, "store_id"),
        "product_chart": _totals_chart(forecast, frame, "product_id"),
        "outlook": _outlook(forecast, frame),
        "series_charts": _series_charts(forecast, frame),
        "horizons": ", ".join(sorted({f"{len(r.forecast.mean)} {_PERIOD[r.freq]}s" for r in results})),
    }


def _menu(results: list[SeriesResult], scorecard: pl.DataFrame) -> list[dict]:
    """Per series: its frequency, the member published, and every member's backtest MASE side by side."""
    chosen = pl.DataFrame({"series": [r.key for r in results], "frequency": [r.freq for r in results],
                           "published": [r.forecast.model if r.kind != "fallback" else "seasonal_naive (fallback)"
                                         for r in results]}, schema={"series": pl.String, "frequency": pl.String,
                                                                     "published": pl.String})
    if scorecard.is_empty():
        return chosen.head(MENU_ROWS).to_dicts()
    cols = [c for c in (f"mase_{m}" for m in (*MEMBERS, "mean")) if c in scorecard.columns]
    return (chosen.join(scorecard.select("series", pl.col("mase").alias("mase_model"), *cols), on="series", how="left")
            .sort("series").head(MENU_ROWS).with_columns(pl.col(pl.Float64).round(3)).to_dicts())


_PERIOD = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter"}


def _worst(scorecard: pl.DataFrame) -> list[dict]:
    if scorecard.is_empty():
        return []
    return (
        scorecard.filter(pl.col("mase").is_finite())
        .sort("mase", descending=True)
        .head(WORST_SERIES)
        .select("series", "mase", pl.col("^mase_.*$"), "smape", "coverage_80", "coverage_95", "fallback_origins")
        .with_columns(pl.col(pl.Float64).round(3))
        .to_dicts()
    )


def _over_time_chart(past: pl.DataFrame) -> charts.Chart | None:
    if past.is_empty():
        return None
    x = past["run_date"].to_list()
    return charts.line(x, {"model MASE": past["mase"].to_list(), "seasonal naive MASE": past["mase_naive"].to_list(),
                           "coverage 80%": past["coverage_80"].to_list()},
                       title="Earlier nights' forecasts, scored on actuals known tonight", y_title="MASE / share")


def _per_series(forecast: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """Per series: units forecast over its horizon (with 80% bounds) and units sold in as many periods just
    before it. A period whose sales are unknown (a missing week, month or quarter) counts at the mean of
    the known ones in that span, so a gap is neither zero nor a drop."""
    ahead = forecast.group_by("series", "store_id", "product_id").agg(
        pl.col("mean").sum().alias("next"), pl.col("lower_80").sum(), pl.col("upper_80").sum(),
        pl.len().alias("periods"))
    before = (frame.sort("series", "date").join(ahead.select("series", "periods"), on="series")
              .filter(pl.int_range(pl.len()).reverse().over("series") < pl.col("periods"))
              .group_by("series").agg((pl.col("units").mean() * pl.col("periods").first()).alias("before")))
    return ahead.join(before, on="series", how="left")


def _totals(forecast: pl.DataFrame, frame: pl.DataFrame, by: str) -> list[dict]:
    """The outlook per store (or product): forecast units against the same span just before, and the change."""
    if forecast.is_empty():
        return []
    name = by.removesuffix("_id")
    return (
        _per_series(forecast, frame).group_by(by)
        .agg(pl.col("next").sum(), pl.col("before").sum(), pl.col("lower_80").sum(), pl.col("upper_80").sum(),
             pl.len().alias("series"))
        .sort(by)
        .select(pl.col(by).alias(name), pl.col("next").round(0).alias("forecast units"),
                pl.col("before").round(0).alias("units in the span before"),
                _change_pct(pl.col("next"), pl.col("before")).alias("change (%)"),
                pl.col("lower_80").round(0).alias("sum of lower 80% bounds"),
                pl.col("upper_80").round(0).alias("sum of upper 80% bounds"), "series")
        .to_dicts()
    )


def _change_pct(now: pl.Expr, then: pl.Expr) -> pl.Expr:
    """The change in percent, one decimal; none where there was nothing before to compare with."""
    return pl.when(then > 0).then(((now / then - 1) * 100).round(1)).otherwise(None)


def _outlook(forecast: pl.DataFrame, frame: pl.DataFrame) -> dict:
    """The whole outlook in three numbers for the headline: units ahead, units before, series."""
    if forecast.is_empty():
        return {"next": 0.0, "before": None, "series": 0}
    per = _per_series(forecast, frame)
    before = per["before"].sum()
    return {"next": float(per["next"].sum()), "before": float(before) if before else None, "series": per.height}


def headline(context: dict, summary: dict) -> str:
    """The sales answer in a sentence: units ahead against the span before, and how good past forecasts were."""
    o = context["outlook"]
    if not o["series"]:
        return "No sales series to forecast tonight."
    rel = o["next"] / o["before"] - 1 if o["before"] else None
    change = "" if rel is None else f", {abs(rel):.1%} {'above' if rel > 0 else 'below'} the same span just before"
    quality = (f"; in the backtest their error was {summary['mase']:.2f} times that of repeating last season "
               "(MASE)" if summary.get("mase") is not None else "")
    return (f"{o['next']:,.0f} units forecast over the next {context['horizons']} across {o['series']:,} "
            f"store × product series{change}{quality}.")


def _totals_chart(forecast: pl.DataFrame, frame: pl.DataFrame, by: str) -> charts.Chart | None:
    rows = _totals(forecast, frame, by)
    if not rows:
        return None
    name = by.removesuffix("_id")
    return charts.bar([r[name] for r in rows], {"forecast units": [r["forecast units"] for r in rows],
                                                "units in the span before": [r["units in the span before"]
                                                                             for r in rows]},
                      title=f"Forecast units over the horizon by {name}, against the span just before",
                      y_title="units")


def _series_charts(forecast: pl.DataFrame, frame: pl.DataFrame) -> list[charts.Chart]:
    """The biggest series by forecast volume: recent actuals, forecast, 80% and 95% bands."""
    if forecast.is_empty():
        return []
    top = (forecast.group_by("series").agg(pl.col("mean").sum()).sort("mean", descending=True)
           .head(TOP_SERIES)["series"].to_list())
    hist = frame.filter(pl.col("series").is_in(top)).sort("date").group_by("series", maintain_order=True).tail(
        HISTORY_SHOWN)
    out = []
    for key in top:
        f = forecast.filter(pl.col("series") == key).sort("date")
        h = hist.filter(pl.col("series") == key)
        x = f["date"].to_list()
        fig = go.Figure([
            go.Scatter(x=h["date"].to_list(), y=h["units"].to_list(), mode="lines", name="actual"),
            go.Scatter(x=x, y=f["upper_95"].to_list(), mode="lines", line=dict(width=0), showlegend=False,
                       hoverinfo="skip"),
            go.Scatter(x=x, y=f["lower_95"].to_list(), mode="lines", line=dict(width=0), fill="tonexty",
                       fillcolor="rgba(31,119,180,0.15)", name="95% interval"),
            go.Scatter(x=x, y=f["upper_80"].to_list(), mode="lines", line=dict(width=0), showlegend=False,
                       hoverinfo="skip"),
            go.Scatter(x=x, y=f["lower_80"].to_list(), mode="lines", line=dict(width=0), fill="tonexty",
                       fillcolor="rgba(31,119,180,0.3)", name="80% interval"),
            go.Scatter(x=x, y=f["mean"].to_list(), mode="lines", name=f"forecast ({f['model'][0]})"),
        ])
        fig.update_yaxes(title=f"units per {_PERIOD[h['freq'][0]] if h.height else 'period'}")
        out.append(charts.chart(fig, title=f"{key}"))
    return out
