"""The fault catalogue: bad inputs, each with the behaviour it must get; every row read is accounted for.

Each case builds a few hand-made `sales` drops (small enough to read at a glance) in a fresh home,
loads them with the real ingest, and asserts what was loaded, what was quarantined and why.
"""

from __future__ import annotations

import errno
import os
from datetime import date, timedelta

import polars as pl
import pytest

from nightshift import ingest, night, publish
from nightshift.settings import SettingsError, load_settings
from nightshift.warehouse import Warehouse

D = date(2026, 3, 10)
SCHEMA = {"date": pl.Date, "store_id": pl.String, "product_id": pl.String, "units": pl.Int64,
          "unit_price_cents": pl.Int64, "on_promotion": pl.Boolean}


def rows(day: date, n: int = 3, store: str = "s1", **over) -> list[dict]:
    """`n` good sales rows for `day` (products p0..), with fields overridden."""
    return [{"date": day, "store_id": store, "product_id": f"p{i}", "units": 5 + i, "unit_price_cents": 199,
             "on_promotion": False, **over} for i in range(n)]


def drop(settings, day: date, data: list[dict] | None = None, *, raw: bytes | None = None, name: str = "part-0.parquet"):
    """Write one landing drop of `sales` for `day` (Parquet rows, or raw bytes)."""
    folder = settings.landing_dir / "sales" / f"date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (folder / name).write_bytes(raw)
    else:
        pl.DataFrame(data or [], schema=SCHEMA).write_parquet(folder / name)
    return folder / name


def history(settings, days: int = 3) -> None:
    """Good drops for the days before D."""
    for i in range(days, 0, -1):
        drop(settings, D - timedelta(days=i), rows(D - timedelta(days=i)))


@pytest.fixture
def env(home):
    s = load_settings()
    wh = Warehouse(s.warehouse_path)
    yield s, wh
    wh.close()


def load(s, wh, day: date = D) -> ingest.TableLoad:
    out = ingest.load_table(s, wh, "sales", day)
    loaded = wh.frame("select count(*) as n from sales where _partition <= $d", {"d": day})["n"][0]
    logged = wh.frame("select sum(rows_read) as r, sum(rows_loaded) as l, sum(rows_quarantined) as q "
                      "from _ingest_log where table_name = 'sales'")
    # every row read is accounted for: loaded or quarantined, in this load and in the ledger of loads
    assert out.rows_read == out.rows_loaded + out.rows_quarantined
    if logged["r"][0] is not None:
        assert logged["r"][0] == logged["l"][0] + logged["q"][0]
        assert logged["l"][0] == loaded
    return out


def quarantined(s, day: date = D) -> pl.DataFrame:
    path = s.quarantine_dir / "sales" / f"date={day.isoformat()}" / "rows.parquet"
    return pl.read_parquet(path) if path.exists() else pl.DataFrame()


def test_good_night_loads_everything(env) -> None:
    s, wh = env
    history(s)
    drop(s, D, rows(D))
    out = load(s, wh)
    assert out.usable and out.rows_read == 12 and out.rows_quarantined == 0 and out.day_rows_read == 3


def test_empty_partition_makes_the_table_unusable_for_that_date(env) -> None:
    s, wh = env
    history(s)
    drop(s, D, [])
    out = load(s, wh)
    assert not out.usable and "empty" in out.problem and str(D) in out.problem
    assert out.rows_loaded == 9  # the earlier days are still loaded


def test_missing_partition_names_the_folder_to_deliver(env) -> None:
    s, wh = env
    history(s)
    out = load(s, wh)
    assert not out.usable and "no data for 2026-03-10" in out.problem and "date=2026-03-10" in out.problem


def test_duplicate_rows_keep_one(env) -> None:
    s, wh = env
    history(s)
    r = rows(D)
    drop(s, D, r + [r[0], r[0]])
    out = load(s, wh)
    assert out.usable and out.day_rows_read == 5 and out.day_rows_quarantined == 2
    assert out.reasons == {"duplicate row": 2}
    assert quarantined(s)["_rule"].to_list() == ["duplicate row"] * 2


def test_duplicate_key_in_drop_and_across_days(env) -> None:
    s, wh = env
    history(s)
    r = rows(D)
    again = rows(D - timedelta(days=1))[0] | {"units": 99}  # a key first delivered yesterday, changed
    drop(s, D, r + [r[1] | {"units": 42}, again])
    out = load(s, wh)
    assert out.reasons == {"duplicate key": 1, "duplicate key across days": 1}
    q = quarantined(s).sort("_rule")
    assert q["_rule"].to_list() == ["duplicate key", "duplicate key across days"]
    assert "2026-03-09" in q["_reason"][1]  # names the drop that delivered the key first
    kept = wh.frame("select units from sales where date = $d and product_id = 'p0'", {"d": D - timedelta(days=1)})
    assert kept["units"].to_list() == [5]  # the first delivery wins


