"""Point in time, once for every mart: nothing that lands after D, and nothing dated after D,
changes what a job reads for D.

Every SQL file under sql/marts is found by glob and run with its bound parameters (defaults in
pit_cases.PARAMS); every table of nightshift.tables.TABLES gets late rows generically. Both job-level
read paths are covered: JobContext.sql (the marts) and JobContext.table (Warehouse.as_of).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pit_cases as pit
import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from nightshift.jobs import JobContext
from nightshift.jobs.sales import history
from nightshift.tables import TABLES
from nightshift.warehouse import SQL_DIR, Warehouse

D = pit.D
READ_MARTS = pit.read_marts()


def context(wh: Warehouse, settings_: object, tmp_path_factory: pytest.TempPathFactory,
            run_date: date = D) -> JobContext:
    return JobContext("pit", run_date, settings_, wh, tmp_path_factory.mktemp("pit_out"))


def mart(ctx: JobContext, name: str) -> pl.DataFrame:
    """A mart `<job>/<name>` as its job reads it (JobContext.sql), in a canonical row order."""
    job, own = name.split("/")
    return pit.canonical(dataclasses.replace(ctx, job=job).sql(own, **pit.job_params(name)))


def same(got: pl.DataFrame, want: pl.DataFrame, what: str) -> None:
    try:
        assert_frame_equal(got, want, check_exact=True)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None


def record_earlier_forecasts(wh: Warehouse, base: Warehouse) -> None:
    """Forecasts made before D, for sales/history_scores: written through sql/state/ (jobs/sales/history.py)."""
    history.ensure_table(wh)
    earlier = [D - timedelta(days=21), D - timedelta(days=14), D - timedelta(days=7)]
    pit.record_forecasts(wh, base, earlier, history.record)


@pytest.fixture(scope="module")
def warehouses(demo_night, tmp_path_factory):
    """base: the tiny demo as loaded by D (plus forecasts made before D); late: the same plus every
    kind of row D must not see; on_time: the same changes delivered by D (the control)."""
    root = tmp_path_factory.mktemp("pit")
    base = pit.copy_warehouse(demo_night.warehouse, root / "base.duckdb")
    for name in TABLES:  # the premise of every comparison below: nothing in the base landed after D
        early = base.frame("select count(*) as n from " + name + " where _partition > $d", {"d": D})  # noqa: S608
        assert early.item() == 0, f"{name}: the base already holds rows landed after {D}"
    record_earlier_forecasts(base, base)
    extra = pit.extra_rows(base)

    late = pit.copy_warehouse(base, root / "late.duckdb")
    for name, rows in pit.late_delivery(extra).items():
        pit.insert(late, name, rows)
    record_earlier_forecasts(late, base)
    # Forecasts made on D and after (dated by their run date), not yet scoreable at D. They cover days
    # up to two weeks before their run date, which no real night writes, so that the mart's own
    # `run_date < $run_date` is tested and not only its `date <= $run_date`.
    pit.record_forecasts(late, base, [D, D + timedelta(days=7)], history.record, first_horizon=-13)

    on_time = pit.copy_warehouse(base, root / "on_time.duckdb")
    pit.on_time(base, on_time, extra)
    record_earlier_forecasts(on_time, base)
    whs = {"base": base, "late": late, "on_time": on_time}
    yield whs
    for wh in whs.values():
        wh.close()


@pytest.fixture(scope="module")
def contexts(warehouses, demo_night, tmp_path_factory):
    return {k: context(wh, demo_night.settings, tmp_path_factory) for k, wh in warehouses.items()}


@pytest.fixture(scope="module")
def base_outputs(contexts):
    return {name: mart(contexts["base"], name) for name in READ_MARTS}


# -- the marts are found, and each is a read with known parameters or a listed state change --------
def test_marts_are_discovered_and_state_marts_listed():
    names = pit.mart_names()
    assert len(names) == len(list(SQL_DIR.joinpath("marts").rglob("*.sql"))) and "loans/features" in names
    missing = [m for m in pit.STATE_MARTS if m not in names]
    assert not missing, f"STATE_MARTS lists marts that no longer exist: {missing}; update pit_cases.py"
    assert sorted(m for m in names if pit.writes(m)) == sorted(pit.STATE_MARTS), (
        "the marts that write state changed: list them in pit_cases.STATE_MARTS (and make sure the "
        "fixtures create what the read marts need)"
    )


@pytest.mark.parametrize("name", READ_MARTS)
def test_every_mart_parameter_has_a_default(name):
    params = pit.bound_params(name)  # raises, naming the parameter, for one PARAMS does not know
    assert params.get("run_date") == D, f"{name} does not bind $run_date: it cannot be point-in-time"


def test_an_unknown_parameter_fails_loudly(monkeypatch):
    monkeypatch.delitem(pit.PARAMS, "pending_days")
    with pytest.raises(LookupError, match=r"loans/features\.sql binds \$pending_days"):
        pit.bound_params("loans/features")


# -- every mart and every table: the late warehouse reads exactly like the base for D --------------
@pytest.mark.parametrize("name", READ_MARTS)
def test_mart_output_for_d_ignores_late_and_future_rows(name, contexts, base_outputs):
    same(mart(contexts["late"], name), base_outputs[name], f"{name} for {D} with rows landed after D")


@pytest.mark.parametrize("name", READ_MARTS)
def test_control_the_extra_rows_matter_to_every_mart_when_on_time(name, contexts, base_outputs):
    """Without this, an unchanged output could mean the extra rows never touch the mart."""
    assert not mart(contexts["on_time"], name).equals(base_outputs[name]), (
        f"{name}: the same changes delivered by D leave its output unchanged, so the late rows test "
        "nothing for it; extend pit_cases.extra_rows"
    )


@pytest.mark.parametrize("table", sorted(TABLES))
def test_as_of_ignores_late_and_future_rows(table, contexts):
    want = pit.canonical(contexts["base"].table(table))
    same(pit.canonical(contexts["late"].table(table)), want, f"as_of({table}, {D})")
    assert not pit.canonical(contexts["on_time"].table(table)).equals(want), f"{table}: the control changed nothing"


# -- explicit cases: a late default label (loans), late orders (inventory) -------------------------
@pytest.fixture
def scratch(warehouses, tmp_path):
    with pit.copy_warehouse(warehouses["base"], tmp_path / "scratch.duckdb") as wh:
        yield wh


def undecided_application(ctx: JobContext) -> str:
    """An application applied well before D whose repaid/default outcome nobody knew at D."""
    feats = dataclasses.replace(ctx, job="loans").sql("features", pending_days=pit.PARAMS["pending_days"])
    open_ = feats.filter(pl.col("defaulted").is_null() & (pl.col("application_date") < D - timedelta(days=60)))
    assert open_.height > 0, "the demo has no undecided application to label late"
    return open_.sort("application_id")["application_id"][0]


@pytest.mark.parametrize("observed", [D - timedelta(days=3), D + timedelta(days=2)])
def test_late_default_label_is_no_training_label_at_d(scratch, demo_night, tmp_path_factory, base_outputs,
                                                    observed):
    ctx = context(scratch, demo_night.settings, tmp_path_factory)
    app = undecided_application(ctx)
    landed = D + timedelta(days=3)
    pit.insert(scratch, "loan_outcomes", pl.DataFrame(
        {"application_id": [app], "observed_date": [observed], "status": ["default"], "_partition": [landed]}))

    for name in ("loans/features", "loans/label_lag"):
        same(mart(ctx, name), base_outputs[name], f"{name} for {D} with a default observed {observed}, landed {landed}")
    row = dataclasses.replace(ctx, job="loans").sql("features", pending_days=pit.PARAMS["pending_days"]).filter(
        pl.col("application_id") == app)
    assert row["defaulted"].to_list() == [None] and row["role"].to_list() != ["train"]

    # control: the night the label lands, the same mart reads it as a training label
    later = context(scratch, demo_night.settings, tmp_path_factory, landed)
    row = dataclasses.replace(later, job="loans").sql("features", pending_days=pit.PARAMS["pending_days"]).filter(
        pl.col("application_id") == app)
    assert row.select("defaulted", "role").rows() == [(1, "train")]


def test_late_orders_do_not_change_inventory_features_at_d(scratch, demo_night, tmp_path_factory, base_outputs):
    """Inventory rows of the last lead time re-landed after D with other `ordered` (demand)."""
    recent = scratch.as_of("inventory", D).filter(pl.col("date") > D - timedelta(days=10))
    assert recent.height > 0
    landed = D + timedelta(days=1)
    relanded = recent.with_columns((pl.col("ordered") * 3 + 5).alias("ordered"), pl.lit(landed).alias("_partition"))
    pit.insert(scratch, "inventory", relanded)

    ctx = context(scratch, demo_night.settings, tmp_path_factory)
    same(mart(ctx, "inventory/features"), base_outputs["inventory/features"], "inventory_features with late orders")

    # control: on the landing night the re-landed version is the demand the mart reads
    later = dataclasses.replace(context(scratch, demo_night.settings, tmp_path_factory, landed),
                                job="inventory").sql("features")
    keys = ["warehouse_id", "product_id", "date"]
    seen = relanded.select(*keys, pl.col("ordered").cast(pl.Float64).alias("want")).join(later, on=keys)
    assert seen.height == relanded.height and (seen["demand"] == seen["want"]).all()


def test_late_activity_does_not_retain_a_user_at_d(scratch, demo_night, tmp_path_factory, base_outputs):
    """An event landed after D, dated inside a cohort user's closed horizon in which the user was idle."""
    ctx = context(scratch, demo_night.settings, tmp_path_factory)
    idle = mart(ctx, "behavior/retention").filter(pl.col("retained") == 0).sort("user_id", "horizon").row(0, named=True)
    signup = scratch.as_of("users", D).filter(pl.col("user_id") == idle["user_id"])["signup_date"].item()
    when = datetime.combine(signup + timedelta(days=idle["horizon"]), datetime.min.time()) + timedelta(hours=12)
    landed = D + timedelta(days=1)
    pit.insert(scratch, "events", pl.DataFrame(
        {"event_id": ["late-activity"], "user_id": [idle["user_id"]], "ts": [when], "event_type": ["page_view"],
         "channel": ["organic"], "_partition": [landed]}))
    same(mart(ctx, "behavior/retention"), base_outputs["behavior/retention"], "retention with late activity")
    # control: once landed, the same event retains the user
    later = mart(context(scratch, demo_night.settings, tmp_path_factory, landed), "behavior/retention")
    row = later.filter((pl.col("user_id") == idle["user_id"]) & (pl.col("horizon") == idle["horizon"]))
    assert row["retained"].to_list() == [1]


