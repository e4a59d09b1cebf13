"""The inventory job: lead-time demand quantiles → reorder points → what to order tomorrow.

Steps, all as of the run date D: daily demand history and features (sql/marts/inventory/features.sql),
a multi-quantile XGBoost model and an empirical-quantile baseline trained on the same time-based
split, the better on the holdout's pinball loss challenging the champion (the one selection rule,
`nightshift.selection.compete`: the model in use may be the baseline), an (s, S) policy per
warehouse × SKU for the fill-rate target in settings, tomorrow's order list, and a replay of the
last days of actual demand through the policy (and a naive one) to check the service it really gives.
Series the model cannot score get a clear status instead of a number: too little history →
empirical quantiles; no demand ever → no forecast, review by hand.

Inbound stock (ordered, not yet received) is our own order lists of the nights before D, replayed
from the warehouse as of D with tonight's model and rule (`inbound_stock`), never read back from what
earlier runs stored: a date gives the same orders whether or not the night before ran. What still
depends on earlier nights is declared in the manifest (`DEPENDS_ON_EARLIER_NIGHTS`). The demand
model trains on the cadence's training nights (`[retrain] inventory`, `nightshift.cadence`); the
nights between, the model chosen then is checked on tonight's holdout and plans the orders.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np
import polars as pl

from nightshift import cadence
from nightshift.jobs import JobContext, JobResult
from nightshift.jobs.inventory import demand, policy, report, simulation
from nightshift.registry import ModelVersion
from nightshift.selection import Candidate, Judge, by_format, candidate_name, compete

JUDGE = Judge("pinball", higher_is_better=False, min_rows=100)  # the one selection rule's terms
HOLDOUT_DAYS = 120  # model holdout and policy replay: the last ~4 months, unseen by training
TRAIN_EVERY = 2  # train on every 2nd origin day: neighbouring lead-time targets overlap almost fully
SPIKE_FACTOR = 10  # a day above 10x the 28-day median (and 20 units) is flagged as a spike
KEYS = ["warehouse_id", "product_id"]
# Nights of order lists replayed for the inbound stock, in lead times: orders from the older lead time
# have arrived by D, but they fill the pipeline the newer nights' decisions saw.
REPLAY_LEAD_TIMES = 2
FORMATS = {f.name: f for f in (demand.FORMAT, demand.BASELINE_FORMAT)}
INPUTS = (demand.FEATURES, demand.BASELINE_FEATURES)  # what the booster and the baseline are fed
BASELINE = "empirical quantiles (recent level)"
DEPENDS_ON_EARLIER_NIGHTS = {
    "inventory_demand champion": "the demand model in use is the registry's champion, left by the nights run before "
                                 "this one (in a backfill, possibly a later date's); tonight's challenger replaces it "
                                 "only if it beats it on the holdout (the one selection rule)",
    "training cadence": "between training nights ([retrain] inventory), the model the period's training night "
                        "chose plans the orders (its state)",
}


def _train_and_register(ctx: JobContext, feat: pl.DataFrame, holdout_days: int,
                        params: dict | None) -> tuple[demand.Forecaster | None, dict, dict, list[str], dict]:
    """Fit the booster and the baseline, pick by the one selection rule; the model to use and what to show."""
    d = ctx.run_date
    train, hold, cutoff = demand.split(feat, d, holdout_days)
    plan, kept = cadence.tonight(ctx, by_format(FORMATS), lambda meta: meta.get("features") in INPUTS)
    if not plan.trains:  # between training nights: the training night's model, checked on tonight's holdout
        quality = demand.evaluate(kept.model, hold, demand.baseline(feat, hold, cutoff))
        published = candidate_name(kept.metadata, kept.version)
        quality.update(decision=f"trained on {plan.last_trained}; it scores every night until the next "
                                f"training night ({plan.page(d)['next_training']})",
                       version=kept.version, published=published, cutoff=cutoff, cadence=plan.page(d),
                       train_rows=(kept.metadata.get("extra") or {}).get("train_rows"))
        lost = cadence.lost_to_baseline(JUDGE, published, {published: quality["pinball"],
                                                           BASELINE: quality["pinball_baseline"]}, [BASELINE])
        return kept.model, quality, {"inventory_demand": kept.version}, kept.warnings + lost, {}
    train = train.filter(pl.col("date").cast(pl.Int32) % TRAIN_EVERY == 0)
    notes: list[str] = []
    if train.height < 200 or hold.height == 0:
        notes.append(f"too little history to train the demand model ({train.height} training rows, "
                     f"{hold.height} holdout rows before {d}); empirical quantiles are used instead")
        return None, {}, {}, notes, {}
    booster = demand.fit(train, params, seed=ctx.settings.seed)
    candidates = [Candidate("xgboost quantiles", booster, demand.FORMAT),
                  Candidate(BASELINE, demand.fit_baseline(train), demand.BASELINE_FORMAT,
                            baseline=True)]
    inputs = {c.name: INPUTS[0] if c.model is booster else INPUTS[1] for c in candidates}
    p = {**demand.DEFAULT_PARAMS, **(params or {})}
    holdout_info = {"start": cutoff + timedelta(days=1), "end": d, "rows": hold.height}

    def save(c: Candidate, extra: dict) -> ModelVersion:
        q = demand.evaluate(c.model, hold)
        return ctx.registry.save(
            c.model, c.fmt, run_date=d, training_window=(train["date"].min(), cutoff), data_hash=demand.data_hash(train),
            features=inputs[c.name], params=p if c.model is booster else {"window_days": demand.BASELINE_WINDOW_DAYS},
            metrics={"pinball": q["pinball"], "coverage_95": q["coverage"]["0.95"]}, holdout=holdout_info,
            extra={**({"trained_with": booster.booster.attr("trained_with")} if c.model is booster else {}),
                   "train_rows": train.height, **extra})

    judged = compete(ctx.registry, candidates, judge=JUDGE, trained_until=cutoff, save=save,
                     holdout_after=lambda end: hold.filter(pl.col("date") > end),
                     score=lambda model, rows: demand.evaluate(model, rows)["pinball"],
                     compatible=lambda meta: meta.get("features") in inputs.values())
    quality = demand.evaluate(judged.model, hold, demand.baseline(feat, hold, cutoff))
    quality.update(decision=judged.decision.reason, version=judged.version, published=judged.published, cutoff=cutoff,
                   train_rows=train.height, cadence=plan.page(d))
    cadence.record(ctx.state, d, {"version": judged.version})
    return judged.model, quality, {"inventory_demand": judged.version}, judged.notes, {
        "inventory_demand": judged.verdict()}


def _quantiles(model: demand.Forecaster | None, rows: pl.DataFrame, empirical: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Quantiles per row from the model where it may score, else the series' empirical quantiles."""
    q = empirical.copy()
    source = np.where(np.isnan(empirical).any(axis=1), "none", "empirical").astype(object)
    if model is not None and rows.height:
        ok = (rows["days_known"] >= demand.MIN_HISTORY_DAYS).to_numpy() & rows["scale"].is_not_null().to_numpy()
        if ok.any():
            q[ok] = model.predict(rows.filter(pl.Series(ok)))
            source[ok] = "model"
    return q, list(source)


