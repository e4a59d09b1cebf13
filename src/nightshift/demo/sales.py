"""Demo sales: one row per store, product and day, with signals a forecaster can learn.

Each store × product series has a level (store size × product popularity), a trend, a weekly
profile, a yearly cycle, promotion spells that lift units (and cut the price), overdispersed
count noise and occasional zero days (stock-outs; about half of them leave no row at all, the
way many till systems record them). A few series start late (new listings, some too short to
model) and a few stop early (retired). Everything is vectorised over a (series × day) grid.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from nightshift.demo import DemoSize

PROMO_RATE = 0.012  # share of days that start a promotion spell (spells last 3–7 days)
ZERO_DAY_RATE = 0.01  # stock-outs / closures
NEW_SHARE, RETIRED_SHARE = 0.1, 0.05


def _profiles(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-series parameters: level, trend, weekly shape, yearly amplitude and phase, promo lift."""
    weekly_base = np.array([0.85, 0.8, 0.85, 0.95, 1.1, 1.35, 1.1])  # Mon..Sun: a weekend peak
    jitter = rng.normal(0, 0.06, size=(n, 7))
    amp = rng.uniform(0.6, 1.4, size=(n, 1))
    weekly = 1 + amp * (weekly_base - 1) + jitter
    weekly /= weekly.mean(axis=1, keepdims=True)
    return {
        "weekly": weekly,
        "trend": rng.normal(0.15, 0.2, size=n),  # relative growth per year
        "yearly_amp": rng.uniform(0.05, 0.25, size=n),
        "yearly_phase": rng.uniform(0, 2 * np.pi, size=n),
        "lift": rng.uniform(1.3, 1.9, size=n),
        "dispersion": rng.uniform(20, 80, size=n),  # negative-binomial size: smaller = noisier
    }


def _promotions(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    """Promotion spells: random starts, each lasting 3–7 days (a boolean series × day grid)."""
    starts = rng.random((n, days)) < PROMO_RATE
    lengths = rng.integers(3, 8, size=(n, days))
    promo = np.zeros((n, days), dtype=bool)
    # Spread each start over its length with shifted ORs: 7 vectorised passes, no row loop.
    for k in range(7):
        shifted = np.zeros_like(promo)
        mask = starts & (lengths > k)
        shifted[:, k:] = mask[:, : days - k] if k else mask
        promo |= shifted
    return promo


def generate(rng: np.random.Generator, start: date, end: date, size: DemoSize) -> dict[str, pl.DataFrame]:
    """The `sales` table for [start, end] plus planted truth (per-series profile and listing window)."""
    days = (end - start).days + 1
    stores = [f"S{i:03d}" for i in range(size.stores)]
    products = [f"P{j:04d}" for j in range(size.products)]
    n = len(stores) * len(products)
    store_of = np.repeat(np.arange(len(stores)), len(products))
    product_of = np.tile(np.arange(len(products)), len(stores))

    store_size = rng.lognormal(0, 0.4, size=len(stores))
    popularity = rng.lognormal(np.log(18), 0.7, size=len(products))
    base_price = rng.integers(199, 4999, size=len(products))
    level = store_size[store_of] * popularity[product_of] * rng.lognormal(0, 0.2, size=n)
    p = _profiles(rng, n)

    # Listing windows: most series run throughout; a few start late (new) or stop early (retired).
    first = np.zeros(n, dtype=np.int64)
    last = np.full(n, days - 1, dtype=np.int64)
    order = rng.permutation(n)
    n_new = max(1, round(NEW_SHARE * n))
    n_retired = max(1, round(RETIRED_SHARE * n))
    new_idx, retired_idx = order[:n_new], order[n_new : n_new + n_retired]
    first[new_idx] = days - rng.integers(14, min(150, days), size=n_new)
    last[retired_idx] = rng.integers(days // 2, max(days // 2 + 1, days - 45), size=n_retired)
    status = np.full(n, "regular", dtype=object)
    status[new_idx], status[retired_idx] = "new", "retired"

    t = np.arange(days)
    doy = (np.datetime64(start) + t).astype("datetime64[D]")
    weekday = ((doy.astype(np.int64) + 3) % 7)  # 1970-01-01 was a Thursday; 0 = Monday
    day_of_year = (doy - doy.astype("datetime64[Y]")).astype(np.int64)
    promo = _promotions(rng, n, days)

    mean = (
        level[:, None]
        * (1 + p["trend"][:, None] * t[None, :] / 365.0)
        * p["weekly"][np.arange(n)[:, None], weekday[None, :]]
        * (1 + p["yearly_amp"][:, None] * np.sin(2 * np.pi * day_of_year[None, :] / 365.25 + p["yearly_phase"][:, None]))
        * np.where(promo, p["lift"][:, None], 1.0)
    )
    mean = np.clip(mean, 0.05, None)
    r = p["dispersion"][:, None]
    units = rng.poisson(rng.gamma(r, mean / r))  # negative binomial: Poisson with gamma-mixed rate
    zero_day = rng.random((n, days)) < ZERO_DAY_RATE
    units = np.where(zero_day, 0, units)

    listed = (t[None, :] >= first[:, None]) & (t[None, :] <= last[:, None])
    # A zero day leaves no row half the time; listed days always keep their first and last row.
    unrecorded = (units == 0) & (rng.random((n, days)) < 0.5)
    unrecorded &= (t[None, :] != first[:, None]) & (t[None, :] != last[:, None])
    keep = listed & ~unrecorded
    si, di = np.nonzero(keep)
    discount = rng.uniform(0.7, 0.9, size=n)
    price = np.where(promo, (base_price[product_of][:, None] * discount[:, None]).round(), base_price[product_of][:, None])

    sales = pl.DataFrame(
        {
            "date": (np.datetime64(start) + di).astype("datetime64[D]"),
            "store_id": np.array(stores)[store_of[si]],
            "product_id": np.array(products)[product_of[si]],
            "units": units[si, di].astype(np.int64),
            "unit_price_cents": np.maximum(price[si, di], 1).astype(np.int64),
            "on_promotion": promo[si, di],
        },
        schema={"date": pl.Date, "store_id": pl.String, "product_id": pl.String, "units": pl.Int64,
                "unit_price_cents": pl.Int64, "on_promotion": pl.Boolean},
    ).sort("date", "store_id", "product_id")

    truth = pl.DataFrame(
        {
            "store_id": np.array(stores)[store_of],
            "product_id": np.array(products)[product_of],
            "status": status.astype(str),
            "first_date": (np.datetime64(start) + first).astype("datetime64[D]"),
            "last_date": (np.datetime64(start) + last).astype("datetime64[D]"),
            "level": level,
            "weekly_amplitude": p["weekly"].max(axis=1) - p["weekly"].min(axis=1),
            "trend_per_year": p["trend"],
            "promo_lift": p["lift"],
        }
    ).with_columns(pl.col("first_date").cast(pl.Date), pl.col("last_date").cast(pl.Date))
    return {"sales": sales, "_truth": {"series": truth}}
