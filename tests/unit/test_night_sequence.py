"""The night's sequence (`nightshift.night`): lock, attempt record, sweep, ingest, jobs, data quality,
publish, record — and what each step leaves in the NightResult, the run record, the manifest and the
published files.

Every night here runs on a few tiny `sales` drops with planted jobs (a `Job` whose `run` is a plain
function) in place of the real ones, so a night takes a second or two. The job pages are drawn by a
recorder instead of the jobs' templates (a planted job has no template of its own); the night page,
the manifest and the swap are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from nightshift import __version__, ingest, night, runs, shareable, sources, trends
from nightshift.jobs import JOBS, Job, JobResult
from nightshift.settings import load_settings
from nightshift.warehouse import Warehouse

D = date(2026, 3, 10)


# -- the setting ------------------------------------------------------------------------------------
def _rows(day: date, n: int = 3, **over: Any) -> list[dict[str, Any]]:
    return [{"date": day, "store_id": "s1", "product_id": f"p{k}", "units": 5 + k, "unit_price_cents": 199,
             "on_promotion": False, **over} for k in range(n)]


SCHEMA = {"date": pl.Date, "store_id": pl.String, "product_id": pl.String, "units": pl.Int64,
          "unit_price_cents": pl.Int64, "on_promotion": pl.Boolean}


def _drop(settings, day: date, rows: list[dict[str, Any]] | None = None, table: str = "sales",
          schema: dict[str, Any] | None = None) -> None:
    """One landing drop of `table` for `day` (good sales rows unless `rows` says otherwise)."""
    folder = settings.landing_dir / table / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(_rows(day) if rows is None else rows, schema=schema or SCHEMA).write_parquet(folder / "part-0.parquet")


def _drops(settings, days: int = 3, until: date = D) -> None:
    """Good sales drops for `until` and the `days` days before it."""
    for i in range(days, -1, -1):
        _drop(settings, until - timedelta(days=i))


def _inventory(settings, day: date) -> None:
    """One good inventory drop for `day`."""
    folder = settings.landing_dir / "inventory" / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame([{"date": day, "warehouse_id": "w1", "product_id": "p0", "on_hand": 4, "received": 0, "ordered": 0,
                   "lead_time_days": 2, "unit_cost_cents": 100, "holding_cost_rate": 0.1,
                   "order_cost_cents": 500}]).write_parquet(folder / "part-0.parquet")


@dataclass(frozen=True)
class _Planted(Job):
    """A registered job whose `run` is the function the test gives it."""

    fn: Callable[[Any], JobResult] | None = field(default=None, compare=False)

    @property
    def run(self) -> Callable[[Any], JobResult]:
        return self.fn


class _Pages:
    """Stands in for `reporting` in night.py: records each job page's template and variables."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str, dict[str, Any]]] = []

    def write_page(self, path: Path, template: str, **context: Any) -> None:
        self.calls.append((Path(path), template, context))
        Path(path).write_text(f"<p>{template}</p>")

    def of(self, job: str) -> dict[str, Any]:
        """The variables of the last page drawn for `job`."""
        return [c for p, t, c in self.calls if t == f"{job}.html.j2"][-1]


@pytest.fixture
def env(home, monkeypatch):
    """Settings of a fresh home with four good sales drops up to D; pages and preloads recorded."""
    s = load_settings()
    _drops(s)
    pages = _Pages()
    preloaded: list[list[str]] = []
    monkeypatch.setattr(night, "reporting", pages)
    monkeypatch.setattr(night, "preload", lambda names: preloaded.append(names))
    loads: list[dict[str, ingest.TableLoad]] = []
    real_ingest_step = night.ingest_step
    monkeypatch.setattr(night, "ingest_step", lambda *a: loads.append(real_ingest_step(*a)) or loads[-1])
    return SimpleNamespace(s=s, pages=pages, preloaded=preloaded, loads=loads)


def plant(monkeypatch, name: str, fn: Callable[[Any], JobResult], tables: tuple[str, ...] = ("sales",),
          shareable_outputs: tuple[str, ...] = ()) -> None:
    monkeypatch.setitem(JOBS, name, _Planted(name, tables, f"The {name} job", shareable=shareable_outputs, fn=fn))


SEL = {"m": {"published": "arima", "winner": "arima", "runner_up": None, "gap": None, "metric": "mase",
             "learned_lost": False}}


def counting(calls: list[Any], **extra: Any) -> Callable[[Any], JobResult]:
    """A good job: counts its calls, writes a forecast of the sales rows it sees, returns a full result."""
    def run(ctx) -> JobResult:
        calls.append(ctx)
        n = ctx.table("sales").height
        ctx.write_parquet("forecast", pl.DataFrame({"rows": [n]}))
        ctx.write_parquet("backtest", pl.DataFrame({"rows": [n]}))
        return JobResult(summary={"rows": n, "mase": 0.5 + len(calls)}, context={"note": "hello", **extra},
                         models={"m": "v1"}, warnings=["a warning"], extra={"device": "cpu"},
                         selections=SEL, headline=f"saw {n} rows")
    return run