def _empirical(feat: pl.DataFrame, rows: pl.DataFrame, as_of: date) -> np.ndarray:
    """Empirical lead-time demand quantiles per series from targets complete by `as_of`."""
    return demand.baseline(feat, rows, as_of)


def order_list(table: pl.DataFrame, d: date) -> pl.DataFrame:
    """The night's orders: the policy rows with something to order, placed on D + 1, largest value first."""
    return (table.filter(pl.col("order_qty") > 0)
            .select(*KEYS, "order_qty", "order_value", "position", "reorder_point", "order_up_to",
                    "lead_time_days", "stockout_risk")
            .with_columns(pl.lit(d + timedelta(days=1)).alias("order_date"),
                          (pl.lit(d) + pl.duration(days=pl.col("lead_time_days"))).alias("arrives_on"))
            .sort("order_value", descending=True))


def in_transit(lists: list[pl.DataFrame], d: date) -> pl.DataFrame:
    """Units of the order lists of nights before D that arrive after D, per warehouse × SKU."""
    frame = pl.concat([o.select(*KEYS, "order_qty", "arrives_on") for o in lists]) if lists else pl.DataFrame(
        schema={"warehouse_id": pl.String, "product_id": pl.String, "order_qty": pl.Float64, "arrives_on": pl.Date})
    return (frame.filter(pl.col("arrives_on") > d).group_by(KEYS, maintain_order=True)
            .agg(pl.col("order_qty").sum().cast(pl.Float64).alias("inbound")))


