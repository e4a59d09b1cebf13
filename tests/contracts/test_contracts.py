"""Contracts and loading: each broken rule quarantines exactly the bad rows, with the reason;
loads are idempotent; reads are point-in-time."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pyarrow as pa
import pytest

from nightshift import contracts, ingest
from nightshift.settings import load_settings
from nightshift.tables import spec
from nightshift.warehouse import Warehouse

D = date(2026, 3, 1)


def sales_rows(**over) -> dict:
    row = {"date": D, "store_id": "s1", "product_id": "p1", "units": 3, "unit_price_cents": 250, "on_promotion": False}
    return {**row, **over}


def frame(rows: list[dict], day: date = D) -> pa.Table:
    return pl.DataFrame(rows).with_columns(pl.lit(day).alias("_partition")).to_arrow()


@pytest.fixture
def wh(tmp_path):
    with Warehouse(tmp_path / "w.duckdb") as w:
        yield w


def test_good_rows_pass_untouched(wh):
    checked = contracts.check("sales", frame([sales_rows(), sales_rows(product_id="p2")]), wh)
    assert checked.good.height == 2 and checked.bad.height == 0


@pytest.mark.parametrize(
    "row, rule",
    [
        (sales_rows(units=None), "null in required column units"),
        (sales_rows(units=-1), "out of range in units"),
        (sales_rows(unit_price_cents=0), "out of range in unit_price_cents"),
        (sales_rows(date=date(2026, 3, 2)), "future timestamp"),
    ],
)
def test_each_rule_quarantines_with_reason(wh, row, rule):
    checked = contracts.check("sales", frame([sales_rows(product_id="ok"), row]), wh)
    assert checked.good.height == 1
    assert checked.bad["_rule"].to_list() == [rule]
    assert checked.bad["_reason"][0]  # a sentence for people, not just a code


def test_wrong_type_keeps_raw_value_in_quarantine(wh):
    raw = pl.DataFrame([{k: (str(v) if v is not None else None) for k, v in sales_rows().items()},
                        {k: str(v) for k, v in sales_rows(product_id="p2").items()} | {"units": "lots"}])
    checked = contracts.check("sales", raw.with_columns(pl.lit(D).alias("_partition")).to_arrow(), wh)
    assert checked.good.height == 1
    bad = checked.bad.row(0, named=True)
    assert bad["_rule"] == "wrong type in units" and bad["units"] == "lots" and "lots" in bad["_reason"]


def test_enum_and_duplicates(wh):
    ev = {"event_id": "e1", "user_id": 1, "ts": datetime(2026, 3, 1, 10), "event_type": "visit", "channel": "email",
          "campaign_id": None, "device": "mobile", "product_id": None, "revenue_cents": None}
    users = pl.DataFrame([{"user_id": 1, "signup_date": D, "signup_channel": "email", "country": "DE", "age_band": None}])
    wh.cursor.register("u", users.with_columns(pl.lit(D).alias("_partition")).to_arrow())
    wh.cursor.execute("insert into users select * from u")
    rows = [ev, ev, {**ev, "event_id": "e2", "channel": "telepathy"}, {**ev, "event_id": "e1", "device": "tablet"},
            {**ev, "event_id": "e3", "user_id": 99}]
    checked = contracts.check("events", frame(rows), wh)
    assert checked.good["event_id"].to_list() == ["e1"]
    assert sorted(checked.bad["_rule"].to_list()) == sorted(
        ["duplicate row", "unknown value in channel", "duplicate key", "unknown user_id"])
    reasons = dict(zip(checked.bad["_rule"].to_list(), checked.bad["_reason"].to_list(), strict=True))
    assert reasons["unknown value in channel"] == (
        "column channel: telepathy is not one of organic, search, social, email, partner, referral")


def test_duplicate_key_across_days_keeps_the_first_delivery(wh):
    first = frame([sales_rows(date=date(2026, 2, 28))], date(2026, 2, 28))
    wh.cursor.register("f", contracts.check("sales", first, wh).good.to_arrow())
    wh.cursor.execute("insert into sales select * from f")
    again = contracts.check("sales", frame([sales_rows(date=date(2026, 2, 28))], D), wh)
    assert again.bad["_rule"].to_list() == ["duplicate key across days"]


def test_a_key_loaded_from_another_drop_quarantines_only_that_row(wh):
    day = date(2026, 2, 28)
    wh.cursor.register("f", contracts.check("sales", frame([sales_rows(date=day)], day), wh).good.to_arrow())
    wh.cursor.execute("insert into sales select * from f")
    again = contracts.check("sales", frame([sales_rows(date=day), sales_rows(date=day, product_id="p2")]), wh)
    assert again.good["product_id"].to_list() == ["p2"]
    assert again.bad.select("_row", "_rule", "_reason").to_dicts() == [
        {"_row": 0, "_rule": "duplicate key across days", "_reason": "key already loaded from the drop of 2026-02-28"}]


def test_a_clean_check_quarantines_nothing_with_the_same_columns(wh):
    clean = contracts.check("sales", frame([sales_rows()]), wh)
    broken = contracts.check("sales", frame([sales_rows(units=-1)]), wh)
    assert clean.bad.height == 0 and clean.reasons == {}
    assert clean.bad.schema == broken.bad.schema  # an empty quarantine file reads back like any other


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from nightshift import demo

    home = tmp_path_factory.mktemp("faulty")
    settings = load_settings(home=home)
    demo.generate(settings.landing_dir, end=D, size="tiny", seed=3, faults=True)
    wh = Warehouse(settings.warehouse_path)
    loads = ingest.ingest(settings, wh, D, ["users", "events", "sales"])
    yield settings, wh, loads
    wh.close()


def test_every_row_read_is_loaded_or_quarantined(loaded):
    settings, wh, loads = loaded
    for table, load in loads.items():
        assert load.rows_read == load.rows_loaded + load.rows_quarantined, table
        in_wh = wh.frame("select count(*) as n from " + table)["n"][0]  # noqa: S608 - a table from the registry
        assert in_wh == load.rows_loaded, table
        files = list((settings.quarantine_dir / table).glob("date=*/rows.parquet"))
        assert sum(pl.read_parquet(f).height for f in files) == load.rows_quarantined, table
    assert loads["events"].rows_quarantined > 0  # the faults were caught
    assert {"duplicate row", "future timestamp"} <= set(loads["sales"].reasons)


def test_loading_twice_gives_the_same_warehouse(loaded):
    settings, wh, _ = loaded
    before = wh.frame("select count(*) as n, sum(hash(store_id, product_id, units)) as h from sales")
    again = ingest.ingest(settings, wh, D, ["sales"])["sales"]
    assert again.partitions_loaded == 0 and again.partitions_unchanged > 300
    assert wh.frame("select count(*) as n, sum(hash(store_id, product_id, units)) as h from sales").equals(before)


def test_redelivered_drop_replaces_exactly_that_day(loaded):
    settings, wh, _ = loaded
    day = date(2026, 2, 20)
    path = settings.landing_dir / "sales" / f"date={day}" / "part-0.parquet"
    original = pl.read_parquet(path)
    others = wh.frame("select count(*) as n from sales where _partition <> $d", {"d": day})["n"][0]
    original.head(1).write_parquet(path)
    try:
        load = ingest.ingest(settings, wh, D, ["sales"])["sales"]
        assert load.partitions_loaded == 1
        assert wh.frame("select count(*) as n from sales where _partition = $d", {"d": day})["n"][0] <= 1
        assert wh.frame("select count(*) as n from sales where _partition <> $d", {"d": day})["n"][0] == others
    finally:
        original.write_parquet(path)
        ingest.ingest(settings, wh, D, ["sales"])


def test_point_in_time_reads(loaded):
    settings, wh, _ = loaded
    early = wh.as_of("events", date(2026, 2, 1))
    assert early["ts"].max() < datetime(2026, 2, 2)
    late_drop = wh.frame(
        "select min(_partition) as p from events where cast(ts as date) < _partition"
    )["p"][0]  # a late row: dated before the drop it arrived in
    assert late_drop is not None
    row_day = wh.frame("select cast(ts as date) as d from events where _partition = $p and cast(ts as date) < $p limit 1",
                       {"p": late_drop})["d"][0]
    ids_then = set(wh.as_of("events", row_day)["event_id"].to_list())
    ids_after = set(wh.as_of("events", late_drop)["event_id"].to_list())
    late_ids = set(wh.frame("select event_id from events where _partition = $p and cast(ts as date) < $p",
                            {"p": late_drop})["event_id"].to_list())
    assert not (late_ids & ids_then) and late_ids <= ids_after


def test_missing_drop_makes_the_table_unusable_for_that_date(tmp_path):
    from nightshift import demo

    settings = load_settings(home=tmp_path)
    demo.generate(settings.landing_dir, end=D, size="tiny", seed=1)
    for f in (settings.landing_dir / "sales" / f"date={D}").iterdir():
        f.unlink()
    (settings.landing_dir / "sales" / f"date={D}").rmdir()
    with Warehouse(settings.warehouse_path) as wh:
        loads = ingest.ingest(settings, wh, D, ["sales", "loans"])
    assert not loads["sales"].usable and "no data for 2026-03-01" in loads["sales"].problem
    assert loads["loans"].usable


def _as_sent(rows: list[dict]) -> pa.Table:
    """Rows as a CSV source sends them: every value text."""
    text = [{k: (None if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in r.items()}
            for r in rows]
    return frame(text)


def test_blank_and_short_text_values_are_judged_by_what_was_sent(wh):
    checked = contracts.check("sales", _as_sent([sales_rows(), sales_rows(product_id="p2", units="x"),
                                                  sales_rows(product_id="p3", units="  ")]), wh)
    assert checked.good["product_id"].to_list() == ["p1"]
    bad = checked.bad.select("_row", "_rule", "_reason", "units").to_dicts()
    assert bad == [
        # one character is a value sent (a wrong type), not a missing one
        {"_row": 1, "_rule": "wrong type in units", "_reason": "column units: x is not a valid BIGINT", "units": "x"},
        # blanks are no value: a null in a required column, and the raw value kept as null, not ""
        {"_row": 2, "_rule": "null in required column units", "_reason": "column units is null but required",
         "units": None},
    ]


def test_a_blank_required_text_value_is_quarantined_like_a_null(wh):
    # A blank store_id is a missing key: loaded as "" it would be a store nobody sent.
    rows = [sales_rows(store_id=" s1 "), sales_rows(store_id="  ", product_id="p2"),
            sales_rows(store_id="\t", product_id="p3"), sales_rows(store_id=None, product_id="p4")]
    checked = contracts.check("sales", frame(rows), wh)
    assert checked.good.select("store_id", "product_id").to_dicts() == [{"store_id": "s1", "product_id": "p1"}]
    assert checked.bad.select("_row", "_rule", "_reason", "store_id").to_dicts() == [
        {"_row": row, "_rule": "null in required column store_id", "_reason": "column store_id is null but required",
         "store_id": None} for row in (1, 2, 3)]


def test_range_and_finite_number_reasons_name_the_value_and_the_bound(wh):
    sales = contracts.check("sales", frame([sales_rows(units=-1), sales_rows(product_id="p2", unit_price_cents=0),
                                            sales_rows(product_id="p3", units=10**12),
                                            sales_rows(product_id="p4", units=-5)]), wh)
    # in the order sent, though rows 0 and 3 break the same rule
    assert sales.bad.select("_row", "_rule", "_reason").to_dicts() == [
        {"_row": 0, "_rule": "out of range in units", "_reason": "column units: -1 is not >= 0"},
        {"_row": 1, "_rule": "out of range in unit_price_cents",
         "_reason": "column unit_price_cents: 0 is not > 0"},  # an exclusive bound
        {"_row": 2, "_rule": "out of range in units", "_reason": "column units: 1000000000000 is above 1e+09"},
        {"_row": 3, "_rule": "out of range in units", "_reason": "column units: -5 is not >= 0"}]
    row = {"ts": datetime(2026, 3, 1, 10), "meter_id": "m1", "region": "north", "kwh": 1.5, "temperature_c": 10.0,
           "is_holiday": False}
    energy = contracts.check("energy", frame([
        row | {"temperature_c": None},  # an optional number left out is fine
        row | {"meter_id": "m2", "kwh": float("nan")}, row | {"meter_id": "m3", "kwh": float("inf")},
        row | {"meter_id": "m4", "temperature_c": 70.5}, row | {"meter_id": "m5", "temperature_c": -80.5}]), wh)
    assert energy.good["meter_id"].to_list() == ["m1"]
    assert energy.bad.select("_rule", "_reason").to_dicts() == [
        {"_rule": "not a finite number in kwh", "_reason": "column kwh: NaN is not a finite number"},
        {"_rule": "not a finite number in kwh", "_reason": "column kwh: inf is not a finite number"},
        {"_rule": "out of range in temperature_c", "_reason": "column temperature_c: 70.5 is above 70"},
        {"_rule": "out of range in temperature_c", "_reason": "column temperature_c: -80.5 is not >= -80"}]


def test_a_future_row_names_its_date_and_the_drop_date(wh):
    checked = contracts.check("sales", frame([sales_rows(date=date(2026, 3, 2))]), wh)
    assert checked.bad.select("_rule", "_reason").to_dicts() == [
        {"_rule": "future timestamp", "_reason": "date 2026-03-02 is after the drop date 2026-03-01"}]


def test_a_check_leaves_no_views_behind_on_the_warehouse(wh):
    def views() -> list:
        return wh.cursor.sql("select view_name from duckdb_views() where temporary and not internal").fetchall()

    wh.cursor.execute("insert into users select 1, date '2026-03-01', 'email', 'DE', null, date '2026-03-01'")
    ev = {"event_id": "e1", "user_id": 1, "ts": datetime(2026, 3, 1, 10), "event_type": "visit", "channel": "email",
          "campaign_id": None, "device": "mobile", "product_id": None, "revenue_cents": None}
    before = views()
    checked = contracts.check("events", frame([ev, ev | {"event_id": "e2", "user_id": 2}]), wh)
    assert checked.good["event_id"].to_list() == ["e1"]
    assert checked.bad.select("_rule", "_reason").to_dicts() == [
        {"_rule": "unknown user_id", "_reason": "user_id 2 has no row in users"}]
    assert views() == before  # the rows checked (and the keys looked up) are not left registered


def test_duplicates_in_a_batch_of_several_drops_given_newest_first(wh):
    day, drop1, drop2 = date(2026, 2, 27), date(2026, 2, 27), date(2026, 2, 28)
    rows = [(sales_rows(date=day, units=5), drop2), (sales_rows(date=day, product_id="p2"), drop2),
            (sales_rows(date=day), drop1), (sales_rows(date=day, units=9), drop1), (sales_rows(date=day), drop1)]
    raw = pl.DataFrame([r for r, _ in rows]).with_columns(pl.Series("_partition", [p for _, p in rows]))
    checked = contracts.check("sales", raw.to_arrow(), wh)
    assert checked.good.select("product_id", "units", "_partition").to_dicts() == [
        {"product_id": "p1", "units": 3, "_partition": drop1}, {"product_id": "p2", "units": 3, "_partition": drop2}]
    assert checked.bad.select("_partition", "_row", "_rule", "_reason").to_dicts() == [
        {"_partition": drop1, "_row": 3, "_rule": "duplicate key",
         "_reason": "key (date, store_id, product_id) appears more than once in the drop"},
        {"_partition": drop1, "_row": 4, "_rule": "duplicate row", "_reason": "an identical row appears earlier in the drop"},
        {"_partition": drop2, "_row": 0, "_rule": "duplicate key across days",
         "_reason": "key already delivered in the drop of 2026-02-27"},
    ]


def test_plausible_window_of_landing_drops_and_of_user_sources(tmp_path):
    settings = load_settings(home=tmp_path, sources={"sales": {"path": "s.csv"}}, max_days_before_drop=30,
                             earliest_date=date(2000, 1, 1))
    assert contracts.Plausible.of(settings, "sales") == contracts.Plausible(date(2000, 1, 1), None)
    assert contracts.Plausible.of(settings, "loans") == contracts.Plausible(date(2000, 1, 1), 30)


def test_text_is_trimmed_enums_lower_cased_and_blank_optional_text_null(wh):
    users = pl.DataFrame([{"user_id": 1, "signup_date": D, "signup_channel": "email", "country": "DE", "age_band": None}])
    wh.cursor.register("u", users.with_columns(pl.lit(D).alias("_partition")).to_arrow())
    wh.cursor.execute("insert into users select * from u")
    ev = {"event_id": " e1 ", "user_id": 1, "ts": datetime(2026, 3, 1, 10), "event_type": "visit", "channel": " EMAIL ",
          "campaign_id": "  ", "device": "Tablet", "product_id": "P-7a", "revenue_cents": None}
    # tabs, line breaks and no-break spaces are blank too (DuckDB's plain trim strips spaces only)
    tabbed = {**ev, "event_id": "\te2\r\n", "campaign_id": "\t", "device": "\n", "product_id": " P-7b\t"}
    pasted = {**ev, "event_id": "\u00a0e3\u2003", "campaign_id": "\u00a0", "product_id": "P-7c\u00a0"}
    checked = contracts.check("events", frame([ev, tabbed, pasted]), wh)
    assert checked.bad.height == 0
    got = checked.good.select("event_id", "channel", "campaign_id", "device", "product_id").rows(named=True)
    assert got == [{"event_id": "e1", "channel": "email", "campaign_id": None, "device": "tablet", "product_id": "P-7a"},
                   {"event_id": "e2", "channel": "email", "campaign_id": None, "device": None, "product_id": "P-7b"},
                   {"event_id": "e3", "channel": "email", "campaign_id": None, "device": "tablet", "product_id": "P-7c"}]


def test_meter_readings_are_kept_to_the_hour(wh):
    row = {"ts": datetime(2026, 3, 1, 10, 17, 42), "meter_id": "m1", "region": "north", "kwh": 1.5,
           "temperature_c": 10.0, "is_holiday": False}
    checked = contracts.check("energy", frame([row]), wh)
    assert checked.good["ts"].to_list() == [datetime(2026, 3, 1, 10)]


def test_rows_dated_before_the_earliest_plausible_date(wh):
    earliest = date(2026, 2, 1)
    rows = [sales_rows(date=earliest), sales_rows(date=date(2026, 1, 31), product_id="p2")]
    checked = contracts.check("sales", frame(rows), wh, contracts.Plausible(earliest, 366))
    assert checked.good["date"].to_list() == [earliest]  # the earliest date itself is plausible
    assert checked.bad.select("_rule", "_reason").to_dicts() == [{
        "_rule": "date before the earliest plausible date",
        "_reason": "date 2026-01-31 is before 2026-02-01 (set earliest_date in nightshift.toml if it is real)"}]


def test_rows_dated_long_before_their_drop(wh):
    rows = [sales_rows(date=date(2026, 1, 30)), sales_rows(date=date(2026, 1, 29), product_id="p2")]
    checked = contracts.check("sales", frame(rows), wh, contracts.Plausible(date(1901, 1, 1), 30))
    assert checked.good["date"].to_list() == [date(2026, 1, 30)]  # exactly 30 days before the drop is allowed
    assert checked.bad.select("_rule", "_reason").to_dicts() == [{
        "_rule": "dated long before its drop",
        "_reason": "date 2026-01-29 is more than 30 days before the drop date 2026-03-01 (max_days_before_drop)"}]


def test_only_columns_not_sent_as_their_contract_type_are_cast_in_sql():
    typed = frame([sales_rows()])
    assert contracts.staging_sql(spec("sales"), typed.schema) is None  # a typed Parquet drop: nothing to cast
    cast = contracts.staging_sql(spec("sales"), _as_sent([sales_rows()]).schema)
    for column in ("date", "units", "unit_price_cents", "on_promotion"):
        assert f"as {column}," in cast or f"as {column}\n" in cast
    assert "as store_id" not in cast and "as product_id" not in cast  # text sent as text is only trimmed
    wide = pl.DataFrame([sales_rows()]).with_columns(pl.col("units").cast(pl.Int32)).to_arrow()
    assert "as units" in contracts.staging_sql(spec("sales"), wide.schema)  # INT32 is not the BIGINT contracted
    meters = frame([{"ts": datetime(2026, 3, 1, 10, 17), "meter_id": "m1", "region": "north", "kwh": 1.5,
                     "temperature_c": 10.0, "is_holiday": False}])
    assert "date_trunc('hour', " in contracts.staging_sql(spec("energy"), meters.schema)  # a typed ts is still cut


def test_a_drop_is_judged_the_same_whether_sent_typed_or_as_text(wh):
    rows = [sales_rows(store_id=" s1\t"), sales_rows(product_id="p2", units=-1), sales_rows(product_id="p3", store_id=" "),
            sales_rows(product_id="p4", unit_price_cents=None), sales_rows(product_id="p5", on_promotion=True)]
    typed, text = contracts.check("sales", frame(rows), wh), contracts.check("sales", _as_sent(rows), wh)
    assert typed.good.equals(text.good) and typed.good.height == 2
    assert typed.bad.select("_row", "_rule", "_reason").equals(text.bad.select("_row", "_rule", "_reason"))


def test_a_number_sent_for_a_text_column_is_kept_as_its_text(wh):
    raw = pl.DataFrame([sales_rows(store_id=7)]).with_columns(pl.lit(D).alias("_partition")).to_arrow()
    assert contracts.check("sales", raw, wh).good["store_id"].to_list() == ["7"]
