"""Demo inventory: one row per warehouse, SKU and day, with demand a quantile model can learn.

Demand (`ordered`) follows the sales patterns (a level per SKU and warehouse, trend, a weekly
profile, a yearly cycle, promotion spells, overdispersed counts) plus rare huge spikes. Lead
times vary by warehouse (and a little by SKU). On-hand evolves under a crude (s, Q) rule of the
"upstream" planner: it reorders Q when the inventory position falls to s, with s set from the
trailing mean demand and a safety factor that is too thin for some series, so stock-outs happen
when on-hand runs dry (unmet demand is lost; `ordered` still records it). One extra SKU is
listed only in the last days with no demand yet: the "no demand history" case.

Vectorised over series; the replenishment loop runs over days only (state depends on yesterday).
Product ids share the sales generator's format (`P0000`, ...), so the first SKUs match sales
products and the rest do not: the job must cope with both.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from nightshift.demo import DemoSize

WAREHOUSE_LEAD_TIMES = (3, 7, 12, 5, 10, 4, 14, 6, 9, 2)  # base lead time (days) per warehouse
PROMO_RATE = 0.02  # share of days that start a promotion spell (spells last 4–10 days)
SPIKE_RATE = 0.0015  # share of series-days with a huge one-off order (a B2B customer, a glitch)
NEW_SKU_DAYS = 3  # the extra, newly listed SKU appears for this many final days


def _promotions(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    """Promotion spells per SKU: random starts, each lasting 4–10 days (bool SKU × day grid)."""
    starts = rng.random((n, days)) < PROMO_RATE
    length = rng.integers(4, 11, size=(n, days))
    promo = np.zeros((n, days), dtype=bool)
    for k in range(10):  # shifted ORs, one pass per possible day of a spell
        mask = starts & (length > k)
        promo[:, k:] |= mask[:, : days - k] if k else mask
    return promo


def _demand_means(rng: np.random.Generator, n_w: int, n_s: int, days: int, start: date) -> dict[str, np.ndarray]:
    """Expected daily demand per series (warehouse-major) and the pieces it is built from."""
    n = n_w * n_s
    wh_of = np.repeat(np.arange(n_w), n_s)
    sku_of = np.tile(np.arange(n_s), n_w)
    popularity = rng.lognormal(np.log(14), 0.8, size=n_s)
    wh_scale = rng.lognormal(0, 0.3, size=n_w)
    level = popularity[sku_of] * wh_scale[wh_of] * rng.lognormal(0, 0.15, size=n)

    t = np.arange(days)
    day = np.datetime64(start) + t
    weekday = (day.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
    day_of_year = (day - day.astype("datetime64[Y]")).astype(np.int64)

    weekly_base = np.array([0.9, 0.85, 0.9, 1.0, 1.15, 1.3, 0.9])
    weekly = 1 + rng.uniform(0.5, 1.3, size=(n_s, 1)) * (weekly_base - 1)
    weekly /= weekly.mean(axis=1, keepdims=True)
    trend = rng.normal(0.12, 0.18, size=n_s)
    yearly_amp = rng.uniform(0.1, 0.35, size=n_s)
    yearly_phase = rng.uniform(0, 2 * np.pi, size=n_s)
    lift = rng.uniform(1.5, 2.3, size=n_s)
    promo = _promotions(rng, n_s, days)

    mean = (
        level[:, None]
        * np.clip(1 + trend[sku_of][:, None] * t[None, :] / 365.0, 0.3, None)
        * weekly[sku_of][:, weekday]
        * (1 + yearly_amp[sku_of][:, None] * np.sin(2 * np.pi * day_of_year[None, :] / 365.25
                                                     + yearly_phase[sku_of][:, None]))
        * np.where(promo[sku_of], lift[sku_of][:, None], 1.0)
    )
    return {"mean": np.clip(mean, 0.05, None), "level": level, "wh_of": wh_of, "sku_of": sku_of,
            "promo": promo[sku_of], "trend": trend[sku_of], "lift": lift[sku_of]}


def _replenish(demand: np.ndarray, lead: np.ndarray, safety: np.ndarray, cover_days: np.ndarray) -> dict[str, np.ndarray]:
    """Run the upstream (s, Q) planner over days: on-hand, receipts and lost sales per series × day."""
    n, days = demand.shape
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(demand, axis=1)], axis=1)
    first_mean = demand[:, :28].mean(axis=1) + 0.5
    on_hand = np.ceil(first_mean * (lead + cover_days / 2)).astype(np.int64)
    arrivals = np.zeros((n, days + int(lead.max()) + 1), dtype=np.int64)
    pipeline = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    out_on_hand = np.empty((n, days), dtype=np.int64)
    out_received = np.empty((n, days), dtype=np.int64)
    for t in range(days):
        received = arrivals[:, t]
        pipeline -= received
        available = on_hand + received
        served = np.minimum(demand[:, t], available)
        on_hand = available - served
        out_on_hand[:, t], out_received[:, t] = on_hand, received
        lo = max(0, t - 27)
        trailing = (cum[:, t + 1] - cum[:, lo]) / (t + 1 - lo)
        reorder_point = trailing * lead * (1 + safety)
        order = np.where(on_hand + pipeline <= reorder_point, np.ceil(trailing * cover_days + 1), 0).astype(np.int64)
        arrivals[rows, t + lead] += order  # an order placed tonight is received `lead` days later
        pipeline += order
    return {"on_hand": out_on_hand, "received": out_received}


def generate(rng: np.random.Generator, start: date, end: date, size: DemoSize) -> dict[str, pl.DataFrame]:
    """The `inventory` table for [start, end] plus planted truth (series profiles, spikes, promotions)."""
    days = (end - start).days + 1
    n_w, n_s = size.warehouses, size.skus
    warehouses = np.array([f"W{i + 1:02d}" for i in range(n_w)])
    products = np.array([f"P{j:04d}" for j in range(n_s)])
    m = _demand_means(rng, n_w, n_s, days, start)
    n = n_w * n_s
    wh_of, sku_of = m["wh_of"], m["sku_of"]

    dispersion = rng.uniform(6, 25, size=n)[:, None]
    demand = rng.poisson(rng.gamma(dispersion, m["mean"] / dispersion)).astype(np.int64)
    spikes = rng.random((n, days)) < SPIKE_RATE
    spike_factor = rng.uniform(8, 20, size=(n, days))
    demand = np.where(spikes, np.ceil(demand * spike_factor + 10 * spike_factor).astype(np.int64), demand)

    base_lead = np.array([WAREHOUSE_LEAD_TIMES[i % len(WAREHOUSE_LEAD_TIMES)] for i in range(n_w)])
    lead = np.maximum(1, base_lead[wh_of] + rng.integers(-1, 2, size=n))
    safety = rng.uniform(-0.1, 0.6, size=n)  # some planners keep too little: stock-outs
    cover_days = rng.integers(10, 29, size=n)
    state = _replenish(demand, lead, safety, cover_days)

    unit_cost = rng.lognormal(np.log(1800), 0.7, size=n_s).round().clip(150, 50_000).astype(np.int64)
    holding_rate = rng.uniform(0.15, 0.35, size=n_w).round(3)
    order_cost = (rng.uniform(20, 90, size=n_w) * 100).round().astype(np.int64)

    si, di = np.nonzero(np.ones((n, days), dtype=bool))
    frame = pl.DataFrame(
        {
            "date": (np.datetime64(start) + di).astype("datetime64[D]"),
            "warehouse_id": warehouses[wh_of[si]],
            "product_id": products[sku_of[si]],
            "on_hand": state["on_hand"][si, di],
            "received": state["received"][si, di],
            "ordered": demand[si, di],
            "lead_time_days": lead[si].astype(np.int32),
            "unit_cost_cents": unit_cost[sku_of[si]],
            "holding_cost_rate": holding_rate[wh_of[si]],
            "order_cost_cents": order_cost[wh_of[si]],
        }
    ).with_columns(pl.col("date").cast(pl.Date))

    # The newly listed SKU: first delivery on its first day, no demand yet.
    new_days = min(NEW_SKU_DAYS, days)
    new_product = f"P{n_s:04d}"
    new_dates = pl.date_range(end - timedelta(days=new_days - 1), end, eager=True)
    new_rows = pl.DataFrame(
        {
            "date": new_dates,
            "warehouse_id": [warehouses[0]] * new_days,
            "product_id": [new_product] * new_days,
            "on_hand": [60] * new_days,
            "received": [60] + [0] * (new_days - 1),
            "ordered": [0] * new_days,
            "lead_time_days": [int(base_lead[0])] * new_days,
            "unit_cost_cents": [2500] * new_days,
            "holding_cost_rate": [float(holding_rate[0])] * new_days,
            "order_cost_cents": [int(order_cost[0])] * new_days,
        }
    )
    inventory = (
        pl.concat([frame, new_rows.cast(frame.schema)])
        .cast({"lead_time_days": pl.Int32})
        .sort("date", "warehouse_id", "product_id")
    )

    truth_series = pl.DataFrame(
        {
            "warehouse_id": np.append(warehouses[wh_of], warehouses[0]),
            "product_id": np.append(products[sku_of], new_product),
            "lead_time_days": np.append(lead, base_lead[0]).astype(np.int32),
            "level": np.append(m["level"], 0.0),
            "planner_safety": np.append(safety, np.nan),
            "stockout_days": np.append((state["on_hand"] == 0).sum(axis=1), 0),
            "is_new": np.append(np.zeros(n, dtype=bool), True),
        }
    )
    spike_rows = pl.DataFrame(
        {
            "date": (np.datetime64(start) + np.nonzero(spikes)[1]).astype("datetime64[D]"),
            "warehouse_id": warehouses[wh_of[np.nonzero(spikes)[0]]],
            "product_id": products[sku_of[np.nonzero(spikes)[0]]],
            "ordered": demand[spikes],
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    pi, pd_ = np.nonzero(m["promo"][:n_s])  # the first n_s series are warehouse 0: one row per SKU
    promotions = pl.DataFrame(
        {"date": (np.datetime64(start) + pd_).astype("datetime64[D]"), "product_id": products[pi]}
    ).with_columns(pl.col("date").cast(pl.Date))
    return {"inventory": inventory,
            "_truth": {"series": truth_series, "spikes": spike_rows, "promotions": promotions}}