def boom(message: str = "planted failure") -> Callable[[Any], JobResult]:
    def run(ctx) -> JobResult:
        raise ValueError(message)
    return run


def manifest(s, day: date = D) -> dict[str, Any]:
    return json.loads((s.reports_dir / str(day) / "manifest.json").read_text())


def attempt(s, day: date = D) -> dict[str, Any]:
    return runs.load_record(s, day)["attempts"][-1]


# -- a good night ------------------------------------------------------------------------------------
def test_a_good_night_publishes_the_jobs_outputs_and_records_what_it_did(env, monkeypatch):
    calls: list[Any] = []
    plant(monkeypatch, "sales", counting(calls), shareable_outputs=("forecast",))
    s = env.s

    result = night.run_night(s, D, ["sales"])

    assert result.status == "success" and not result.alerted and result.run_date == D
    assert result.report == str(s.reports_dir / str(D) / "index.html") and Path(result.report).exists()
    (ctx,) = calls
    assert ctx.job == "sales" and ctx.run_date == D and ctx.settings is s
    assert ctx.out_dir.name == "sales" and ctx.out_dir.parent.parent == s.reports_dir / ".builds"
    assert ctx.out_dir.parent.name.startswith(f"{D}.")
    assert env.preloaded == [["sales"]]
    m = manifest(s)
    job = m["jobs"]["sales"]
    with Warehouse(s.warehouse_path) as wh:
        digest = night.job_input_hash(s, wh, "sales", D)
        prints = night.table_fingerprints(wh, D, list(m["inputs"]))
    assert job["status"] == "success" and job["input_hash"] == digest and job["error"] is None
    assert job["summary"] == {"rows": 12, "mase": 1.5} and job["models"] == {"m": "v1"}
    assert job["warnings"] == ["a warning"] and job["extra"] == {"device": "cpu"}
    assert job["selections"] == SEL and job["headline"] == "saw 12 rows"
    assert job["outputs"] == ["sales/backtest.parquet", "sales/forecast.parquet", "sales.html"]
    assert job["shareable"] == [{"file": "sales/forecast.parquet", "kind": "non-person", "output": "forecast"}]
    assert 0 < job["seconds"] < 60 and job["produced_by"] == m["run_id"]
    published = s.reports_dir / str(D)
    assert pl.read_parquet(published / "sales" / "forecast.parquet")["rows"].to_list() == [12]
    assert (published / "shareable" / "sales" / "forecast.parquet").exists()
    assert (published / "sales.html").read_text() == "<p>sales.html.j2</p>"
    assert m["input_hashes"] == prints and set(prints) >= {"sales"}
    # the run record: the attempt, as the manifest and the result tell it
    a = attempt(s)
    assert a["run_id"] == m["run_id"] and len(a["run_id"]) == 12 and a["trigger"] == "manual"
    assert a["ended"] is not None and a["started"] <= a["ended"] and a["started"] == m["started"]
    assert a["status"] == "success" and a["report"] == result.report and a["log"] == result.log
    assert a["input_stamp"] == sources.input_stamp(s, D)
    assert a["jobs"] == {"sales": {"status": "success", "seconds": round(job["seconds"], 2), "error": None,
                                   "input_hash": digest, "selections": SEL}}
    assert a["tables"]["sales"] == {"read": 12, "loaded": 12, "quarantined": 0, "problem": None, "notes": []}
    assert result.jobs == a["jobs"]


def test_the_job_page_gets_the_jobs_result_title_and_warnings(env, monkeypatch):
    plant(monkeypatch, "sales", counting([], privacy="the job's own"))

    night.run_night(env.s, D, ["sales"])

    (path, template, page), = env.pages.calls
    assert template == "sales.html.j2" and path.name == "sales.html"
    assert page["run_date"] == D and page["job"] == "sales" and page["title"] == "The sales job"
    assert page["warnings"] == ["a warning"] and page["selections"] == SEL
    assert page["answer"] == "saw 12 rows" and page["note"] == "hello"
    assert page["privacy"] == "the job's own"  # a job without the privacy layer keeps its own variable
    assert page["trends"] == []  # one night is no trend


def test_a_job_that_uses_the_privacy_layer_gets_its_section_and_hands_its_releases_on(env, monkeypatch):
    layers: list[Any] = []
    given: list[Any] = []

    def run(ctx) -> JobResult:
        layers.append(ctx.privacy)
        return JobResult(summary={}, context={})

    real_collect = shareable.collect

    def collect(build, job, releases, non_person):
        given.append(releases)
        return real_collect(build, job, releases, non_person)

    monkeypatch.setattr(shareable, "collect", collect)
    plant(monkeypatch, "sales", run)

    night.run_night(env.s, D, ["sales"])

    (layer,) = layers
    section = env.pages.of("sales")["privacy"]
    assert section["job"] == "sales" and section["run_date"] == str(D) and section["releases"] == []
    assert given == [layer.results] and given[0] is layer.results