def inbound_stock(feat: pl.DataFrame, model: demand.Forecaster | None, d: date, target: float) -> tuple[pl.DataFrame, int]:
    """Stock in transit at D: the order lists of the nights before D, replayed from the warehouse as of D.

    Each night n gets the list tonight's rule gives on n's rows, with the replayed lists before it as
    its inbound, from an empty pipeline `REPLAY_LEAD_TIMES` lead times back. The stored lists of
    earlier runs are not used: they were made with those nights' models and inbound, so they exist or
    not depending on which nights ran, and D's orders would too. `feat` carries `with_stock`.
    """
    first = max(d - timedelta(days=REPLAY_LEAD_TIMES * int(feat["lead_time_days"].max() or 1)), feat["date"].min())
    window = feat.filter(pl.col("date").is_between(first, d - timedelta(days=1)))
    # The fallback quantiles from targets complete by the first night: no night sees a later target,
    # and one computation serves every night.
    window = window.with_columns(pl.Series("fallback", _empirical(feat, window, first)))
    lists: list[pl.DataFrame] = []
    for n in pl.date_range(first, d - timedelta(days=1), eager=True):
        rows = _night_rows(window, n, in_transit(lists, n))
        q, source = _quantiles(model, rows, rows["fallback"].to_numpy())
        lists.append(order_list(_policy_table(rows, q, source, target), n))
    return in_transit(lists, d), len(lists)


def with_stock(feat: pl.DataFrame) -> pl.DataFrame:
    """Each day with its series' last counted on-hand and the day it was counted (a gap keeps the last count)."""
    counted_on = pl.when(pl.col("on_hand").is_not_null()).then(pl.col("date"))
    return feat.with_columns(pl.col("on_hand").forward_fill().over(KEYS, order_by="date").alias("on_hand_now"),
                             counted_on.forward_fill().over(KEYS, order_by="date").alias("last_seen"))


def _night_rows(feat: pl.DataFrame, n: date, inbound: pl.DataFrame) -> pl.DataFrame:
    """Night n's row per warehouse × SKU, with the units in transit (0 when none)."""
    return (feat.filter(pl.col("date") == n).join(inbound, on=KEYS, how="left")
            .with_columns(pl.col("inbound").fill_null(0.0)).sort(KEYS))


def plan(feat: pl.DataFrame, model: demand.Forecaster | None, d: date, target: float,
         inbound: pl.DataFrame) -> pl.DataFrame:
    """The policy table: one row per warehouse × SKU as of D, with tomorrow's recommended order."""
    today = _night_rows(feat, d, inbound)
    q, source = _quantiles(model, today, _empirical(feat, today, d))
    return _policy_table(today, q, source, target)