def test_a_late_event_at_a_tied_session_start_keeps_the_sessions_channel_at_d(scratch, demo_night, tmp_path_factory):
    """A session whose first timestamp two events share takes the smaller event id's channel: one landed
    after D, with a smaller id and another channel, must not change it."""
    start = mart(context(scratch, demo_night.settings, tmp_path_factory), "behavior/user_day").sort(
        "user_id", "day").row(0, named=True)
    first = scratch.as_of("events", D).filter(
        (pl.col("user_id") == start["user_id"]) & (pl.col("ts").cast(pl.Date) == start["day"])).sort("ts").row(
        0, named=True)
    other = [c for c in ("search", "social") if c != first["channel"]][0]
    tie = {**first, "event_id": "~tie", "event_type": "page_view", "channel": first["channel"]}
    pit.insert(scratch, "events", pl.DataFrame([{**tie, "_partition": D}]).drop("revenue_cents"))
    ctx = context(scratch, demo_night.settings, tmp_path_factory)
    tied = mart(ctx, "behavior/user_day")  # the start is now tied; its channel is still first's
    landed = D + timedelta(days=2)
    late = {**first, "event_id": "!late", "event_type": "page_view", "channel": other}  # '!' sorts before any id
    pit.insert(scratch, "events", pl.DataFrame([{**late, "_partition": landed}]).drop("revenue_cents"))
    same(mart(ctx, "behavior/user_day"), tied, "user_day with a late event at a tied session start")
    later = mart(context(scratch, demo_night.settings, tmp_path_factory, landed), "behavior/user_day")
    row = later.filter((pl.col("user_id") == start["user_id"]) & (pl.col("day") == start["day"]))
    assert other in row["channel"].to_list()  # control: once landed, its channel is the session's