def test_a_job_without_the_privacy_layer_has_no_privacy_section(env, monkeypatch):
    given: list[Any] = []
    real_collect = shareable.collect
    monkeypatch.setattr(shareable, "collect", lambda b, j, r, n: given.append(r) or real_collect(b, j, r, n))
    plant(monkeypatch, "sales", counting([]))

    night.run_night(env.s, D, ["sales"])

    assert "privacy" not in env.pages.of("sales") and given == [[]]


def test_the_job_page_trends_end_at_tonights_rows_quality_and_seconds(env, monkeypatch):
    """Three nights make a trend; tonight's values come from the date's own drop and the job's result."""
    s = env.s
    _drop(s, D, _rows(D, 4) + [{**_rows(D)[0], "product_id": "p9", "units": -3}])  # one row quarantined
    calls: list[Any] = []
    plant(monkeypatch, "sales", counting(calls))
    for day in (D - timedelta(days=2), D - timedelta(days=1), D):
        night.run_night(s, day, ["sales"])

    got = {t.label: t for t in env.pages.of("sales")["trends"]}
    assert set(got) == {trends.ROWS_LOADED, trends.QUARANTINED, trends.SECONDS, trends.QUALITY["sales"][1]}
    assert got[trends.ROWS_LOADED].values == [3.0, 3.0, 4.0]
    assert got[trends.QUARANTINED].values == [0.0, 0.0, 1.0]
    assert got[trends.QUALITY["sales"][1]].values == [1.5, 2.5, 3.5]
    assert got[trends.SECONDS].dates[-1] == str(D) and 0 < got[trends.SECONDS].last < 60


# -- reuse, force, failure, skip ---------------------------------------------------------------------
def test_an_unchanged_rerun_reuses_the_result_and_force_computes_again(env, monkeypatch):
    s, calls = env.s, []
    plant(monkeypatch, "sales", counting(calls), shareable_outputs=("forecast",))
    first = night.run_night(s, D, ["sales"])
    m1 = manifest(s)

    second = night.run_night(s, D, ["sales"])

    assert len(calls) == 1 and env.preloaded == [["sales"]]  # a reused job neither runs nor imports
    assert second.status == "success" and second.jobs["sales"]["status"] == "reused"
    m2 = manifest(s)
    job = m2["jobs"]["sales"]
    assert job["status"] == "reused" and job["produced_by"] == m1["run_id"] != m2["run_id"]
    assert job["input_hash"] == m1["jobs"]["sales"]["input_hash"] and job["summary"] == {"rows": 12, "mase": 1.5}
    assert job["outputs"] == m1["jobs"]["sales"]["outputs"] and job["headline"] == "saw 12 rows"
    assert 0 <= job["seconds"] < m1["jobs"]["sales"]["seconds"] + 5
    published = s.reports_dir / str(D)
    assert pl.read_parquet(published / "sales" / "forecast.parquet")["rows"].to_list() == [12]
    assert (published / "sales.html").exists() and (published / "shareable" / "sales" / "forecast.parquet").exists()
    assert second.report == first.report

    third = night.run_night(s, D, ["sales"])  # reused from a reused result
    assert third.jobs["sales"]["status"] == "reused" and len(calls) == 1

    forced = night.run_night(s, D, ["sales"], force=True)
    assert forced.jobs["sales"]["status"] == "success" and len(calls) == 2
    assert manifest(s)["jobs"]["sales"]["summary"]["mase"] == 2.5


def test_new_input_or_a_failed_last_run_computes_again(env, monkeypatch):
    s, calls = env.s, []
    plant(monkeypatch, "sales", boom())
    assert night.run_night(s, D, ["sales"]).status == "failed"
    plant(monkeypatch, "sales", counting(calls))

    assert night.run_night(s, D, ["sales"]).jobs["sales"]["status"] == "success" and len(calls) == 1
    _drop(s, D - timedelta(days=1), _rows(D - timedelta(days=1), 5))  # a re-delivered drop
    again = night.run_night(s, D, ["sales"])
    assert again.jobs["sales"]["status"] == "success" and len(calls) == 2
    assert manifest(s)["jobs"]["sales"]["summary"]["rows"] == 14