def _policy_table(today: pl.DataFrame, q: np.ndarray, source: list[str], target: float) -> pl.DataFrame:
    """The (s, S) levels, order and risks per row from its lead-time demand quantiles and where they came from."""
    lead = today["lead_time_days"].to_numpy().astype(float)
    pol = policy.policy(q, demand.QUANTILES, lead, today["unit_cost_cents"].to_numpy().astype(float),
                    today["holding_cost_rate"].to_numpy(), today["order_cost_cents"].to_numpy().astype(float), target)
    on_hand = today["on_hand_now"].fill_null(0).to_numpy().astype(float)
    position = on_hand + today["inbound"].to_numpy()
    qty = policy.order_quantity(position, pol["reorder_point"], pol["order_up_to"])
    never = (today["days_known"].to_numpy() < 7) | (today["m365"].fill_null(0).to_numpy() <= 0)
    status = np.where(never, "no demand history", np.array(source, dtype=object))
    valid = status != "no demand history"
    valid &= np.array([s != "none" for s in source])
    status = np.where(~never & ~valid, "no lead-time history", status)
    spike = (today["max28"] > SPIKE_FACTOR * today["med28"]) & (today["max28"] > 20)

    def masked(a: np.ndarray) -> list:
        return [float(x) if ok else None for x, ok in zip(a, valid, strict=True)]

    return today.select(*KEYS, "lead_time_days", "unit_cost_cents", "last_seen").with_columns(
        pl.Series("status", status.astype(str)),
        pl.Series("on_hand", on_hand),
        pl.Series("inbound", today["inbound"].to_numpy()),
        pl.Series("position", position),
        *[pl.Series(f"lt_demand_q{int(a * 100)}", masked(q[:, i])) for i, a in enumerate(demand.QUANTILES)],
        pl.Series("expected_lt_demand", masked(pol["expected_lt_demand"])),
        pl.Series("safety_stock", masked(pol["safety_stock"])),
        pl.Series("reorder_point", masked(pol["reorder_point"])),
        pl.Series("eoq", masked(pol["eoq"])),
        pl.Series("order_up_to", masked(pol["order_up_to"])),
        pl.Series("order_qty", np.where(valid, qty, 0.0)),
        pl.Series("days_of_cover", masked(policy.days_of_cover(on_hand, pol["mean_daily"]))),
        pl.Series("stockout_risk", masked(policy.stockout_risk(pol["values"], position))),
        pl.Series("recent_spike", spike.fill_null(False)),
    ).with_columns(
        pl.when(pl.col("days_of_cover").is_infinite()).then(None).otherwise(pl.col("days_of_cover")).alias("days_of_cover"),
        (pl.col("order_qty") * pl.col("unit_cost_cents") / 100).alias("order_value"),
    )


def replay(feat: pl.DataFrame, model: demand.Forecaster | None, d: date, target: float,
           days: int) -> dict | None:
    """Replay the last `days` of demand under tonight's policy rule and the naive rule."""
    start = d - timedelta(days=days - 1)
    window = feat.filter(pl.col("date") >= start - timedelta(days=30)).sort(*KEYS, "date")
    eligible = (window.filter(pl.col("date") == start, pl.col("days_known") >= demand.MIN_HISTORY_DAYS)
                .filter(pl.col("scale").is_not_null()).select(KEYS))
    window = window.join(eligible, on=KEYS, how="semi")
    n = eligible.height
    if n == 0 or model is None:
        return None
    span = days + 30
    if window.height != n * span:  # every eligible series has every day (the mart's date spine)
        return None
    hist = window["demand"].fill_null(0).to_numpy().reshape(n, span)
    rows = window.filter(pl.col("date") >= start)
    q = model.predict(rows)
    last = rows.filter(pl.col("date") == d)
    lead_row = rows["lead_time_days"].to_numpy().astype(float)
    pol = policy.policy(q, demand.QUANTILES, lead_row, rows["unit_cost_cents"].to_numpy().astype(float),
                    rows["holding_cost_rate"].to_numpy(), rows["order_cost_cents"].to_numpy().astype(float), target)
    lead = last["lead_time_days"].to_numpy()
    costs = (last["unit_cost_cents"].to_numpy().astype(float), last["holding_cost_rate"].to_numpy(),
             last["order_cost_cents"].to_numpy().astype(float))
    start_stock = window.filter(pl.col("date") == start - timedelta(days=1))["on_hand"].fill_null(0).to_numpy()
    observed = hist[:, 30:]
    sim = simulation.simulate(observed, lead, start_stock, pol["reorder_point"].reshape(n, days),
                        pol["order_up_to"].reshape(n, days), *costs)
    naive_up_to = simulation.naive_levels(hist, lead)
    naive = simulation.simulate(observed, lead, start_stock, naive_up_to - 1, naive_up_to, *costs)
    actual_value = (rows["on_hand"].fill_null(0).to_numpy().reshape(n, days) * costs[0][:, None]).sum(axis=0) / 100
    per_wh = last.select("warehouse_id").with_columns(
        pl.Series("served", (sim.served * sim.counted).sum(axis=1)),
        pl.Series("demand", ((sim.served + sim.lost) * sim.counted).sum(axis=1)),
    ).group_by("warehouse_id").agg((pl.col("served").sum() / pl.col("demand").sum()).alias("fill_rate")).sort("warehouse_id")
    return {"policy": sim.summary(), "naive": naive.summary(), "series": n, "days": days, "start": start,
            "dates": [start + timedelta(days=i) for i in range(days)], "value_policy": sim.value_by_day(),
            "value_naive": naive.value_by_day(), "value_actual": actual_value, "by_warehouse": per_wh}


