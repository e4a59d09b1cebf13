"""Demo `users` and `events`: channels, sessions, ad campaigns, carts and purchases with planted truth.

What is planted (and returned under `"_truth"` for tests):
- channels differ in retention (signup channel) and purchase propensity (session channel);
  `referral` converts clearly best;
- four behaviour segments per user (loyal buyers, browsers, occasional buyers, lapsing users)
  with different visit rates, lifetimes, spend and channel mix;
- campaigns with different click-through; clicks also depend on the user, device and hour, so a
  user's own click history predicts their next click;
- products in groups with a long-tail popularity; users buy mostly from their favourite groups,
  which gives co-purchase structure for item-to-item recommendations;
- weekly seasonality in signups and visits.
Everything is drawn as whole numpy arrays (one element per user, session or event), so the
"large" size (660k users, ~50M events) needs no Python loop over rows.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl

from nightshift.tables import CHANNELS, DEVICES

# Session channel purchase multipliers: referral is the planted best converter.
PURCHASE_MULT = {"organic": 1.0, "search": 1.15, "social": 0.7, "email": 1.1, "partner": 0.85, "referral": 3.0}
# Signup channel lifetime multipliers (retention).
RETENTION_MULT = {"organic": 1.0, "search": 0.9, "social": 0.6, "email": 1.4, "partner": 0.8, "referral": 1.5}
SIGNUP_WEIGHTS = {"organic": 0.28, "search": 0.25, "social": 0.2, "email": 0.1, "partner": 0.09, "referral": 0.08}
CLICK_CHANNEL = {"organic": 0.0, "search": 0.2, "social": 0.35, "email": 0.1, "partner": -0.2, "referral": 0.0}
WEEKDAY = np.array([0.95, 0.9, 0.9, 0.95, 1.05, 1.3, 1.25])  # Monday..Sunday
COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "PL")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")


# The planted segments. Columns: share, visit rate per active day, mean lifetime (days),
# purchase prob per carted item, carts per session, quantity extra, click logit shift, channel mix.
SEGMENTS = {
    "loyal_buyers": dict(share=0.18, rate=0.4, life=400.0, buy=0.4, carts=2.0, qty=1.5, click=0.2,
                         mix=(0.5, 0.1, 0.05, 0.15, 0.1, 0.1)),
    "browsers": dict(share=0.32, rate=0.6, life=300.0, buy=0.02, carts=0.4, qty=0.0, click=0.6,
                     mix=(0.1, 0.1, 0.65, 0.05, 0.05, 0.05)),
    "occasional": dict(share=0.30, rate=0.05, life=400.0, buy=0.5, carts=1.2, qty=0.3, click=-0.3,
                       mix=(0.2, 0.55, 0.05, 0.05, 0.1, 0.05)),
    "lapsing": dict(share=0.20, rate=0.6, life=4.0, buy=0.05, carts=0.5, qty=0.0, click=0.0,
                    mix=(0.2, 0.15, 0.15, 0.05, 0.35, 0.1)),
}
SEGMENT_NAMES = tuple(SEGMENTS)


def _products(size_users: int) -> int:
    return int(np.clip(size_users // 15, 60, 2000))


def _campaigns(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = 10
    ids = np.array([f"cmp_{i + 1:02d}" for i in range(n)])
    ctr = np.array([0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.14])
    weight = rng.dirichlet(np.full(n, 3.0))
    return ids, ctr, weight


def _choice_by_row(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One categorical draw per element of `rows`, using probability row `probs[rows]` (vectorised)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(rows))
    return (u[:, None] > cum[rows]).sum(axis=1).clip(max=probs.shape[1] - 1)


def generate(rng: np.random.Generator, start: date, end: date, size) -> dict:
    """Users who sign up in [start, end] and their events, plus planted truth under `_truth`."""
    n_days = (end - start).days + 1
    n_users = int(size.users)
    day0 = np.datetime64(start, "D")
    weekday0 = start.weekday()

    # -- users -------------------------------------------------------------------------------------
    seg_share = np.array([s["share"] for s in SEGMENTS.values()])
    seg = rng.choice(len(SEGMENTS), n_users, p=seg_share / seg_share.sum())
    ch_w = np.array([SIGNUP_WEIGHTS[c] for c in CHANNELS])
    signup_ch = rng.choice(len(CHANNELS), n_users, p=ch_w / ch_w.sum())
    day_w = (1.0 + 0.6 * np.arange(n_days) / n_days) * WEEKDAY[(weekday0 + np.arange(n_days)) % 7]
    signup_day = np.sort(rng.choice(n_days, n_users, p=day_w / day_w.sum()))
    # Eight-digit ids, unique, in no relation to signup order (so an id says nothing about a user).
    user_ids = (10_000_000 + np.arange(n_users, dtype=np.int64) * 7 + rng.integers(0, 7, n_users))[rng.permutation(n_users)]
    life_mean = np.array([s["life"] for s in SEGMENTS.values()])[seg] * \
        np.array([RETENTION_MULT[c] for c in CHANNELS])[signup_ch]
    lifetime = np.ceil(rng.exponential(life_mean)).astype(np.int64)
    span = np.minimum(lifetime, n_days - signup_day)  # active days inside the window, >= 1
    span = np.maximum(span, 1)
    rate = np.array([s["rate"] for s in SEGMENTS.values()])[seg] * rng.lognormal(0.0, 0.3, n_users)
    user_click = rng.normal(0.0, 0.7, n_users) + np.array([s["click"] for s in SEGMENTS.values()])[seg]
    device_pref = rng.choice(len(DEVICES), n_users, p=[0.6, 0.3, 0.1])

    # -- sessions: one on the signup day, then Poisson over the active span, thinned by weekday -----
    n_extra = rng.poisson(rate * (span - 1).clip(min=0) * 1.0)
    s_user = np.concatenate([np.arange(n_users), np.repeat(np.arange(n_users), n_extra)])
    s_day = np.concatenate([signup_day, np.repeat(signup_day + 1, n_extra)
                            + (rng.random(n_extra.sum()) * np.repeat((span - 1).clip(min=0), n_extra)).astype(np.int64)])
    keep = np.ones(len(s_user), bool)
    keep[n_users:] = rng.random(len(s_user) - n_users) < WEEKDAY[(weekday0 + s_day[n_users:]) % 7] / WEEKDAY.max()
    s_user, s_day = s_user[keep], s_day[keep]
    key = np.unique(s_user.astype(np.int64) * (n_days + 1) + s_day)  # at most one session per user-day
    s_user, s_day = key // (n_days + 1), key % (n_days + 1)
    n_sess = len(s_user)
    # First session uses the signup channel; later ones mix the signup channel and the segment's taste.
    mix = np.array([s["mix"] for s in SEGMENTS.values()])
    s_ch = _choice_by_row(rng, mix, seg[s_user])
    first = np.r_[True, s_user[1:] != s_user[:-1]]
    stay = first | (rng.random(n_sess) < 0.3)
    s_ch = np.where(stay, signup_ch[s_user], s_ch)
    s_dev = np.where(rng.random(n_sess) < 0.8, device_pref[s_user], rng.choice(len(DEVICES), n_sess))
    hour_w = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3.5, 3.5, 3.5, 4, 3.5, 3.5, 3.5, 4, 4.5, 5.5, 6, 6, 5, 3.5],
                      float)
    s_hour = rng.choice(23, n_sess, p=hour_w / hour_w.sum())
    s_start = (s_day * 86_400 + s_hour * 3600 + rng.integers(0, 3600, n_sess)).astype(np.int64)  # seconds

    # -- ad impressions and clicks -----------------------------------------------------------------
    cmp_ids, cmp_ctr, cmp_w = _campaigns(rng)
    n_imp = rng.poisson(2.6, n_sess)
    i_sess = np.repeat(np.arange(n_sess), n_imp)
    i_cmp = rng.choice(len(cmp_ids), len(i_sess), p=cmp_w)
    i_ts = s_start[i_sess] + rng.integers(5, 20 * 60, len(i_sess))
    hour_eff = np.where((s_hour >= 18) & (s_hour <= 22), 0.3, np.where(s_hour < 7, -0.3, 0.0))
    dev_eff = np.array([0.25, -0.15, 0.0])
    ch_click = np.array([CLICK_CHANNEL[c] for c in CHANNELS])
    logit = (np.log(cmp_ctr / (1 - cmp_ctr))[i_cmp] + user_click[s_user[i_sess]] - 0.25
             + dev_eff[s_dev[i_sess]] + hour_eff[i_sess] + ch_click[s_ch[i_sess]])
    clicked = rng.random(len(i_sess)) < 1 / (1 + np.exp(-logit))
    c_sess, c_cmp = i_sess[clicked], i_cmp[clicked]
    c_ts = i_ts[clicked] + rng.integers(3, 120, clicked.sum())
    sess_clicked = np.bincount(c_sess, minlength=n_sess) > 0

    # -- carts and purchases -----------------------------------------------------------------------
    n_prod = _products(n_users)
    n_groups = max(6, n_prod // 20)
    p_group = rng.integers(0, n_groups, n_prod)
    pop = 1.0 / np.arange(1, n_prod + 1) ** 1.1  # long tail
    pop = pop[rng.permutation(n_prod)]
    price = np.round(rng.lognormal(np.log(2500), 0.7, n_prod)).astype(np.int64) + 99
    group_pop = np.bincount(p_group, weights=pop, minlength=n_groups)
    fav = np.stack([rng.choice(n_groups, n_users, p=group_pop / group_pop.sum()),
                    rng.integers(0, n_groups, n_users)], axis=1)
    # Products sorted by group with a cumulative popularity per group, for vectorised in-group draws.
    order = np.lexsort((np.arange(n_prod), p_group))
    g_start = np.searchsorted(p_group[order], np.arange(n_groups))
    g_end = np.searchsorted(p_group[order], np.arange(n_groups), side="right")
    cum_in = np.cumsum(pop[order])
    g_base = np.where(g_start > 0, cum_in[np.maximum(g_start - 1, 0)], 0.0)
    # The channel's purchase multiplier acts on carting (so more visits convert) and on buying.
    ch_mult = np.array([PURCHASE_MULT[c] for c in CHANNELS])
    seg_carts = np.array([s["carts"] for s in SEGMENTS.values()])[seg[s_user]] * (1 + 0.8 * sess_clicked) \
        * ch_mult[s_ch] ** 0.8
    n_cart = rng.poisson(seg_carts)
    a_sess = np.repeat(np.arange(n_sess), n_cart)
    a_user = s_user[a_sess]
    grp = np.where(rng.random(len(a_sess)) < 0.7, fav[a_user, 0], fav[a_user, 1])
    empty = g_end[grp] == g_start[grp]
    lo, hi = g_base[grp], cum_in[np.maximum(g_end[grp] - 1, 0)]
    pick = np.searchsorted(cum_in, lo + rng.random(len(a_sess)) * (hi - lo), side="right").clip(max=n_prod - 1)
    a_prod = np.where(empty, rng.choice(n_prod, len(a_sess), p=pop / pop.sum()), order[pick])
    global_draw = rng.random(len(a_sess)) < 0.15
    a_prod = np.where(global_draw, rng.choice(n_prod, len(a_sess), p=pop / pop.sum()), a_prod)
    a_ts = s_start[a_sess] + rng.integers(60, 22 * 60, len(a_sess))
    buy_p = np.array([s["buy"] for s in SEGMENTS.values()])[seg[a_user]] * np.sqrt(ch_mult[s_ch[a_sess]])
    bought = rng.random(len(a_sess)) < np.clip(buy_p, 0, 0.97)
    b_sess, b_prod = a_sess[bought], a_prod[bought]
    b_ts = a_ts[bought] + rng.integers(30, 6 * 60, bought.sum())
    qty = 1 + rng.poisson(np.array([s["qty"] for s in SEGMENTS.values()])[seg[s_user[b_sess]]])
    b_rev = (price[b_prod] * qty * rng.uniform(0.9, 1.1, len(b_sess))).round().astype(np.int64)

    # -- assemble events ---------------------------------------------------------------------------
    kinds = [(np.arange(n_sess), s_start, 0, None, None, None),
             (i_sess, i_ts, 1, i_cmp, None, None),
             (c_sess, c_ts, 2, c_cmp, None, None),
             (a_sess, a_ts, 3, None, a_prod, None),
             (b_sess, b_ts, 4, None, b_prod, b_rev)]
    sess = np.concatenate([k[0] for k in kinds])
    ts = np.concatenate([k[1] for k in kinds])
    etype = np.concatenate([np.full(len(k[0]), k[2], np.int8) for k in kinds])
    cmp = np.concatenate([k[3] if k[3] is not None else np.full(len(k[0]), -1) for k in kinds])
    prod = np.concatenate([k[4] if k[4] is not None else np.full(len(k[0]), -1) for k in kinds])
    rev = np.concatenate([k[5] if k[5] is not None else np.full(len(k[0]), -1) for k in kinds])
    del kinds
    srt = np.argsort(ts, kind="stable")
    sess, ts, etype, cmp, prod, rev = sess[srt], ts[srt], etype[srt], cmp[srt], prod[srt], rev[srt]
    base_us = (datetime(start.year, start.month, start.day) - datetime(1970, 1, 1)).days * 86_400_000_000
    events = pl.DataFrame({
        "_n": np.arange(len(ts), dtype=np.int64),
        "user_id": user_ids[s_user[sess]],
        "ts": ts * 1_000_000 + base_us,
        "_type": etype, "_ch": s_ch[sess].astype(np.int8), "_cmp": cmp.astype(np.int16),
        "_dev": s_dev[sess].astype(np.int8), "_prod": prod.astype(np.int32), "revenue_cents": rev,
    })
    del sess, ts, etype, cmp, prod, rev
    events = events.select(
        pl.format("ev{}", pl.col("_n")).alias("event_id"),
        "user_id",
        pl.col("ts").cast(pl.Datetime("us")),
        _lookup("_type", ("visit", "ad_impression", "ad_click", "add_to_cart", "purchase")).alias("event_type"),
        _lookup("_ch", CHANNELS).alias("channel"),
        pl.when(pl.col("_cmp") >= 0).then(pl.format("cmp_{}", (pl.col("_cmp") + 1).cast(pl.String).str.zfill(2)))
        .alias("campaign_id"),
        _lookup("_dev", DEVICES).alias("device"),
        pl.when(pl.col("_prod") >= 0).then(pl.format("p{}", pl.col("_prod").cast(pl.String).str.zfill(4)))
        .alias("product_id"),
        pl.when(pl.col("revenue_cents") >= 0).then(pl.col("revenue_cents")).alias("revenue_cents"),
    )

    users = pl.DataFrame({
        "user_id": user_ids,
        "signup_date": (day0 + signup_day).astype("datetime64[D]"),
        "_ch": signup_ch.astype(np.int8),
        "_country": rng.choice(len(COUNTRIES), n_users, p=[0.3, 0.15, 0.15, 0.1, 0.08, 0.08, 0.07, 0.07]).astype(np.int8),
        "_age": rng.choice(len(AGE_BANDS), n_users, p=[0.15, 0.3, 0.25, 0.18, 0.12]).astype(np.int8),
    }).select("user_id", pl.col("signup_date").cast(pl.Date), _lookup("_ch", CHANNELS).alias("signup_channel"),
              _lookup("_country", COUNTRIES).alias("country"), _lookup("_age", AGE_BANDS).alias("age_band"))

    truth = {
        "channels": pl.DataFrame({
            "channel": list(CHANNELS),
            "purchase_multiplier": [PURCHASE_MULT[c] for c in CHANNELS],
            "retention_multiplier": [RETENTION_MULT[c] for c in CHANNELS],
        }).with_columns(is_best=pl.col("purchase_multiplier") == pl.col("purchase_multiplier").max()),
        "segments": pl.DataFrame({"user_id": user_ids, "segment": seg.astype(np.int32),
                                  "segment_name": np.array(SEGMENT_NAMES)[seg]}),
        "campaigns": pl.DataFrame({"campaign_id": cmp_ids, "planted_ctr": cmp_ctr}),
        "products": pl.DataFrame({"product_id": [f"p{i:04d}" for i in range(n_prod)],
                                  "product_group": p_group.astype(np.int32), "popularity": pop}),
    }
    return {"users": users, "events": events, "_truth": truth}


def _lookup(col: str, labels: tuple[str, ...]) -> pl.Expr:
    """Integer codes -> label strings (a Polars gather: no per-row Python)."""
    return pl.col(col).replace_strict(dict(enumerate(labels)), return_dtype=pl.String)