def test_nulls_wrong_types_out_of_range_and_future_rows_are_quarantined_with_reasons(env) -> None:
    s, wh = env
    history(s)
    csv = (
        "date,store_id,product_id,units,unit_price_cents,on_promotion\n"
        f"{D},s1,p0,5,199,false\n"
        f"{D},,p1,5,199,false\n"  # null in a required column
        f"{D},s1,p2,five,199,false\n"  # wrong type
        f"{D},s1,p3,-4,199,false\n"  # out of range (units >= 0)
        f"{D},s1,p4,5,0,false\n"  # out of range (price > 0)
        f"{D + timedelta(days=3)},s1,p5,5,199,false\n"  # future timestamp
        f"{D},s1,p6,5,199,maybe\n"  # wrong type (boolean)
    )
    drop(s, D, raw=csv.encode(), name="part-0.csv")
    out = load(s, wh)
    assert out.day_rows_read == 7 and out.day_rows_quarantined == 6
    assert out.reasons == {"null in required column store_id": 1, "wrong type in units": 1, "out of range in units": 1,
                           "out of range in unit_price_cents": 1, "future timestamp": 1,
                           "wrong type in on_promotion": 1}
    q = quarantined(s)
    assert "five is not a valid BIGINT" in " ".join(q["_reason"].to_list())  # the raw value is shown
    assert not out.usable  # 6 of 7 bad is over bad_fraction_limit=0.5
    assert "broke the contract" in out.problem and "quarantine" in out.problem


def test_late_rows_load_but_stay_out_of_the_old_dates_view(env) -> None:
    s, wh = env
    history(s, days=6)
    old = D - timedelta(days=5)
    drop(s, D, rows(D) + rows(old, n=2, store="s9"))  # s9's sales for an old date arrive today
    out = load(s, wh)
    assert out.usable and out.day_rows_quarantined == 0
    # point in time: as of the old date they were unknown; as of D they are there
    assert wh.as_of("sales", old).filter(pl.col("store_id") == "s9").height == 0
    assert wh.as_of("sales", D).filter(pl.col("store_id") == "s9").height == 2


def test_corrupt_parquet_fails_only_its_date_and_says_which_file(env) -> None:
    s, wh = env
    history(s)
    good = drop(s, D, rows(D))
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])  # truncated mid-file
    out = load(s, wh)
    assert not out.usable and str(good) in out.problem and "not a readable Parquet" in out.problem
    assert out.rows_loaded == 9  # the readable days still load
    drop(s, D, rows(D))  # re-delivered: the next run picks it up
    assert load(s, wh).usable


def test_unreadable_csv_from_a_user_source(env, monkeypatch) -> None:
    s, _ = env
    (s.home / "mine").mkdir()
    (s.home / "mine" / "sales.csv").write_bytes(b"date,store_id\n\x00\x01\xff\xfe,\"unterminated\n" + b"\x00" * 50)
    monkeypatch.setenv("NIGHTSHIFT_SOURCES", '{"sales": {"path": "mine/sales.csv"}}')
    s = load_settings()
    wh = Warehouse(s.warehouse_path)
    try:
        out = load(s, wh)
    finally:
        wh.close()
    assert not out.usable and "sales.csv" in out.problem and out.rows_read == 0


