"""A user's own data: DuckDB tables and queries mapped onto the canonical columns; input stamps."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from nightshift import ingest, runs
from nightshift.backfill import plan
from nightshift.settings import SettingsError, load_settings
from nightshift.sources import SourceError, input_stamp, user_partitions
from nightshift.warehouse import Warehouse


def _erp(path):
    con = duckdb.connect(str(path))
    con.execute("create table daily_sales (day date, shop varchar, sku varchar, qty bigint, price bigint, promo boolean, note varchar)")
    con.execute("insert into daily_sales values ('2026-02-27', 's1', 'p1', 3, 250, false, 'x'),"
                " ('2026-02-28', 's1', 'p1', 4, 250, true, 'y'), ('2026-03-01', 's1', 'p1', -2, 250, false, 'z')")
    con.close()


MAPPING = 'day = "date"\nshop = "store_id"\nsku = "product_id"\nqty = "units"\nprice = "unit_price_cents"\npromo = "on_promotion"\n'


@pytest.mark.parametrize("how", ['table = "daily_sales"', 'query = "select * from daily_sales where shop = \'s1\'"'])
def test_duckdb_table_or_query_source(home, how):
    _erp(home / "erp.duckdb")
    (home / "nightshift.toml").write_text(f'[sources.sales]\npath = "erp.duckdb"\n{how}\n[sources.sales.columns]\n{MAPPING}')
    settings = load_settings()
    parts = list(user_partitions(settings, "sales", date(2026, 3, 1)))
    assert [p.day for p in parts] == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
    with Warehouse(settings.warehouse_path) as wh:
        load = ingest.ingest(settings, wh, date(2026, 3, 1), ["sales"])["sales"]
        assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (3, 2, 1)
        assert load.reasons == {"out of range in units": 1}
        assert wh.as_of("sales", date(2026, 2, 28))["units"].to_list() == [3, 4]


def test_missing_required_column_names_the_mapping_to_add(home):
    pl.DataFrame({"day": ["2026-03-01"], "shop": ["s1"]}).write_csv(home / "s.csv")
    (home / "nightshift.toml").write_text('[sources.sales]\npath = "s.csv"\n[sources.sales.columns]\nday = "date"\nshop = "store_id"\n')
    with pytest.raises(SourceError, match=r"no column\(s\) product_id, units.*\[sources.sales.columns\]"):
        list(user_partitions(load_settings(), "sales", date(2026, 3, 1)))


def test_backfill_reruns_a_succeeded_date_whose_input_changed(home):
    settings = load_settings()
    drop = settings.landing_dir / "sales" / "date=2026-03-01"
    drop.mkdir(parents=True)
    pl.DataFrame({"x": [1]}).write_parquet(drop / "part-0.parquet")
    stamp = input_stamp(settings, date(2026, 3, 1))
    runs.save_attempt(settings, date(2026, 3, 1), {"run_id": "a", "started": "s", "ended": "e", "status": "success",
                                                   "jobs": {}, "input_stamp": stamp})
    assert plan(settings, date(2026, 3, 1), date(2026, 3, 1))[0].run is False
    pl.DataFrame({"x": [1, 2]}).write_parquet(drop / "part-0.parquet")  # re-delivered
    step = plan(settings, date(2026, 3, 1), date(2026, 3, 1))[0]
    assert step.run and "input changed" in step.why


def _sales_csv(path):
    pl.DataFrame({"day": ["2026-02-28", "2026-03-01"], "shop": ["s1", "s1"], "sku": ["p1", "p1"], "qty": [3, 4],
                  "dollars": [2.5, 2.5]}).write_csv(path)


def test_a_query_reads_the_source_files_without_a_duckdb_file_and_expressions_map_columns(home):
    _sales_csv(home / "sales.csv")
    (home / "nightshift.toml").write_text(
        '[sources.sales]\npath = "sales.csv"\nquery = "select * from source where qty > 3"\n'
        '[sources.sales.columns]\nday = "date"\nshop = "store_id"\nsku = "product_id"\nunits = "qty * 10"\n'
        'unit_price_cents = "round(dollars * 100)"\non_promotion = false\n')
    parts = list(user_partitions(load_settings(), "sales", date(2026, 3, 1)))
    assert [p.day for p in parts] == [date(2026, 3, 1)]
    row = pl.from_arrow(parts[0].read()).to_dicts()[0]
    assert (row["units"], row["unit_price_cents"], row["on_promotion"]) == (40, 250, False)


@pytest.mark.parametrize("reads", ["read_csv('{outside}')", "read_text('{outside}')"])
def test_a_query_cannot_read_a_file_outside_its_declared_source(home, tmp_path_factory, reads):
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.csv"
    outside.write_text("a\n1\n")
    _sales_csv(home / "sales.csv")
    query = "select * from " + reads.format(outside=outside)  # noqa: S608 (the attack under test)
    (home / "nightshift.toml").write_text(f'[sources.sales]\npath = "sales.csv"\nquery = "{query}"\n')
    with pytest.raises(SourceError, match="reading .* failed: Permission Error"):
        list(user_partitions(load_settings(), "sales", date(2026, 3, 1)))


def test_a_symlink_out_of_the_home_and_an_absolute_path_outside_are_refused(home, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    _sales_csv(elsewhere / "sales.csv")
    (home / "exports").mkdir()
    (home / "exports" / "sales.csv").symlink_to(elsewhere / "sales.csv")
    (home / "nightshift.toml").write_text('[sources.sales]\npath = "exports/*.csv"\n')
    with pytest.raises(SettingsError, match="outside the home"):
        list(user_partitions(load_settings(), "sales", date(2026, 3, 1)))
    (home / "nightshift.toml").write_text(f'[sources.sales]\npath = "{elsewhere / "sales.csv"}"\n')
    with pytest.raises(SettingsError, match="outside the home .*allowed_roots"):
        load_settings()
    (home / "nightshift.toml").write_text(
        f'allowed_roots = ["{elsewhere}"]\n[sources.sales]\npath = "{elsewhere / "sales.csv"}"\n'
        '[sources.sales.columns]\nday = "date"\nshop = "store_id"\nsku = "product_id"\nqty = "units"\n'
        'unit_price_cents = "round(dollars * 100)"\non_promotion = false\n')
    assert len(list(user_partitions(load_settings(), "sales", date(2026, 3, 1)))) == 2


def test_fixing_a_wrong_mapping_recovers_the_table_that_references_it(home):
    """Outcomes quarantined as `unknown application_id` under a wrong loans mapping load once it is fixed."""
    loans = {"id": ["a1", "a2"], "other_id": ["x1", "x2"], "who": ["p1", "p2"], "day": ["2026-02-27", "2026-02-27"],
             "amount_cents": [100_000, 200_000], "annual_income_cents": [5_000_000, 6_000_000]}
    pl.DataFrame(loans).write_csv(home / "loans.csv")
    pl.DataFrame({"app": ["a1", "a2"], "seen": ["2026-03-01", "2026-03-01"], "status": ["repaid", "default"]}) \
        .write_csv(home / "outcomes.csv")
    outcomes = ('[sources.loan_outcomes]\npath = "outcomes.csv"\n[sources.loan_outcomes.columns]\n'
                'app = "application_id"\nseen = "observed_date"\n')

    def night(id_column: str) -> dict:
        (home / "nightshift.toml").write_text(
            f'[sources.loans]\npath = "loans.csv"\n[sources.loans.columns]\n{id_column} = "application_id"\n'
            'who = "applicant_id"\nday = "application_date"\ninterest_rate = 10.0\nterm_months = 36\n'
            'debt_to_income = 0.2\ncredit_score = 700\nemployment_years = 5.0\nhome_ownership = "\'rent\'"\n'
            'purpose = "\'car\'"\nregion = "\'north\'"\n' + outcomes)
        settings = load_settings()
        with Warehouse(settings.warehouse_path) as wh:
            return ingest.ingest(settings, wh, date(2026, 3, 1), ["loans", "loan_outcomes"])

    wrong = night("other_id")
    assert wrong["loan_outcomes"].reasons == {"unknown application_id": 2} and not wrong["loan_outcomes"].usable
    fixed = night("id")
    assert fixed["loan_outcomes"].usable and fixed["loan_outcomes"].rows_loaded == 2


def test_a_declared_source_time_zone_turns_wall_times_into_utc(home):
    pl.DataFrame({"ts": ["2026-07-01 12:00:00", "2026-07-01T12:00:00+00:00", "2026-03-29 01:30:00"],
                  "meter_id": ["m1", "m2", "m3"], "region": ["r"] * 3, "kwh": [1.0] * 3,
                  "is_holiday": [False] * 3}).write_csv(home / "meters.csv")
    (home / "nightshift.toml").write_text('[sources.energy]\npath = "meters.csv"\ntimezone = "Europe/London"\n')
    settings = load_settings()
    with Warehouse(settings.warehouse_path) as wh:
        load = ingest.ingest(settings, wh, date(2026, 7, 1), ["energy"])["energy"]
        rows = wh.as_of("energy", date(2026, 7, 1)).sort("meter_id")
    assert rows["ts"].to_list() == [datetime(2026, 7, 1, 11), datetime(2026, 7, 1, 12)]  # BST is UTC+1
    assert load.reasons == {"null in required column ts": 1}  # 01:30 on 29 March does not exist in London


def test_an_unknown_time_zone_is_refused(home):
    (home / "nightshift.toml").write_text('[sources.energy]\npath = "m.csv"\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(SettingsError, match="not a time zone name"):
        load_settings()
