"""Contracts and loading: each broken rule quarantines exactly the bad rows, with the reason;
loads are idempotent; reads are point-in-time."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pyarrow as pa
import pytest

from nightshift import contracts, ingest
from nightshift.settings import load_settings
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


def test_duplicate_key_across_days_keeps_the_first_delivery(wh):
    first = frame([sales_rows(date=date(2026, 2, 28))], date(2026, 2, 28))
    wh.cursor.register("f", contracts.check("sales", first, wh).good.to_arrow())
    wh.cursor.execute("insert into sales select * from f")
    again = contracts.check("sales", frame([sales_rows(date=date(2026, 2, 28))], D), wh)
    assert again.bad["_rule"].to_list() == ["duplicate key across days"]


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
