"""Each page leads with its answer: the sales outlook against the span before, energy's peak per region,
each as a sentence with plain numbers and units."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from nightshift.jobs.energy.report import headline as energy_headline
from nightshift.jobs.sales.report import _outlook, _totals
from nightshift.jobs.sales.report import headline as sales_headline

D = date(2026, 3, 1)


def _forecast(series: str, means: list[float]) -> pl.DataFrame:
    store, product = series.split("/")
    n = len(means)
    return pl.DataFrame({"series": [series] * n, "store_id": [store] * n, "product_id": [product] * n,
                         "horizon": list(range(1, n + 1)), "mean": means, "lower_80": [m - 2 for m in means],
                         "upper_80": [m + 2 for m in means]})


def _history(series: str, units: list[float | None]) -> pl.DataFrame:
    n = len(units)
    return pl.DataFrame({"series": [series] * n, "date": [D - timedelta(days=n - 1 - i) for i in range(n)],
                         "units": units}, schema_overrides={"units": pl.Float64})


def test_the_outlook_compares_each_store_with_the_same_span_before():
    forecast = pl.concat([_forecast("s1/p1", [10.0, 12.0]), _forecast("s1/p2", [5.0, 5.0])])
    # s1/p2's last period is unknown (a missing week): it counts at the known one's value, not as zero
    frame = pl.concat([_history("s1/p1", [50.0, 8.0, 6.0]), _history("s1/p2", [1.0, 10.0, None])])
    (store,) = _totals(forecast, frame, "store_id")
    assert store["store"] == "s1" and store["forecast units"] == 32 and store["units in the span before"] == 34
    assert store["change (%)"] == -5.9 and store["series"] == 2
    context = {"outlook": _outlook(forecast, frame), "horizons": "2 days"}
    text = sales_headline(context, {"mase": 0.9})
    assert text.startswith("32 units forecast over the next 2 days across 2 store × product series, "
                           "5.9% below the same span just before")
    assert "0.90 times" in text


def test_no_series_is_said_plainly():
    empty = _forecast("s/p", [])
    assert sales_headline({"outlook": _outlook(empty, _history("s/p", [])), "horizons": ""}, {}) == \
        "No sales series to forecast tonight."


def test_energy_leads_with_the_peak_of_the_first_forecast_day():
    peaks = [{"region": r, "day": day, "peak hour": hour, "forecast kWh": kwh, "lower": kwh - 50, "upper": kwh + 60}
             for r, day, hour, kwh in (("north", "2026-03-02", "18:00", 1200.4), ("north", "2026-03-05", "19:00", 1500.0),
                                       ("south", "2026-03-02", "17:00", 900.0), ("south", "2026-03-03", "17:00", 950.0))]
    text = energy_headline(peaks, "ridge", 12.345)
    assert text.startswith("Peak load on 2026-03-02: 1,200 kWh in north at 18:00 (90% interval 1,150–1,260 kWh)")
    assert "the week's highest is 1,500 kWh in north on 2026-03-05" in text and "12.3 kWh per region-hour" in text