def test_an_impression_relanded_after_d_keeps_its_channel_and_device(scratch, demo_night, tmp_path_factory):
    """The impressions mart takes channel and device from the events table at the end: a later version of
    the same event (same id, user and time) landed after D must not be joined in."""
    ctx = context(scratch, demo_night.settings, tmp_path_factory)
    before = mart(ctx, "behavior/impressions")
    event_id = before.sort("event_id")["event_id"][0]
    event = scratch.as_of("events", D).filter(pl.col("event_id") == event_id).row(0, named=True)
    other = [c for c in ("search", "social") if c != event["channel"]][0]
    pit.insert(scratch, "events", pl.DataFrame([{**event, "channel": other, "_partition": D + timedelta(days=1)}]))
    same(mart(ctx, "behavior/impressions"), before, "impressions with a relanded event")


def test_sales_dated_after_d_do_not_make_a_product_known_to_sales(scratch, demo_night, tmp_path_factory):
    """Planned sales rows (dated after D, landed by D) of a product the inventory holds and sales never saw."""
    stocked = scratch.as_of("inventory", D).sort("date").row(0, named=True)
    pit.insert(scratch, "inventory", pl.DataFrame([{**stocked, "product_id": "~unsold", "_partition": stocked["date"]}]))
    ctx = context(scratch, demo_night.settings, tmp_path_factory)
    feats = mart(ctx, "inventory/features")
    assert not feats.filter(pl.col("product_id") == "~unsold")["has_sales"].any()
    planned = D + timedelta(days=5)
    sale = scratch.as_of("sales", D).row(0, named=True)
    pit.insert(scratch, "sales", pl.DataFrame([{**sale, "product_id": "~unsold", "date": planned, "_partition": D}]))
    same(mart(ctx, "inventory/features"), feats, "inventory features with sales planned after D")
    later = mart(context(scratch, demo_night.settings, tmp_path_factory, planned), "inventory/features")
    assert later.filter(pl.col("product_id") == "~unsold")["has_sales"].all()  # control: known once dated