def test_a_failed_job_does_not_stop_the_others_and_the_night_is_partial_and_alerted(env, monkeypatch):
    s = env.s
    plant(monkeypatch, "sales", boom("the model blew up"))
    plant(monkeypatch, "energy", counting([]))
    alerted: list[tuple] = []
    monkeypatch.setattr(night.alerts, "on_result", lambda *a: alerted.append(a) or [])
    shown: list[str] = []

    result = night.run_night(s, D, ["sales", "energy"], trigger="scheduled", progress=shown.append)

    assert result.status == "partial" and result.alerted
    assert result.jobs["sales"]["status"] == "failed"
    assert result.jobs["sales"]["error"] == "ValueError: the model blew up"
    assert result.jobs["energy"]["status"] == "success"
    assert list(result.jobs) == ["sales", "energy"]  # in the order asked, whichever ran first
    (settings, told, trigger), = alerted
    assert settings is s and trigger == "scheduled"
    assert told == {k: v for k, v in result.as_dict().items() if k != "alerted"}  # told before it is marked
    m = manifest(s)
    assert m["status"] == "partial" and m["trigger"] == "scheduled"
    assert "ValueError: the model blew up" in m["jobs"]["sales"]["extra"]["traceback"]
    assert attempt(s)["trigger"] == "scheduled" and attempt(s)["status"] == "partial"
    assert "job sales failed: the model blew up" in Path(result.log).read_text()
    assert "sales: failed (ValueError: the model blew up)" in shown
    assert any(line.startswith("energy: success in ") and line.endswith(" s") for line in shown)
    # the date's lock says who held it last
    assert "(scheduled, since" in (s.state_dir / "locks" / f"{D}.lock").read_text()


def test_a_good_night_raises_no_alert(env, monkeypatch):
    alerted: list[tuple] = []
    monkeypatch.setattr(night.alerts, "on_result", lambda *a: alerted.append(a) or [])
    plant(monkeypatch, "sales", counting([]))
    assert night.run_night(env.s, D, ["sales"]).alerted is False and alerted == []


def test_a_job_whose_tables_are_unusable_is_skipped_with_their_problems(env, monkeypatch):
    s, calls = env.s, []
    _drop(s, D, [])  # an empty drop: sales is not usable for D
    plant(monkeypatch, "sales", counting(calls), tables=("sales", "inventory", "energy"))
    plant(monkeypatch, "energy", counting([]), tables=("energy",))
    shown: list[str] = []

    result = night.run_night(s, D, ["sales", "energy"], progress=shown.append)

    (loads,) = env.loads
    problems = [loads[t].problem for t in ("sales", "inventory", "energy")]
    assert all(problems) and len(set(problems)) == 3 and attempt(s)["tables"]["sales"]["problem"] == problems[0]
    assert calls == [] and result.jobs["sales"]["status"] == "skipped"
    assert result.jobs["sales"]["error"] == "; ".join(problems)
    assert result.jobs["energy"]["status"] == "skipped" and result.jobs["energy"]["error"] == problems[2]
    assert result.status == "failed" and result.alerted
    assert f"sales: skipped in 0 s ({'; '.join(problems)})" in shown
    assert shown[1].endswith("; not usable tonight: " + ", ".join(t for t, v in loads.items() if v.problem))


def test_a_table_the_job_does_not_need_does_not_skip_it(env, monkeypatch):
    s, calls = env.s, []
    plant(monkeypatch, "sales", counting(calls))
    result = night.run_night(s, D, ["sales"])
    assert env.loads[0]["energy"].problem  # energy has no drops: unusable, but not sales' table
    assert result.jobs["sales"]["status"] == "success" and len(calls) == 1


def test_run_job_skips_only_for_tables_it_has_loads_of(env, monkeypatch):
    """A table missing from `loads` (not loaded tonight) does not skip the job; an unusable one does."""
    s, calls = env.s, []
    plant(monkeypatch, "sales", counting(calls))
    with Warehouse(s.warehouse_path) as wh:
        loads = ingest.ingest(s, wh, D, ["sales"])
        build = s.reports_dir / ".builds" / "b1"
        out = night.run_job(s, wh, D, "sales", build, {})
        assert out.status == "success" and len(calls) == 1
        bad = {"sales": ingest.TableLoad("sales", problem="sales: no drop for D")}
        skipped = night.run_job(s, wh, D, "sales", build, bad)
        assert skipped.status == "skipped" and skipped.error == "sales: no drop for D" and len(calls) == 1
        fine = night.run_job(s, wh, D, "sales", build, loads)
        assert fine.status == "success" and fine.seconds > 0 and len(calls) == 2


