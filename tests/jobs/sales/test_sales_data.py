"""Sales demo data, the series SQL (listing window, retirement, point in time), history and cache."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from nightshift.demo import SIZES
from nightshift.demo.sales import generate
from nightshift.jobs.sales import frequency, history, state
from nightshift.jobs.sales.sarima import Spec
from nightshift.state import JobState
from nightshift.tables import TABLES
from nightshift.warehouse import Warehouse

END = date(2026, 3, 31)
DTYPES = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "DATE": pl.Date, "BOOLEAN": pl.Boolean}


@pytest.fixture(scope="module")
def demo() -> dict:
    size = SIZES["tiny"]
    return generate(np.random.default_rng([7, 1]), END - timedelta(days=size.sales_days - 1), END, size)


def load(wh: Warehouse, sales: pl.DataFrame, partition: pl.Expr | None = None) -> None:
    """Put rows into the warehouse's sales table, landed on their own date unless told otherwise."""
    frame = sales.select(TABLES["sales"].column_names).with_columns((partition if partition is not None
                                                                      else pl.col("date")).alias("_partition"))
    wh.cursor.register("_rows", frame.to_arrow())
    wh.execute("insert into sales select * from _rows")
    wh.cursor.unregister("_rows")


def test_generator_matches_the_table_contract(demo):
    sales = demo["sales"]
    assert sales.columns == TABLES["sales"].column_names
    for c in TABLES["sales"].columns:
        assert sales[c.name].dtype == DTYPES[c.type], c.name
    assert sales.select(pl.struct("date", "store_id", "product_id").is_unique().all()).item()
    assert sales["units"].min() >= 0 and sales["unit_price_cents"].min() > 0
    assert sales["date"].min() == END - timedelta(days=SIZES["tiny"].sales_days - 1) and sales["date"].max() == END


def test_generator_is_deterministic_for_a_seed():
    size = SIZES["tiny"]
    a = generate(np.random.default_rng(3), END - timedelta(days=99), END, size)["sales"]
    b = generate(np.random.default_rng(3), END - timedelta(days=99), END, size)["sales"]
    assert a.equals(b)


def test_generator_plants_promotions_weekly_shape_new_and_retired(demo):
    sales, truth = demo["sales"], demo["_truth"]["series"]
    assert set(truth["status"]) >= {"new", "retired", "regular"}
    lift = sales.group_by("on_promotion").agg(pl.col("units").mean()).sort("on_promotion")["units"]
    assert lift[1] > 1.2 * lift[0]  # promotions lift units
    by_day = sales.group_by(pl.col("date").dt.weekday()).agg(pl.col("units").mean()).sort("date")["units"]
    assert by_day[5] > 1.2 * by_day[1]  # the planted weekend peak (Saturday vs Tuesday)
    assert (sales["units"] == 0).sum() > 0  # occasional zero days
    spans = sales.group_by("store_id", "product_id").agg(pl.col("date").min().alias("first"),
                                                         pl.col("date").max().alias("last"))
    checked = truth.join(spans, on=["store_id", "product_id"])
    assert (checked["first"] == checked["first_date"]).all() and (checked["last"] == checked["last_date"]).all()
    assert (checked.filter(pl.col("status") == "retired")["last"] < END - timedelta(days=40)).all()


def _rows(days: list[int], store="S1", product="P1", units=5, promo=False) -> pl.DataFrame:
    return pl.DataFrame({
        "date": [END - timedelta(days=d) for d in days], "store_id": store, "product_id": product,
        "units": units, "unit_price_cents": 100, "on_promotion": promo,
    }, schema={"date": pl.Date, "store_id": pl.String, "product_id": pl.String, "units": pl.Int64,
               "unit_price_cents": pl.Int64, "on_promotion": pl.Boolean})


