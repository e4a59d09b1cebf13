"""The energy job on two real demand series, each a user's hourly export mapped in `nightshift.toml`.

`forecast/taylor`: half-hourly electricity demand of England and Wales (MW), 12 weeks from Monday
2000-06-05; no temperature. `fpp2/elecdemand`: half-hourly demand of Victoria, Australia (GW) for
2014, with temperature (°C) and a working-day flag. Each is summed to hours and exported as the
user would (hour start, MWh, and what else the data has); the mapping computes kWh, names the one
meter and region, and, for Victoria, the holidays (a weekday that is not a working day). Copyable:

```toml
[sources.energy]
path = "exports/taylor.parquet"   # hour_start, demand_mwh
[sources.energy.columns]
hour_start = "ts"
kwh = "demand_mwh * 1000"
meter_id = "'national'"
region = "'England and Wales'"
is_holiday = false
```

```toml
[sources.energy]
path = "exports/elecdemand.csv"   # hour_start, demand_mwh, workday, temperature
[sources.energy.columns]
hour_start = "ts"
temperature = "temperature_c"
kwh = "demand_mwh * 1000"
meter_id = "'grid'"
region = "'Victoria'"
is_holiday = "workday = 0 and isodow(hour_start) <= 5"
```

Each night runs on the last day of its data. Checked: the published model's holdout MAE is no
worse than the best baseline's (from the manifest's verdict); the page says which candidate won;
the 90% interval's holdout coverage is within sampling error. The holdout's 28 target days are
the independent units (the hours of one day share its weather and its errors), so the binomial
s.e. is sqrt(0.9 × 0.1 / 28) = 5.7 points and the tolerance, 2 s.e., is ±11 points.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from conftest import byo_night, half_hours_to_hours, r_dataset, write_toml

pytestmark = pytest.mark.slow
NOMINAL, K_SE = 0.9, 2.0


def _toml(source: str) -> str:
    blocks = re.findall(r"```toml\n(.*?)```", __doc__ or "", flags=re.S)
    return next(b for b in blocks if source in b)


def _taylor(home: Path) -> date:
    mw = r_dataset("forecast", "taylor")["x"].cast(pl.Float64).to_list()
    hourly = half_hours_to_hours(mw, datetime(2000, 6, 5))  # MW summed over two half hours: MWh × 2
    hourly.select(pl.col("ts").alias("hour_start"), (pl.col("value") / 2).alias("demand_mwh")).write_parquet(
        home / "exports" / "taylor.parquet")
    return hourly["ts"].max().date()


def _victoria(home: Path) -> date:
    data = r_dataset("fpp2", "elecdemand")
    start = datetime(2014, 1, 1)
    demand = half_hours_to_hours(data["Demand"].to_list(), start)  # GW summed over two half hours
    temp = half_hours_to_hours(data["Temperature"].to_list(), start)
    workday = half_hours_to_hours(data["WorkDay"].cast(pl.Float64).to_list(), start)
    pl.DataFrame({"hour_start": demand["ts"], "demand_mwh": demand["value"] * 500,
                  "workday": (workday["value"] / 2).cast(pl.Int64), "temperature": temp["value"] / 2}).write_csv(
        home / "exports" / "elecdemand.csv")
    return demand["ts"].max().date()


SETS = {"taylor": ("taylor.parquet", _taylor), "victoria": ("elecdemand.csv", _victoria)}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            home = tmp_path_factory.mktemp(name)
            (home / "exports").mkdir()
            export, write = SETS[name]
            run_date = write(home)
            write_toml(home, _toml(export))
            manifest = byo_night(home, run_date, ["energy"])
            html = (home / "reports" / run_date.isoformat() / "energy.html").read_text()
            cache[name] = {"job": manifest["jobs"]["energy"], "html": html}
        return cache[name]
    return get


@pytest.mark.parametrize("name", list(SETS))
def test_the_published_model_is_no_worse_than_the_best_baseline_and_the_page_says_which_won(nights, name):
    night = nights(name)
    verdict = night["job"]["selections"]["energy_load"]
    board = {e["name"]: e for e in verdict["board"]}
    print(name, {n: round(e["value"], 1) for n, e in board.items()}, "published:", verdict["published"])
    best_baseline = min(e["value"] for e in board.values() if e["baseline"])
    published = board[verdict["published"]]
    assert published["value"] <= best_baseline
    if published["baseline"]:
        assert published["value"] == best_baseline
    assert {"network", "seasonal naive (same hour last week)"} <= set(board)
    assert "Which model is used" in night["html"] and verdict["winner"] in night["html"]
    if verdict["learned_lost"]:
        assert "The learned model lost to a baseline" in night["html"]


@pytest.mark.parametrize("name", list(SETS))
def test_the_interval_covers_within_sampling_error(nights, name):
    interval = nights(name)["job"]["extra"]["interval"]
    se = math.sqrt(NOMINAL * (1 - NOMINAL) / interval["target_days"])
    print(name, interval)
    assert interval["target_days"] == 28
    assert abs(interval["holdout_coverage"] - NOMINAL) <= K_SE * se


def test_without_temperature_the_page_says_so_and_nothing_is_an_outage(nights):
    taylor, victoria = nights("taylor"), nights("victoria")
    assert "No temperature column in the source" in taylor["html"]
    assert taylor["job"]["extra"]["imputed_temperature_hours"] == 0
    assert not any("temperature" in w for w in taylor["job"].get("warnings", []))
    assert "No temperature column" not in victoria["html"] and "Load and temperature" in victoria["html"]