# -- the sequence around the jobs -------------------------------------------------------------------
def test_the_attempt_is_recorded_before_the_jobs_run_and_orphan_builds_are_swept(env, monkeypatch):
    s = env.s
    seen: list[dict[str, Any]] = []
    orphan = s.reports_dir / ".builds" / f"{D}.deadbeef"
    (orphan / "sales").mkdir(parents=True)
    other = s.reports_dir / ".builds" / f"{D - timedelta(days=1)}.deadbeef"
    other.mkdir()

    def run(ctx) -> JobResult:
        seen.append(runs.load_record(ctx.settings, ctx.run_date)["attempts"][-1])
        assert not orphan.exists()
        return JobResult(summary={}, context={})

    plant(monkeypatch, "sales", run)
    result = night.run_night(s, D, ["sales"], trigger="backfill")

    (during,) = seen
    assert during["ended"] is None and during["trigger"] == "backfill" and "status" not in during
    assert during["input_stamp"] == sources.input_stamp(s, D) and during["log"] == result.log
    assert during["run_id"] == attempt(s)["run_id"] and len(runs.load_record(s, D)["attempts"]) == 1
    assert other.exists()  # another date's build is none of this night's business
    assert Path(result.log) == s.home / "logs" / str(D) / f"{during['run_id']}.log"


def test_progress_lines_in_order_and_without_a_listener(env, monkeypatch):
    s = env.s
    plant(monkeypatch, "sales", counting([]))
    shown: list[str] = []
    result = night.run_night(s, D, ["sales"], progress=shown.append)
    (tables,) = env.loads
    unusable = [t for t, v in tables.items() if v.problem]
    assert shown[0] == f"{D}: loading the tables"
    assert shown[1] == (f"loaded {len(tables)} tables: 12 rows new, 0 quarantined; "
                        f"not usable tonight: {', '.join(unusable)}")
    assert shown[2] == "running sales" or shown[3] == "running sales"
    assert any(re.fullmatch(r"sales: success in \d+ s", line) for line in shown)
    assert shown[-1] == f"published {result.report}"
    assert len(shown) == 5
    quiet = night.run_night(s, D, ["sales"], force=True)  # no listener: the log file gets them all the same
    assert len(re.findall(r"sales: success in \d+ s", Path(quiet.log).read_text())) == 1


def test_the_jobs_start_longest_first(env, monkeypatch):
    s = env.s
    plant(monkeypatch, "sales", counting([]))
    plant(monkeypatch, "energy", counting([]))
    monkeypatch.setattr(night.estimate, "longest_first", lambda settings, names, day: ["energy", "sales"])
    shown: list[str] = []
    night.run_night(s, D, ["sales", "energy"], progress=shown.append)
    assert "running energy, sales" in shown