def test_renamed_columns_load_through_a_mapping_and_fail_clearly_without(env, monkeypatch) -> None:
    s, _ = env
    (s.home / "mine").mkdir()
    lines = ["day,shop,sku,qty,price,promo"] + [f"{D - timedelta(days=i)},s1,p{j},{j + 1},250,false"
                                                for i in range(3) for j in range(2)]
    (s.home / "mine" / "sales.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("NIGHTSHIFT_SOURCES", '{"sales": {"path": "mine/sales.csv"}}')
    s = load_settings()
    wh = Warehouse(s.warehouse_path)
    try:
        out = load(s, wh)
        assert not out.usable and "no column(s) date, store_id" in out.problem and "[sources.sales.columns]" in out.problem
        mapping = '{"day": "date", "shop": "store_id", "sku": "product_id", "qty": "units", ' \
                  '"price": "unit_price_cents", "promo": "on_promotion"}'
        monkeypatch.setenv("NIGHTSHIFT_SOURCES", '{"sales": {"path": "mine/sales.csv", "columns": ' + mapping + "}}")
        out = load(load_settings(), wh)
        assert out.usable and out.rows_loaded == 6 and out.rows_quarantined == 0
        assert wh.as_of("sales", D)["units"].sum() == 9
    finally:
        wh.close()


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_html_in_names_is_escaped_in_reports(env) -> None:
    s, wh = env
    history(s)
    drop(s, D, rows(D, store=HOSTILE))
    loads = ingest.ingest(s, wh, D, ["sales"])
    assert loads["sales"].usable
    assert wh.as_of("sales", D).filter(pl.col("store_id") == HOSTILE).height == 3  # stored as given
    bad = loads["sales"]
    bad.problem = f"table sales: store {HOSTILE} is odd"  # as if a message quoted the value
    outcome = night.JobOutcome("sales", "failed", error=f"ValueError: unknown store {HOSTILE}")
    _publish(s, wh, loads, [outcome])
    page = (s.reports_dir / D.isoformat() / "index.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def _publish(s, wh, loads, outcomes) -> None:
    build = publish.new_build_dir(s.reports_dir, D.isoformat())
    attempt = night.new_attempt("test")
    night.publish_night(s, D, build, outcomes, attempt, night.table_fingerprints(wh, D, list(loads)),
                        night.data_quality(wh, D, loads))


def test_disk_full_while_publishing_keeps_the_previous_report(env, monkeypatch) -> None:
    s, wh = env
    history(s)
    drop(s, D, rows(D))
    loads = ingest.ingest(s, wh, D, ["sales"])
    _publish(s, wh, loads, [night.JobOutcome("sales", "success", summary={"n": 1})])
    link = s.reports_dir / D.isoformat()
    before, manifest = link.resolve(), (link / "manifest.json").read_text()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        _publish(s, wh, loads, [night.JobOutcome("sales", "success", summary={"n": 2})])
    monkeypatch.undo()
    assert link.resolve() == before and (link / "manifest.json").read_text() == manifest
    assert not list(s.reports_dir.rglob("*.tmp")) and not list(s.reports_dir.glob(".*.link"))
    # the next night cleans the half-built folder and publishes
    assert publish.sweep_orphans(s.reports_dir, D.isoformat()) == 1
    _publish(s, wh, loads, [night.JobOutcome("sales", "success", summary={"n": 3})])
    assert '"n": 3' in (link / "manifest.json").read_text()
    assert len(list((s.reports_dir / ".builds").iterdir())) == 1


def test_disk_full_while_writing_parquet_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "out" / "t.parquet"
    publish.write_parquet_atomic(pl.DataFrame({"a": [1]}), path)

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    with pytest.raises(OSError):
        publish.write_parquet_atomic(pl.DataFrame({"a": [2]}), path)
    monkeypatch.undo()
    assert pl.read_parquet(path)["a"].to_list() == [1] and os.listdir(path.parent) == ["t.parquet"]


@pytest.mark.parametrize(("toml", "match"), [
    ('[sources.sales]\npath = "../../etc/passwd"\n', "outside the home"),
    ('[sources.salez]\npath = "x.csv"\n', "unknown table 'salez'"),
    ('[sources.loans]\npath = "l.duckdb"\ntable = "loans; drop table loans"\n', "not a plain identifier"),
    ('[sources.loans]\npath = "l.duckdb"\nquery = "select 1; drop table loans"\n', "one SELECT"),
    ('[sources.loans]\npath = "l.duckdb"\nquery = "delete from loans"\n', "one SELECT"),
    ('jobs = ["loans\'; drop table x; --"]\n', "not a job name"),
    ('[sources.sales]\npath = "s.csv"\n[sources.sales.columns]\nqty = "units; drop"\n', "names no column"),
])
def test_bad_configuration_is_rejected_before_anything_runs(home, toml: str, match: str) -> None:
    from typer.testing import CliRunner

    from nightshift.cli import app

    (home / "nightshift.toml").write_text(toml)
    with pytest.raises(SettingsError, match=match):
        load_settings()
    out = CliRunner().invoke(app, ["run", "--date", "2026-03-01"])
    assert out.exit_code == 2 and "settings error" in out.output
    assert sorted(p.name for p in home.iterdir()) == ["nightshift.toml"]  # nothing was created


def test_sql_in_a_date_parameter_is_rejected(home) -> None:
    from typer.testing import CliRunner

    from nightshift.cli import app

    out = CliRunner().invoke(app, ["backfill", "--start", "2026-03-01'; drop table sales; --", "--end", "2026-03-02"])
    assert out.exit_code == 2 and "is not a date" in out.output
    assert not (home / "data").exists()
