"""The sales job on real monthly and quarterly series, at their real dates: one row a month or quarter.

R's `AirPassengers` (monthly airline passengers, 1949-1960), `wineind` (Australian wine sales by
winemakers, monthly, 1980-1994), `nottem` (monthly mean air temperature at Nottingham, 1920-1939, in
whole degrees Fahrenheit: a stand-in for a strongly seasonal, trendless series) and fpp2's
`ausbeer` (Australian beer production, quarterly, 1956-2010). The user's export is a DuckDB
table with R's columns as they ship (`time` as a decimal year, `value`) plus the data set's name;
each series becomes one store × product, dated the first day of its month or quarter. Nothing says
the frequency: the job infers it from the dates (add `frequency = "monthly"` under
`[sources.sales]` where it cannot). Copyable as a starting point:

```toml
[sources.sales]
path = "series.duckdb"
query = '''
select make_date(cast(floor(time + 1e-6) as integer),
                 cast(round((time - floor(time + 1e-6)) * 12) as integer) + 1, 1) as date,
       'all' as store_id, name as product_id, cast(round(value) as bigint) as units,
       100 as unit_price_cents, false as on_promotion
from series'''
```

Each data set gets its own home and one night, run on its last date (airline: 1959-12-01, so that
the twelve forecasts are 1960's months, which the night never sees).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from conftest import byo_night, r_dataset, write_toml

pytestmark = pytest.mark.slow
SETS = {  # name: (R package, data set, last date the night sees, frequency the job must infer)
    "AirPassengers": ("datasets", "AirPassengers", date(1959, 12, 1), "monthly"),
    "wineind": ("forecast", "wineind", date(1994, 8, 1), "monthly"),
    "nottem": ("datasets", "nottem", date(1939, 12, 1), "monthly"),
    "ausbeer": ("fpp2", "ausbeer", date(2010, 4, 1), "quarterly"),
}
AIRLINE_MAPE_MAX = 4.0  # percent, over 1960's twelve months (the airline model scores 2.9%)


def _toml() -> str:
    doc = __doc__ or ""
    return doc[doc.index("```toml") + len("```toml"):doc.rindex("```")]


def _night(home: Path, name: str) -> dict:
    package, item, run_date, _ = SETS[name]
    frame = r_dataset(package, item).with_columns(pl.lit(name).alias("name"))
    with duckdb.connect(str(home / "series.duckdb")) as con:
        con.register("f", frame.to_arrow())
        con.execute("create table series as select * from f")
    write_toml(home, _toml())
    manifest = byo_night(home, run_date, ["sales"])
    out = home / "reports" / run_date.isoformat() / "sales"
    return {"summary": manifest["jobs"]["sales"]["summary"], "forecast": pl.read_parquet(out / "forecast.parquet"),
            "backtest": pl.read_parquet(out / "backtest.parquet"), "html": (out.parent / "sales.html").read_text(),
            "data": frame}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = _night(tmp_path_factory.mktemp(name), name)
        return cache[name]
    return get


def test_airline_passengers_next_year_within_four_percent(nights) -> None:
    night = nights("AirPassengers")
    fc = night["forecast"].sort("date")
    assert night["summary"]["frequencies"] == {"monthly": 1} and night["summary"]["frequency_source"] == "inferred"
    assert fc["date"].to_list() == [date(1960, m, 1) for m in range(1, 13)]  # months, not days
    actual = night["data"].filter(pl.col("time") >= 1960)["value"].to_numpy().astype(float)
    mape = float(np.mean(np.abs(fc["mean"].to_numpy() - actual) / actual) * 100)
    print(f"AirPassengers 1960: MAPE {mape:.2f}% with {fc['model'][0]}")
    assert mape <= AIRLINE_MAPE_MAX
    assert (fc["lower_95"] <= fc["mean"]).all() and (fc["mean"] <= fc["upper_95"]).all()
    assert "Model menu per series" in night["html"] and fc["model"][0] in night["html"]


@pytest.mark.parametrize("name", ["wineind", "nottem", "ausbeer"])
def test_other_real_series_beat_their_seasonal_naive_on_the_backtest(nights, name: str) -> None:
    night = nights(name)
    assert night["summary"]["frequencies"] == {SETS[name][3]: 1}
    scores = dict(night["backtest"].select("method", "mase").iter_rows())
    print(f"{name}: job backtest MASE {scores['model']:.3f} vs seasonal naive {scores['seasonal_naive']:.3f}; "
          f"menu {({k: round(v, 3) for k, v in scores.items()})}")
    assert scores["model"] < scores["seasonal_naive"]
    horizon = night["forecast"].height
    assert horizon == {"monthly": 12, "quarterly": 8}[SETS[name][3]]


def test_a_series_whose_frequency_cannot_be_inferred_is_named_with_the_setting_to_add(tmp_path: Path) -> None:
    irregular = pl.DataFrame({"time": [1990.0, 1990.03, 1990.2, 1990.21, 1990.5, 1990.9], "value": [5, 7, 6, 8, 9, 4]})
    with duckdb.connect(str(tmp_path / "series.duckdb")) as con:
        con.register("f", irregular.with_columns(pl.lit("odd").alias("name")).to_arrow())
        con.execute("create table series as select * from f")
    write_toml(tmp_path, _toml())
    manifest = byo_night(tmp_path, date(1990, 12, 1), ["sales"])
    warnings = " ".join(manifest["jobs"]["sales"].get("warnings", []))
    assert "all/odd" in warnings and 'frequency = "monthly"' in warnings and "[sources.sales]" in warnings