def test_series_sql_returns_rows_unfilled_and_drops_retired(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    # S1/P1 listed 20 days ago, rows missing for days 10..12 and for the last two days.
    load(wh, _rows([d for d in range(20, 1, -1) if d not in (10, 11, 12)]))
    load(wh, _rows([100, 90, 60], product="OLD"))  # retired: last row 60 days ago
    load(wh, _rows([0], product="LATE"), partition=pl.lit(END + timedelta(days=1)))  # landed after D
    frame = wh.run_sql("marts/sales/series", run_date=END, history_days=400, retire_days=28)
    assert frame["product_id"].unique().to_list() == ["P1"]
    assert frame.height == 16 and frame["date"].max() == END - timedelta(days=2)  # no day made up
    status = wh.run_sql("marts/sales/series_status", run_date=END, retire_days=28)
    assert dict(zip(status["product_id"], status["status"], strict=True)) == {"OLD": "retired", "P1": "active"}
    short = wh.run_sql("marts/sales/series", run_date=END, history_days=5, retire_days=28)
    assert short.height == 3  # only the rows in the most recent history window


def _series(dates: list[date], units: list[int] | None = None, key: str = "S1/P1") -> pl.DataFrame:
    store, product = key.split("/")
    return pl.DataFrame({"series": key, "store_id": store, "product_id": product, "date": dates,
                         "units": [float(u) for u in (units or range(1, len(dates) + 1))], "on_promotion": False})


def _months(first: date, n: int, every: int = 1) -> list[date]:
    return [date(first.year + (first.month - 1 + k * every) // 12, (first.month - 1 + k * every) % 12 + 1, first.day)
            for k in range(n)]


@pytest.mark.parametrize("dates, expected", [
    ([END - timedelta(days=d) for d in (9, 8, 6, 5, 4, 1)], "daily"),  # missing days are still daily
    ([END - timedelta(weeks=w) for w in (10, 9, 8, 6, 5)], "weekly"),
    (_months(date(1949, 1, 1), 30), "monthly"),
    ([date(2020, 1, 31), date(2020, 2, 29), date(2020, 3, 31), date(2020, 4, 30)], "monthly"),  # month ends
    (_months(date(1990, 1, 1), 12, every=3), "quarterly"),
    ([date(2020, 1, 1), date(2020, 1, 12), date(2020, 3, 3), date(2020, 3, 9)], None),  # irregular
    ([date(2020, 1, 1), date(2020, 2, 1)], None),  # too few to tell
    ([END - timedelta(days=d) for d in (30, 23, 16, 9, 6)], None),  # weekly but for one gap of three days
    ([date(1990, 1, 1), date(1990, 4, 1), date(1990, 10, 1), date(1991, 1, 1)], "quarterly"),  # a missing quarter
    ([date(1990, 1, 1), date(1990, 4, 1), date(1990, 8, 1), date(1990, 11, 1)], None),  # a four-month step
    ([date(1990, 1, 1), date(1990, 2, 1), date(1990, 3, 2), date(1990, 4, 1)], None),  # one date off the 1st
])
def test_frequency_is_inferred_from_the_dates(dates, expected):
    one = pl.DataFrame({"series": "S1/X", "date": dates}, schema={"series": pl.String, "date": pl.Date})
    assert frequency.inferred(one)["freq"][0] == expected


def test_frequency_override_short_series_and_unknown_ones_are_named():
    rows = pl.concat([_series(_months(date(1949, 1, 1), 30), key="S1/M"),
                      _series(_months(date(1949, 1, 1), 2), key="S1/NEW"),
                      _series([date(2020, 1, 1), date(2020, 1, 12), date(2020, 3, 3), date(2020, 3, 9)], key="S1/ODD")])
    freqs, unknown = frequency.assign(rows, None)
    assert freqs == {"S1/M": "monthly", "S1/NEW": "monthly"} and unknown == ["S1/ODD"]
    assert frequency.assign(rows, "weekly") == ({"S1/M": "weekly", "S1/NEW": "weekly", "S1/ODD": "weekly"}, [])


def test_a_short_series_takes_the_most_common_frequency_and_a_tie_the_first_name():
    weeks = [END - timedelta(weeks=w) for w in range(10)]
    rows = pl.concat([_series(weeks, key="S1/W1"), _series(weeks, key="S1/W2"), _series(_months(date(1949, 1, 1), 30),
                      key="S1/M"), _series(weeks[:2], key="S1/NEW")])
    assert frequency.assign(rows, None)[0]["S1/NEW"] == "weekly"  # two weekly series, one monthly
    tie = rows.filter(pl.col("series") != "S1/W2")
    assert frequency.assign(tie, None)[0]["S1/NEW"] == "monthly"  # one of each: "monthly" < "weekly"


def test_grid_is_sorted_by_series_then_date_whatever_the_order_of_its_input():
    weeks = [END - timedelta(weeks=w) for w in range(12, -1, -1)]
    days = [END - timedelta(days=d) for d in range(40, 0, -3)]
    rows = pl.concat([_series(days, key="S2/B"), _series(weeks, key="S1/W"), _series(days, key="S1/A")])
    freqs = {"S2/B": "daily", "S1/W": "weekly", "S1/A": "daily"}
    once = frequency.grid(rows, freqs, END)
    assert once.equals(once.sort("series", "date")) and once["series"].unique(maintain_order=True).to_list() == [
        "S1/A", "S1/W", "S2/B"]
    assert frequency.grid(rows.sample(fraction=1.0, shuffle=True, seed=3), freqs, END).equals(once)


def test_grid_fills_gaps_only_at_the_series_frequency_and_zero_only_for_days():
    months = [d for d in _months(date(1958, 1, 1), 24) if d.month != 6]  # June 1958 and 1959 missing
    days = [END - timedelta(days=d) for d in range(30, 1, -1) if d not in (10, 11)]
    rows = pl.concat([_series(months, key="S1/M"), _series(days, key="S1/D")])
    freqs = {"S1/M": "monthly", "S1/D": "daily"}
    m = frequency.grid(rows, freqs, date(1959, 12, 20))  # the daily series is not listed yet then
    d = frequency.grid(rows, freqs, END)  # and the monthly one has long stopped
    assert m["series"].unique().to_list() == ["S1/M"] and d["series"].unique().to_list() == ["S1/D"]
    assert m.height == 24 and m["date"].to_list() == _months(date(1958, 1, 1), 24)  # one row a month, no days
    assert m.filter(pl.col("filled"))["date"].to_list() == [date(1958, 6, 1), date(1959, 6, 1)]
    assert m.filter(pl.col("filled"))["units"].is_null().all()  # unknown, not zero
    assert d["date"].max() == END and d.height == 31  # a listed day without a row sold nothing
    assert sorted((END - x).days for x in d.filter(pl.col("filled"))["date"]) == [0, 1, 10, 11]
    assert (d.filter(pl.col("filled"))["units"] == 0).all()
    assert frequency.grid(rows, {"S1/M": "monthly"}, date(1960, 6, 1)).is_empty()  # three months silent: retired


def test_history_is_replaced_per_run_date_and_scored_against_later_actuals(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    d1 = END - timedelta(days=5)
    fc = pl.DataFrame({"store_id": "S1", "product_id": "P1",
                       "date": [d1 + timedelta(days=k) for k in range(1, 6)], "horizon": list(range(1, 6)),
                       "mean": 5.0, "lower_80": 4.0, "upper_80": 6.0, "lower_95": 3.0, "upper_95": 7.0,
                       "naive": 7.0, "scale": 2.0, "model": "x"}).with_columns(pl.col("horizon").cast(pl.Int32))
    history.record(wh, d1, fc)
    history.record(wh, d1, fc)  # a rerun replaces, never duplicates
    history.record(wh, END, fc.with_columns(pl.col("date") + pl.duration(days=5)))
    assert wh.execute("select count(*) from sales_forecast_history").fetchall()[0][0] == 10
    load(wh, _rows([4, 3, 2, 1], units=5))  # actuals for 4 of the 5 days; the missing one sold 0
    s = history.scores(wh, END)
    assert s.height == 1 and s["run_date"][0] == d1 and s["points"][0] == 5  # not END's own forecast
    assert s["mase"][0] == pytest.approx(1.0 / 2.0)  # errors 0,0,0,0,5 → MAE 1, scale 2
    assert s["mase_naive"][0] == pytest.approx((2 * 4 + 7) / 5 / 2.0)
    assert s["coverage_80"][0] == pytest.approx(0.8)
    assert history.scores(wh, d1).height == 0  # point in time: nothing scored before it existed


def _forecast(key: str, freq: str, dates: list[date]) -> pl.DataFrame:
    store, product = key.split("/")
    return pl.DataFrame({"store_id": store, "product_id": product, "date": dates,
                         "horizon": list(range(1, len(dates) + 1)), "mean": 5.0, "lower_80": 4.0, "upper_80": 6.0,
                         "lower_95": 3.0, "upper_95": 7.0, "naive": 7.0, "scale": 2.0, "model": "x", "freq": freq},
                        schema_overrides={"horizon": pl.Int32})


def test_history_scores_a_missing_actual_as_zero_only_for_a_day(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    # month-end exports; the forecast for March is dated the 28th (offset from a February origin)
    months = _forecast("S1/M", "monthly", [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 28)])
    days = _forecast("S1/D", "daily", [date(2026, 1, 6), date(2026, 1, 7)])
    history.record(wh, date(2026, 1, 5), pl.concat([months, days]))
    sold = [(END - d).days for d in (date(2026, 1, 31), date(2026, 3, 31))]
    load(wh, pl.concat([_rows(sold, product="M"), _rows([(END - date(2026, 1, 6)).days], product="D")]))
    s = history.scores(wh, END)
    # February's month has not arrived: not scored; March's row counts whatever day it is dated;
    # the daily series' day without a row sold nothing
    assert s["series"][0] == 2 and s["points"][0] == 2 + 2
    assert s["mase"][0] == pytest.approx((0.0 + 5 / 2 / 2.0) / 2)
    assert s["coverage_80"][0] == pytest.approx(3 / 4)


def test_history_kept_from_before_frequencies_is_scored_as_daily(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.execute("create table sales_forecast_history (run_date date, store_id varchar, product_id varchar, "
               "date date, horizon integer, mean double, lower_80 double, upper_80 double, lower_95 double, "
               "upper_95 double, naive double, scale double, model varchar)")
    history.record(wh, date(2026, 1, 5), _forecast("S1/D", "daily", [date(2026, 1, 6), date(2026, 1, 7)]).drop("freq"))
    load(wh, _rows([(END - date(2026, 1, 6)).days], product="D"))
    assert history.scores(wh, END)["points"].to_list() == [2]  # the day without a row sold nothing


def test_state_is_read_from_the_newest_earlier_night(tmp_path):
    spec = Spec((1, 1, 1), (0, 1, 1, 7), True)
    d1, d2 = date(2026, 3, 1), date(2026, 3, 5)
    state.save(JobState(tmp_path, "sales"), d1, {"a/b": state.Cached(spec, d1, np.array([0.1, 0.2, 0.3, 0.4]))})
    kept = Spec((1, 1, 1), (0, 1, 1, 7), False)  # the backtest's window had no promotions
    state.save(JobState(tmp_path, "sales"), d2, {"a/b": state.Cached(spec, d1, np.array([0.5, 0.2, 0.3, 0.4]),
                                                  (kept, np.array([0.3, 0.2, 0.1])))})
    assert state.load(JobState(tmp_path, "sales"), d1) == (None, {})  # a rerun of d1 must not see its own or later state
    when, entries = state.load(JobState(tmp_path, "sales"), d2)
    assert when == d1 and entries["a/b"].spec == spec and entries["a/b"].params[0] == 0.1
    when, entries = state.load(JobState(tmp_path, "sales"), date(2026, 3, 6))
    assert when == d2 and entries["a/b"].params[0] == 0.5
    assert entries["a/b"].backtest[0] == kept and entries["a/b"].backtest[1].tolist() == [0.3, 0.2, 0.1]
    assert not state.needs_selection(entries["a/b"], d1 + timedelta(days=6))
    assert state.needs_selection(entries["a/b"], d1 + timedelta(days=7))
    assert state.needs_selection(None, d2)


def test_horizon_history_and_origins_come_from_the_settings_in_each_series_periods():
    from nightshift.jobs.sales.series import build_tasks

    table = frequency.configured(horizon=6, history=18)
    assert (table["monthly"].horizon, table["monthly"].history) == (6, 18)
    assert table["monthly"].season == 12 and frequency.configured()["monthly"].horizon == 12  # defaults kept
    rows = _series(_months(date(1950, 1, 1), 60), key="S1/M")
    frame = frequency.grid(rows, {"S1/M": "monthly"}, date(1954, 12, 1), table, origins=4)
    assert frame.height == 18 + 4 * 6  # trimmed to the history plus the origins' horizons
    empty = pl.DataFrame(schema={"series": pl.String, "date": pl.Date, "on_promotion": pl.Boolean})
    (task,) = build_tasks(frame, empty, {}, run_date=date(1954, 12, 1), table=table, origins=4)
    assert (task.horizon, task.fit_periods, len(task.origins)) == (6, 18, 4)


def test_the_settings_refuse_a_history_too_short_to_fit():
    from nightshift.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="sales_history"):
        load_settings(sales_history=3)