def test_the_lock_waits_as_long_as_asked(env, monkeypatch, capsys):
    s = env.s
    plant(monkeypatch, "sales", counting([]))
    with runs.date_lock(s, D, purpose="someone else"):
        capsys.readouterr()
        with pytest.raises(runs.DateLocked, match="someone else"):
            night.run_night(s, D, ["sales"])
        assert "waiting for" not in capsys.readouterr().out  # by default a held date is refused at once
    held = threading.Event()

    def hold() -> None:
        with runs.date_lock(s, D, purpose="someone else"):
            held.set()
            time.sleep(0.5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    try:
        assert night.run_night(s, D, ["sales"], lock_wait_s=30).status == "success"
    finally:
        t.join()


def test_which_jobs_run(env, monkeypatch):
    s = env.s
    plant(monkeypatch, "sales", counting([]))
    plant(monkeypatch, "energy", counting([]))
    monkeypatch.setattr(night, "JOBS", {"sales": JOBS["sales"], "energy": JOBS["energy"]})
    assert list(night.run_night(s, D).jobs) == ["sales", "energy"]  # default: every registered job
    s2 = s.model_copy(update={"jobs": ["energy"]})
    assert list(night.run_night(s2, D).jobs) == ["energy"]  # the `jobs` setting
    assert list(night.run_night(s2, D, ["sales"]).jobs) == ["sales"]  # asked for beats the setting


# -- the date ---------------------------------------------------------------------------------------
def test_the_date_defaults_to_the_latest_complete_one_and_a_later_date_is_refused(env, monkeypatch):
    s = env.s
    plant(monkeypatch, "sales", counting([]))
    assert night.run_night(s, None, ["sales"]).run_date == D
    with pytest.raises(night.NoCompleteDate) as e:
        night.run_night(s, D + timedelta(days=1), ["sales"])
    assert str(e.value) == (f"no data for {D + timedelta(days=1)} yet: the newest date with data for sales is "
                            f"{D}; run that date or deliver {D + timedelta(days=1)}'s")
    # a job on two tables waits for the later one: inventory has data up to D - 2 only
    for i in (3, 2):
        _inventory(s, D - timedelta(days=i))
    plant(monkeypatch, "energy", counting([]), tables=("sales", "inventory"))
    assert night._checked_date(s, None, ["inventory", "sales"], ["energy"]) == D - timedelta(days=2)
    assert night._checked_date(s, D - timedelta(days=1), ["inventory", "sales"], ["energy"]) == D - timedelta(days=1)
    with pytest.raises(night.NoCompleteDate) as e:  # only the tables asked about count: sales' D is not inventory's
        night._checked_date(s, D, ["inventory"], ["stock"])
    assert f"the newest date with data for inventory is {D - timedelta(days=2)}" in str(e.value)
    with pytest.raises(night.NoCompleteDate) as e:
        night._checked_date(s, D + timedelta(days=1), ["inventory", "sales"], ["energy"])
    assert f"the newest date with data for inventory, sales is {D}; run that date" in str(e.value)


def test_no_data_at_all_is_refused_clearly(home):
    s = load_settings()
    with pytest.raises(night.NoCompleteDate) as e:
        night.run_night(s, D, ["sales"])
    assert str(e.value) == (f"no data for {D} yet: the newest date with data for sales is none; "
                            f"run that date or deliver {D}'s")
    with pytest.raises(night.NoCompleteDate) as e:
        night.run_night(s, None, ["sales", "inventory"])
    assert str(e.value) == (f"no date has data for every table that sales, inventory need(s) (in "
                            f"{s.landing_dir} or [sources.*]): run `make demo` or configure sources")
    assert not (s.state_dir / "runs").exists()  # refused before anything is recorded


# -- the steps' pieces --------------------------------------------------------------------------------
def test_data_quality_sums_every_drop_and_names_the_missing_ones(home):
    s = load_settings()
    _drop(s, D - timedelta(days=3), _rows(D - timedelta(days=3), 2) + [
        {**_rows(D)[0], "date": D - timedelta(days=3), "product_id": f"px{k}", "units": -1} for k in range(3)])
    _drop(s, D - timedelta(days=2), _rows(D - timedelta(days=2)) + [
        {**_rows(D)[0], "date": D - timedelta(days=2), "product_id": None}])
    _drop(s, D, _rows(D, 4) + [{**_rows(D)[0], "product_id": None}])  # D - 1 never came
    users = {"user_id": pl.Int64, "signup_date": pl.Date, "signup_channel": pl.String, "country": pl.String}
    for day in (D - timedelta(days=3), D):  # users is not a daily table: its gaps are no missing drops
        _drop(s, day, [{"user_id": day.day, "signup_date": day, "signup_channel": "organic", "country": "NL"}],
              "users", users)
    with Warehouse(s.warehouse_path) as wh:
        loads = ingest.ingest(s, wh, D)
        q = night.data_quality(wh, D, loads)
        bare = night.data_quality(wh, D, {})
        early = night.data_quality(wh, D - timedelta(days=3), {})
        unusable = night.data_quality(wh, D, {"sales": ingest.TableLoad("sales", problem="no drop for D")})
    assert early["sales"]["drops"] == 1 and early["sales"]["rows_read"] == 5 and early["sales"]["missing_drops"] == []
    assert unusable["sales"]["usable"] is False and unusable["sales"]["problem"] == "no drop for D"
    sales, load = q["sales"], loads["sales"]
    assert sales["drops"] == 3 and sales["rows_read"] == 5 + 4 + 5
    assert sales["rows_quarantined"] == 5 and sales["rows_loaded"] == 9
    assert sales["first_drop"] == D - timedelta(days=3) and sales["last_drop"] == D
    assert sales["missing_drops"] == [D - timedelta(days=1)]
    assert list(sales["reasons"].items()) == [  # most frequent first, not in name order
        ("out of range in units", 3), ("null in required column product_id", 2)]
    assert sales["usable"] is load.usable and sales["problem"] == load.problem and sales["errors"] == load.errors
    assert sales["day_rows_read"] == 5 and sales["day_rows_quarantined"] == 1 and sales["drops_loaded_now"] == 3
    assert set(q) == {"sales", "users"} and q["users"]["drops"] == 2 and q["users"]["missing_drops"] == []
    assert {k: bare["sales"][k] for k in ("usable", "problem", "errors", "day_rows_read", "day_rows_quarantined",
                                          "drops_loaded_now")} == {
        "usable": True, "problem": None, "errors": [], "day_rows_read": 0, "day_rows_quarantined": 0,
        "drops_loaded_now": 0}
    assert {k: v for k, v in bare["sales"].items() if k not in (
        "usable", "problem", "errors", "day_rows_read", "day_rows_quarantined", "drops_loaded_now")} == {
        k: v for k, v in sales.items() if k not in (
            "usable", "problem", "errors", "day_rows_read", "day_rows_quarantined", "drops_loaded_now")}


def test_table_fingerprints_change_with_a_tables_drops_up_to_the_date_only(home):
    s = load_settings()
    _drops(s)
    with Warehouse(s.warehouse_path) as wh:
        ingest.ingest(s, wh, D)
        before = night.table_fingerprints(wh, D, ["sales", "energy"])
        before_d1 = night.table_fingerprints(wh, D - timedelta(days=1), ["sales"])
        assert set(before) == {"sales"} and len(before["sales"]) > 8  # energy has no drops
        _drop(s, D, _rows(D, 5))
        ingest.ingest(s, wh, D)
        after = night.table_fingerprints(wh, D, ["sales"])
        assert after["sales"] != before["sales"]
        assert night.table_fingerprints(wh, D - timedelta(days=1), ["sales"]) == before_d1


def test_a_jobs_input_hash_follows_its_inputs_settings_and_version_only(home, monkeypatch):
    s = load_settings()
    _drops(s)
    monkeypatch.setitem(JOBS, "sales", _Planted("sales", ("sales",), "The sales job"))
    monkeypatch.setitem(JOBS, "energy", _Planted("energy", ("sales",), "The energy job"))
    with Warehouse(s.warehouse_path) as wh:
        ingest.ingest(s, wh, D)
        h = night.job_input_hash(s, wh, "sales", D)
        assert len(h) == 16 and int(h, 16) >= 0
        # the recipe: version, job, date, settings less home and jobs, each table's fingerprint
        prints = night.table_fingerprints(wh, D, ["sales"])
        text = (f"{__version__}|sales|{D}|{s.model_dump_json(exclude={'home', 'jobs'})}|sales={prints['sales']}")
        assert h == hashlib.sha256(text.encode()).hexdigest()[:16]
        assert night.job_input_hash(s.model_copy(update={"home": home / "elsewhere", "jobs": ["sales"]}),
                                    wh, "sales", D) == h
        assert night.job_input_hash(s.model_copy(update={"seed": 8}), wh, "sales", D) != h
        assert night.job_input_hash(s, wh, "energy", D) != h
        assert night.job_input_hash(s, wh, "sales", D - timedelta(days=1)) != h
        monkeypatch.setattr(night, "__version__", "0.0.0-other")
        assert night.job_input_hash(s, wh, "sales", D) != h


def test_a_jobs_input_hash_lists_its_tables_in_order(home, monkeypatch):
    s = load_settings()
    _drops(s)
    _inventory(s, D)
    monkeypatch.setitem(JOBS, "energy", _Planted("energy", ("sales", "inventory"), "The energy job"))
    monkeypatch.setitem(JOBS, "sales", _Planted("sales", ("sales",), "The sales job"))
    with Warehouse(s.warehouse_path) as wh:
        ingest.ingest(s, wh, D)
        prints = night.table_fingerprints(wh, D, ["sales", "inventory"])
        text = (f"{__version__}|energy|{D}|{s.model_dump_json(exclude={'home', 'jobs'})}|"
                f"inventory={prints['inventory']}|sales={prints['sales']}")
        assert night.job_input_hash(s, wh, "energy", D) == hashlib.sha256(text.encode()).hexdigest()[:16]
        # a table the job does not read (inventory, for sales) is not in its hash
        only_sales = (f"{__version__}|sales|{D}|{s.model_dump_json(exclude={'home', 'jobs'})}|sales={prints['sales']}")
        assert night.job_input_hash(s, wh, "sales", D) == hashlib.sha256(only_sales.encode()).hexdigest()[:16]


def test_a_new_attempt_is_fresh_and_the_result_as_data():
    a, b = night.new_attempt("scheduled"), night.new_attempt("manual")
    assert a["run_id"] != b["run_id"] and len(a["run_id"]) == 12 and int(a["run_id"], 16) >= 0
    assert a["ended"] is None and a["trigger"] == "scheduled" and b["trigger"] == "manual"
    assert a["started"] <= runs.now() and set(a) == {"run_id", "started", "ended", "trigger"}
    r = night.NightResult(D, "failed", "r.html", {"sales": {"status": "failed"}}, log="n.log")
    assert r.as_dict() == {"run_date": "2026-03-10", "status": "failed", "report": "r.html",
                           "jobs": {"sales": {"status": "failed"}}, "log": "n.log"}
    r.alerted = True
    assert r.as_dict()["alerted"] is True


def test_progress_helpers_word_each_line(monkeypatch):
    loads = {"sales": ingest.TableLoad("sales", rows_loaded=1200, rows_quarantined=3),
             "energy": ingest.TableLoad("energy", rows_loaded=34, rows_quarantined=1000, problem="no drops"),
             "users": ingest.TableLoad("users", problem="no drops")}
    assert night._loaded(loads) == "loaded 3 tables: 1,234 rows new, 1,003 quarantined; not usable tonight: energy, users"
    assert night._loaded({"sales": loads["sales"]}) == "loaded 1 table: 1,200 rows new, 3 quarantined"

    class F:
        def __init__(self, value=None, error=None):
            self.value, self.error = value, error

        def result(self):
            if self.error:
                raise self.error
            return self.value

    ok = night.JobOutcome("sales", "success", 2.6)
    skipped = night.JobOutcome("sales", "skipped", 0.2, error="sales: empty drop")
    assert night._finished("sales", F(ok)) == "sales: success in 3 s"
    assert night._finished("sales", F(skipped)) == "sales: skipped in 0 s (sales: empty drop)"
    assert night._finished("sales", F(error=KeyError("x"))) == "sales: failed (KeyError: 'x')"
    assert night._outcome("sales", F(ok)) is ok
    logged: list[tuple[str, BaseException]] = []
    monkeypatch.setattr(night.nightlog, "record_traceback", lambda message, exc: logged.append((message, exc)))
    bad = ValueError("bad")
    out = night._outcome("sales", F(error=bad))
    assert out.job == "sales" and out.status == "failed" and out.error == "ValueError: bad"
    assert logged == [("job sales failed: bad", bad)]  # the traceback goes to the night's log file


def test_told_passes_each_line_on_and_tolerates_no_listener():
    heard: list[str] = []
    night._told(heard.append)("one")
    night._told(None)("two")
    assert heard == ["one"]


def test_the_night_logs_how_it_ended(env, monkeypatch, caplog):
    plant(monkeypatch, "sales", counting([]))
    with caplog.at_level("INFO", logger="nightshift.night"):
        result = night.run_night(env.s, D, ["sales"])
    assert f"night of {D}: success — {result.report}" in caplog.messages


def test_each_step_is_submitted_by_its_name(env, monkeypatch):
    """A shell (Prefect, Dask) names its tasks by the step; the night hands every step to `submit`."""
    from concurrent.futures import Future

    steps: list[tuple[str, Any]] = []

    def submit(step, fn, *args):
        steps.append((step, fn))
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as e:
            future.set_exception(e)
        return future

    plant(monkeypatch, "sales", counting([]))
    plant(monkeypatch, "energy", boom())
    ingest_step = night.ingest_step  # the fixture's wrapper of the real step
    result = night.run_night(env.s, D, ["sales", "energy"], submit=submit)
    assert [s for s, _ in steps] == ["ingest", "job sales", "job energy", "publish"]  # no past: the given order
    assert dict(steps)["ingest"] is ingest_step and dict(steps)["job sales"] is night.job_step
    assert dict(steps)["publish"] is night.publish_step
    assert result.status == "partial" and result.jobs["energy"]["error"] == "ValueError: planted failure"


def test_every_step_waits_its_turn_for_the_warehouse(env, monkeypatch):
    waits: list[float] = []
    real_open = Warehouse.open.__func__

    def open_(cls, settings, **kw):
        waits.append(kw.get("wait_s"))
        return real_open(cls, settings, **kw)

    monkeypatch.setattr(night.Warehouse, "open", classmethod(open_))
    plant(monkeypatch, "sales", counting([]))
    night.run_night(env.s, D, ["sales"])
    assert len(waits) == 3 and set(waits) == {night.WAREHOUSE_WAIT_S}  # ingest, the job, data quality


def test_the_steps_called_directly(env, monkeypatch):
    """`ingest_step` loads only the tables asked for; `run_job` and `job_step` reuse an unchanged result
    unless forced."""
    s, calls = env.s, []
    loads = night.ingest_step(s, D, ["sales"])
    assert set(loads) == {"sales"} and loads["sales"].rows_loaded == 12
    plant(monkeypatch, "sales", counting(calls))
    night.run_night(s, D, ["sales"])
    build = s.reports_dir / ".builds" / "direct"
    assert night.job_step(s, D, "sales", build, loads).status == "reused" and len(calls) == 1
    with Warehouse(s.warehouse_path) as wh:
        assert night.run_job(s, wh, D, "sales", build, loads).status == "reused" and len(calls) == 1
    assert night.job_step(s, D, "sales", str(build), loads, True).status == "success" and len(calls) == 2
    assert (build / "sales" / "forecast.parquet").exists()


def test_a_tables_notes_are_its_errors_less_its_problem(env, monkeypatch):
    s = env.s
    (s.landing_dir / "sales" / "date=2026-13-45").mkdir()  # not a real date: skipped, with a note
    drop = s.landing_dir / "sales" / f"date={D}" / "part-0.parquet"
    drop.write_bytes(drop.read_bytes()[:40])  # truncated: the date's problem
    plant(monkeypatch, "sales", counting([]))

    result = night.run_night(s, D, ["sales"])

    (loads,) = env.loads
    problem, errors = loads["sales"].problem, loads["sales"].errors
    assert problem in errors and len(errors) == 2
    table = attempt(s)["tables"]["sales"]
    assert table["problem"] == problem and table["notes"] == [e for e in errors if e != problem]
    assert "date=2026-13-45" in table["notes"][0]
    assert table == {"read": 9, "loaded": 9, "quarantined": 0, "problem": problem, "notes": table["notes"]}
    assert result.jobs["sales"] == {"status": "skipped", "seconds": 0.0, "error": problem, "input_hash": "",
                                    "selections": {}}
