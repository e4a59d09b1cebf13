"""The inventory page's variables: tables as lists of dicts and Plotly charts (no HTML here)."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from nightshift.jobs.inventory import demand
from nightshift.reporting import charts

PAGE_ROWS = 200  # the page lists at most this many rows per table; the Parquet files have them all


def _rows(frame: pl.DataFrame, digits: int = 2) -> list[dict[str, Any]]:
    floats = [c for c, t in frame.schema.items() if t == pl.Float64]
    return frame.head(PAGE_ROWS).with_columns(pl.col(floats).round(digits)).to_dicts()


def _quality(quality: dict[str, Any]) -> tuple[list[dict[str, Any]], charts.Chart | None]:
    if not quality:
        return [], None
    rows = []
    for q in map(str, demand.QUANTILES):
        rows.append({
            "quantile": q,
            "pinball model": quality["pinball_by_q"][q],
            "pinball baseline": quality.get("pinball_baseline_by_q", {}).get(q),
            "coverage model": quality["coverage"][q],
            "coverage baseline": quality.get("coverage_baseline", {}).get(q),
        })
    series = {"model": [r["pinball model"] for r in rows]}
    if quality.get("pinball_baseline_by_q"):
        series["empirical baseline"] = [r["pinball baseline"] for r in rows]
    chart = charts.bar([r["quantile"] for r in rows], series, title="Pinball loss by quantile on the holdout (lower is better)",
                       y_title="units")
    return rows, chart


def _value_chart(sim: dict[str, Any]) -> charts.Chart:
    x = [d.isoformat() for d in sim["dates"]]
    fig = go.Figure([
        go.Scatter(x=x, y=np.round(sim["value_policy"], 2).tolist(), mode="lines", name="recommended policy (replay)"),
        go.Scatter(x=x, y=np.round(sim["value_naive"], 2).tolist(), mode="lines", name="naive policy (replay)"),
        go.Scatter(x=x, y=np.round(sim["value_actual"], 2).tolist(), mode="lines", name="actual on-hand",
                   line=dict(dash="dot")),
    ])
    fig.update_yaxes(title="inventory value")
    return charts.chart(fig, "Inventory value over the replayed days")


def context(policy: pl.DataFrame, orders: pl.DataFrame, quality: dict[str, Any], sim: dict[str, Any] | None,
            target: float, inbound_nights: int) -> dict[str, Any]:
    """Template variables for reporting/templates/inventory.html.j2."""
    at_risk = (policy.filter(pl.col("days_of_cover").is_not_null(),
                             (pl.col("days_of_cover") < pl.col("lead_time_days")) | (pl.col("on_hand") <= 0))
               .sort("stockout_risk", descending=True, nulls_last=True))
    quality_rows, quality_chart = _quality(quality)
    headline: dict[str, Any] = {
        "service level target (fill rate)": target,
        "orders for tomorrow": orders.height,
        "order value": round(float(orders["order_value"].sum()), 2) if orders.height else 0.0,
        "SKUs at risk": at_risk.height,
    }
    if quality:
        headline["pinball loss: model"] = quality["pinball"]
        if quality.get("pinball_baseline") is not None:
            headline["pinball loss: baseline"] = quality["pinball_baseline"]
        headline["95% quantile coverage"] = quality["coverage"]["0.95"]
    sim_rows: list[dict[str, Any]] = []
    if sim:
        headline["replayed fill rate: policy"] = sim["policy"]["fill_rate"]
        headline["replayed fill rate: naive"] = sim["naive"]["fill_rate"]
        for name in ("policy", "naive"):
            s = sim[name]
            sim_rows.append({"policy": "recommended (s, S)" if name == "policy" else "naive: up to last month's average",
                             "fill rate": s["fill_rate"], "target": target, "stock-out days": s["stockout_days"],
                             "stock-out events": s["stockout_events"], "lost units": s["lost_units"],
                             "orders": s["orders_placed"], "avg inventory value": round(s["avg_inventory_value"], 2),
                             "holding cost": round(s["holding_cost"], 2), "ordering cost": round(s["ordering_cost"], 2),
                             "total cost": round(s["total_cost"], 2)})
    statuses = policy.group_by("status").len().sort("status").to_dicts()
    return {
        "headline": headline,
        "orders": _rows(orders.select("warehouse_id", "product_id", "order_qty", "order_value", "position",
                                      "reorder_point", "order_up_to", "arrives_on", "stockout_risk")),
        "orders_total": orders.height,
        "at_risk": _rows(at_risk.select("warehouse_id", "product_id", "on_hand", "inbound", "days_of_cover",
                                        "lead_time_days", "stockout_risk", "order_qty")),
        "at_risk_count": at_risk.height,
        "policy_rows": _rows(policy.select("warehouse_id", "product_id", "status", "lead_time_days", "on_hand",
                                           "inbound", "expected_lt_demand", "safety_stock", "reorder_point", "eoq",
                                           "order_qty", "days_of_cover", "stockout_risk", "recent_spike")),
        "policy_total": policy.height,
        "statuses": statuses,
        "spikes": _rows(policy.filter(pl.col("recent_spike")).select("warehouse_id", "product_id", "status")),
        "quality": quality_rows,
        "quality_chart": quality_chart,
        "decision": quality.get("decision"),
        "cadence": quality.get("cadence"),
        "model_version": quality.get("version"),
        "published": quality.get("published"),
        "holdout_rows": quality.get("rows"),
        "cutoff": quality.get("cutoff"),
        "sim": sim_rows,
        "sim_days": sim["days"] if sim else None,
        "sim_series": sim["series"] if sim else None,
        "sim_by_warehouse": sim["by_warehouse"].to_dicts() if sim else [],
        "value_chart": _value_chart(sim) if sim else None,
        "inbound_nights": inbound_nights,
        "page_rows": PAGE_ROWS,
    }