def test_restated_application_dates_do_not_change_label_lags_at_d(scratch, warehouses, demo_night, tmp_path_factory,
                                                                   base_outputs):
    """Decided applications re-delivered with another application date: landed after D, or dated after D."""
    decided = scratch.as_of("loan_outcomes", D).filter(pl.col("status").is_in(["repaid", "default"]))
    apps = scratch.as_of("loans", D).filter(pl.col("application_id").is_in(decided["application_id"].unique().implode()))
    assert apps.height > 1
    half = apps.height // 2
    restated_late = apps.head(half).with_columns(pl.col("application_date") - timedelta(days=30),
                                                 pl.lit(D + timedelta(days=1)).alias("_partition"))
    restated_future = apps.tail(apps.height - half).with_columns(pl.lit(D + timedelta(days=3)).alias("application_date"),
                                                                 pl.lit(D).alias("_partition"))
    pit.insert(scratch, "loans", pl.concat([restated_late, restated_future]))
    ctx = context(scratch, demo_night.settings, tmp_path_factory)
    same(mart(ctx, "loans/label_lag"), base_outputs["loans/label_lag"], "label_lag with restated application dates")
    # control: once both restatements are known, the lags change
    later = {name: mart(context(wh, demo_night.settings, tmp_path_factory, D + timedelta(days=3)), "loans/label_lag")
             for name, wh in (("restated", scratch), ("base", warehouses["base"]))}
    assert not later["restated"].equals(later["base"])