def run(ctx: JobContext, *, holdout_days: int = HOLDOUT_DAYS, params: dict | None = None) -> JobResult:
    """Train, plan and check tonight's inventory policy; write orders.parquet and policy.parquet."""
    t0 = time.perf_counter()
    d, target = ctx.run_date, ctx.settings.service_level
    daily = ctx.sql("features")
    if daily.height == 0:
        raise ValueError(f"inventory: the inventory table has no rows on or before {d}; load it first "
                         "(make run loads the landing zone) or pick a later date")
    feat = with_stock(demand.add_features(daily))
    warnings: list[str] = []
    model, quality, models, notes, selections = _train_and_register(ctx, feat, holdout_days, params)
    warnings += notes
    transit, nights = inbound_stock(feat, model, d, target)
    policy = plan(feat, model, d, target, transit)
    orders = order_list(policy, d)
    ctx.write_parquet("policy", policy)
    ctx.write_parquet("orders", orders)
    sim = replay(feat, model, d, target, min(holdout_days, 120))
    if sim is None:
        warnings.append("the policy replay was skipped: no series has a model forecast for the whole window")
    elif abs(sim["policy"]["fill_rate"] - target) > 0.03:
        warnings.append(f"the replayed fill rate {sim['policy']['fill_rate']:.1%} is more than 3 points from "
                        f"the target {target:.0%}: check the demand model's coverage")
    skipped = policy.filter(pl.col("status").is_in(["no demand history", "no lead-time history"]))
    if skipped.height:
        warnings.append(f"{skipped.height} warehouse × SKU without enough demand history get no forecast "
                        "and no order; set their stock by hand: "
                        + ", ".join(f"{r['warehouse_id']}/{r['product_id']}" for r in skipped.head(10).to_dicts()))
    if nights == 0:
        warnings.append("no night before D to replay: inbound (ordered, not yet received) is taken as 0")
    context = report.context(policy, orders, quality, sim, target, nights)
    summary = {
        "service_target": target,
        "orders_tomorrow": orders.height,
        "order_value": round(float(orders["order_value"].sum()), 2),
        "skus_at_risk": context["at_risk_count"],
        "published": quality.get("published"),
        "pinball": quality.get("pinball"),
        "pinball_baseline": quality.get("pinball_baseline"),
        "coverage_95": quality.get("coverage", {}).get("0.95"),
        "fill_rate_policy": sim["policy"]["fill_rate"] if sim else None,
        "fill_rate_naive": sim["naive"]["fill_rate"] if sim else None,
    }
    headline = (f"{orders.height:,} orders for tomorrow, worth {summary['order_value']:,.0f} at unit cost; "
                f"{summary['skus_at_risk']:,} warehouse × SKU at risk of running out; demand model: "
                f"{quality.get('published') or 'none'}.")
    return JobResult(summary=summary, context=context, models=models, warnings=warnings, selections=selections,
                     headline=headline,
                     extra={"seconds": round(time.perf_counter() - t0, 2), "series": policy.height,
                            "depends_on_earlier_nights": DEPENDS_ON_EARLIER_NIGHTS,
                            "device": "cuda" if isinstance(model, demand.QuantileDemandModel) and demand.xgb_device() == "cuda"
                            else "cpu"})
