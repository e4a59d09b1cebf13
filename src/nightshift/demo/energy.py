"""Demo energy: one row per meter and hour, with the structure a load forecaster should learn.

Each region has its own climate (yearly and daily temperature cycles plus shared and regional
weather noise). Households draw a morning and evening peak that shifts on weekends and holidays;
a few large sites run business hours on working days. Both add heating load below ~15 °C and
cooling load above ~22 °C, reacting to a smoothed (thermal-inertia) temperature and scaled by
occupancy (so the temperature effect varies with the hour and the day type). Some meters
join or leave during the period (one large site joins mid-way: a level shift), one region loses a
whole day of readings, another has a temperature sensor outage, and a sprinkle of single
readings go missing. Everything is vectorised over an (hour × meter) grid.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
from scipy.signal import lfilter

from nightshift.demo import DemoSize

REGIONS = ("north", "south", "east", "west", "central", "coast", "highlands", "valley")
# Fixed-date public holidays (month, day): a public calendar, the same every year.
HOLIDAYS = ((1, 1), (5, 1), (8, 15), (11, 1), (12, 25), (12, 26))
SITE_SHARE = 0.05  # large commercial sites among meters (at least one)
JOIN_SHARE, LEAVE_SHARE = 0.12, 0.08
SPORADIC_MISSING = 0.002  # single meter-hours that never arrive
OUTAGE_HOURS = 36  # the temperature sensor outage in one region


def is_holiday(days: np.ndarray) -> np.ndarray:
    """True for dates (numpy datetime64[D]) on the demo holiday calendar."""
    months = days.astype("datetime64[M]").astype(int) % 12 + 1
    doms = (days - days.astype("datetime64[M]")).astype(int) + 1
    out = np.zeros(days.shape, dtype=bool)
    for m, d in HOLIDAYS:
        out |= (months == m) & (doms == d)
    return out


def _temperature(rng: np.random.Generator, hours: np.ndarray, n_regions: int) -> np.ndarray:
    """Hourly temperature per region (hours × regions): seasons, days, shared and local weather."""
    n = len(hours)
    doy = (hours.astype("datetime64[D]") - hours.astype("datetime64[Y]")).astype(int)
    hod = (hours - hours.astype("datetime64[D]")).astype(int)
    mean = rng.uniform(6, 16, n_regions)
    season = rng.uniform(7, 12, n_regions)
    daily = rng.uniform(3, 6, n_regions)
    shared = lfilter([1.0], [1.0, -0.985], rng.normal(0, 0.45, n))  # weather systems, days long
    local = lfilter([1.0], [1.0, -0.97], rng.normal(0, 0.3, (n, n_regions)), axis=0)
    return (
        mean
        - season * np.cos(2 * np.pi * (doy[:, None] - 20) / 365.25)
        + daily * np.cos(2 * np.pi * (hod[:, None] - 15) / 24)
        + shared[:, None]
        + local
    )


def _profiles() -> dict[str, np.ndarray]:
    """Hour-of-day load shapes (kWh): households on workdays and rest days, sites open and closed."""
    h = np.arange(24)
    bump = lambda mu, w: np.exp(-0.5 * ((h - mu) / w) ** 2)  # noqa: E731
    return {
        "home_work": 0.25 + 0.55 * bump(7.5, 1.2) + 0.9 * bump(19.5, 2.0),
        "home_rest": 0.3 + 0.45 * bump(10.0, 2.5) + 0.8 * bump(19.0, 2.5) + 0.2 * bump(13, 2),
        "site_open": 4.0 + 26.0 * ((h >= 8) & (h < 18)) + 8.0 * ((h == 7) | (h == 18)),
        "site_closed": 4.0 + 0 * h,
    }


def generate(rng: np.random.Generator, start: date, end: date, size: DemoSize) -> dict[str, pl.DataFrame]:
    """The `energy` table for [start, end] plus planted truth (meters, gaps and outage)."""
    t0 = np.datetime64(datetime(start.year, start.month, start.day), "h")
    n_days = (end - start).days + 1
    hours = t0 + np.arange(n_days * 24)
    n_t, n_m, n_r = len(hours), size.meters, min(size.regions, len(REGIONS))
    days = hours.astype("datetime64[D]")
    hod = (hours - days).astype(int)
    dow = (days.astype(int) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    holiday = is_holiday(days)
    rest = (dow >= 5) | holiday

    temp = _temperature(rng, hours, n_r)  # (T, R)
    # Buildings react to a smoothed temperature (thermal inertia of about half a day).
    alpha = 1 / 12
    felt = lfilter([alpha], [1, alpha - 1], temp - temp[0], axis=0) + temp[0]

    region_of = np.arange(n_m) % n_r
    rng.shuffle(region_of)
    n_sites = max(1, round(n_m * SITE_SHARE))
    site = np.zeros(n_m, dtype=bool)
    site[rng.choice(n_m, n_sites, replace=False)] = True

    prof = _profiles()
    home = np.where(rest[:, None], prof["home_rest"][hod][:, None], prof["home_work"][hod][:, None])
    office = np.where(rest[:, None], prof["site_closed"][hod][:, None], prof["site_open"][hod][:, None])
    scale = np.where(site, rng.uniform(0.6, 1.6, n_m), rng.lognormal(0, 0.3, n_m))
    heat = np.where(site, rng.uniform(0.6, 1.2, n_m), rng.uniform(0.04, 0.09, n_m))  # kWh per °C below 15
    cool = np.where(site, rng.uniform(0.8, 1.5, n_m), rng.uniform(0.03, 0.07, n_m))  # kWh per °C above 22
    f = felt[:, region_of]  # (T, M)
    base = np.where(site[None, :], office, home) * scale
    # Heating and cooling follow occupancy: homes heat mornings and evenings and cool in the
    # afternoon and evening; sites condition their air in opening hours. The temperature effect
    # therefore depends on the hour and the day type, not only on the temperature.
    occupied = np.where(site[None, :], office / prof["site_open"].max(), home / prof["home_work"].max())
    heating = heat * np.clip(15 - f, 0, None) * (0.3 + occupied)
    cooling = cool * np.clip(f - 22, 0, None) * (0.2 + occupied)
    kwh = base + heating + cooling
    kwh *= rng.lognormal(0, np.where(site, 0.06, 0.18), (n_t, n_m))

    # Meters joining (after the first weeks) and leaving (before the last weeks).
    joined = np.zeros(n_m, dtype=int)
    left = np.full(n_m, n_t)
    movers = rng.permutation(np.flatnonzero(~site))
    n_join, n_leave = round(n_m * JOIN_SHARE), round(n_m * LEAVE_SHARE)
    lo, hi = min(21 * 24, n_t // 4), max(n_t - 21 * 24, n_t * 3 // 4)
    joined[movers[:n_join]] = rng.integers(lo, hi, n_join)
    left[movers[n_join : n_join + n_leave]] = rng.integers(lo, hi, n_leave)
    big_joiner = np.flatnonzero(site)[0] if n_sites > 1 else None
    if big_joiner is not None:
        joined[big_joiner] = (n_t // 2) // 24 * 24
    t_idx = np.arange(n_t)[:, None]
    present = (t_idx >= joined) & (t_idx < left)

    # A region misses one whole day; another loses its temperature sensor for a day and a half.
    gap_region, outage_region = 0 % n_r, 1 % n_r
    gap_day = int(n_days * 0.6)
    present[gap_day * 24 : gap_day * 24 + 24, region_of == gap_region] = False
    present &= rng.random((n_t, n_m)) >= SPORADIC_MISSING
    outage_start = int(n_t * 0.8) // 24 * 24 + 6
    temp_obs = temp.copy()
    temp_obs[outage_start : outage_start + OUTAGE_HOURS, outage_region] = np.nan

    ti, mi = np.nonzero(present)  # hour-major: rows come out ordered by ts, then meter
    meter_ids = np.array([f"m{i:05d}" for i in range(n_m)])
    names = np.array(REGIONS[:n_r])
    temp_rows = np.round(temp_obs[ti, region_of[mi]], 1)
    energy = pl.DataFrame(
        {
            "ts": hours[ti].astype("datetime64[us]"),
            "meter_id": meter_ids[mi],
            "region": names[region_of[mi]],
            "kwh": np.round(kwh[ti, mi], 4),
            "temperature_c": pl.Series(temp_rows, nan_to_null=True),
            "is_holiday": holiday[ti],
        },
        schema={"ts": pl.Datetime("us"), "meter_id": pl.String, "region": pl.String, "kwh": pl.Float64,
                "temperature_c": pl.Float64, "is_holiday": pl.Boolean},
    )
    as_ts = lambda i: datetime.combine(start, datetime.min.time()) + timedelta(hours=int(i))  # noqa: E731
    meters = pl.DataFrame({
        "meter_id": meter_ids, "region": names[region_of], "kind": np.where(site, "site", "household"),
        "joined": [as_ts(j) if j > 0 else None for j in joined],
        "left": [as_ts(x) if x < n_t else None for x in left],
    })
    incidents = pl.DataFrame({
        "kind": ["missing_day", "temperature_outage"],
        "region": [names[gap_region], names[outage_region]],
        "start": [as_ts(gap_day * 24), as_ts(outage_start)],
        "hours": [24, OUTAGE_HOURS],
    })
    return {"energy": energy, "_truth": {"meters": meters, "incidents": incidents}}