def test_history_scores_count_the_forecast_days_up_to_d_and_no_later(warehouses, base_outputs):
    """The forecasts made before D (D-21, D-14, D-7, each for 14 days) are scored on their days up to D
    alone: a day after D has no actual yet (a daily series would read it as zero sold)."""
    scores = base_outputs["sales/history_scores"].sort("run_date")
    made = {D - timedelta(days=n): n for n in (21, 14, 7)}
    want = {}
    for run_date, ago in made.items():
        series = warehouses["base"].as_of("sales", run_date, ["store_id", "product_id"]).unique().height
        want[run_date] = series * min(ago, 14)  # days run_date+1 .. min(run_date+14, D)
    assert dict(zip(scores["run_date"], scores["points"], strict=True)) == want


def test_a_month_is_scored_on_the_sales_dated_by_d_not_on_planned_days(scratch):
    """A monthly forecast for D's month is matched with the month's sales as of D: a sales row dated later
    in the month (planned, landed by D) is not part of it yet."""
    made = D - timedelta(days=3)
    forecast = pit.forecasts(scratch, made, first_horizon=3, days=1).head(1).with_columns(pl.lit("monthly").alias("freq"))
    history.record(scratch, made, forecast)
    before = history.scores(scratch, D).filter(pl.col("run_date") == made)
    assert before.height == 1
    sale = scratch.as_of("sales", D).row(0, named=True)
    series = forecast.row(0, named=True)
    planned = {**sale, "store_id": series["store_id"], "product_id": series["product_id"], "units": 50,
               "date": D + timedelta(days=5), "_partition": D}
    pit.insert(scratch, "sales", pl.DataFrame([planned]))
    same(history.scores(scratch, D).filter(pl.col("run_date") == made), before, "a month's score with a planned day")
    later = history.scores(scratch, D + timedelta(days=5)).filter(pl.col("run_date") == made)
    assert not later.equals(before)  # control: on its day, the planned row is part of the month


# -- property: any subset of late rows, in any arrival order, leaves D's reads unchanged ------------
@pytest.fixture(scope="module")
def arrivals(warehouses, tmp_path_factory):
    """A copy of the base to deliver late rows into (and remove them again after each example)."""
    wh = pit.copy_warehouse(warehouses["base"], tmp_path_factory.mktemp("pit_hyp") / "hyp.duckdb")
    record_earlier_forecasts(wh, warehouses["base"])
    pool = {}
    for name, kinds in pit.extra_rows(warehouses["base"]).items():
        pool[name] = pl.concat([kinds[k] for k in ("relanded_1", "relanded_2", "new", "future")], how="vertical_relaxed")
    yield wh, pool
    wh.close()


@st.composite
def deliveries(draw, pool: dict[str, pl.DataFrame]) -> dict[str, list[tuple[int, int]]]:
    """Per table, which pool rows arrive and how many nights after D (a row may arrive twice)."""
    return {
        name: draw(st.lists(st.tuples(st.integers(0, rows.height - 1), st.integers(1, 400)), max_size=30))
        for name, rows in pool.items()
    }


def test_point_in_time_for_random_arrival_orders(arrivals, base_outputs):
    wh, pool = arrivals
    ctx = JobContext("pit", D, None, wh, None)  # only reads: no settings or output folder needed
    as_of = {name: pit.canonical(wh.as_of(name, D)) for name in TABLES}

    # Each example runs every mart: no shrinking (hundreds of reruns); a failure names the mart and
    # prints the deliveries. No example database: nothing is written into the working tree.
    @settings(max_examples=6, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def check(data):
        plan = data.draw(deliveries(pool))
        try:
            for name, picks in plan.items():
                if picks:
                    idx, nights = zip(*picks, strict=True)
                    rows = pool[name][list(idx)].with_columns(
                        (pl.lit(D) + pl.duration(days=pl.Series(nights))).cast(pl.Date).alias("_partition"))
                    pit.insert(wh, name, rows)
            for name in READ_MARTS:
                same(mart(ctx, name), base_outputs[name], f"{name} after deliveries {plan}")
            for name in TABLES:
                same(pit.canonical(wh.as_of(name, D)), as_of[name], f"as_of({name}) after deliveries")
        finally:
            for name in TABLES:
                wh.execute("delete from " + name + " where _partition > $d", {"d": D})  # noqa: S608

    check()
