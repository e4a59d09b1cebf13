"""What a finished night publishes (`night_pages`): the manifest, failure pages, pages kept from the
last good run (stale), jobs a subset run left out, and the index of nights. Jobs are stood in for by
hand-written pages and outcomes; nothing is computed."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path

import pytest

from nightshift import __version__, night_pages, publish, reporting
from nightshift.jobs import JOBS
from nightshift.night_pages import (
    JobOutcome,
    carry_over,
    failed,
    overall_status,
    previous_manifest,
    publish_night,
    write_reports_index,
)
from nightshift.settings import load_settings

D = date(2026, 3, 10)


@pytest.fixture
def s(tmp_path: Path):
    return load_settings(home=tmp_path)


def _attempt(run_id: str, **more) -> dict:
    return {"run_id": run_id, "started": "2026-03-11T01:00:00+00:00", **more}


def _success(s, build: Path, job: str, text: str, **kw) -> JobOutcome:
    """A job that wrote its page, one table and one shareable file into the build."""
    (build / job).mkdir(parents=True)
    (build / job / "table.txt").write_text(text)
    (build / f"{job}.html").write_text(f"<html>{text}</html>")
    (build / "shareable" / job).mkdir(parents=True)
    (build / "shareable" / job / "t.txt").write_text(text)
    return JobOutcome(job, "success", outputs=[f"{job}.html", f"{job}/table.txt"], **kw)


def _night(s, outcomes_of, attempt: dict, fingerprints=None, quality=None) -> tuple[Path, dict, Path]:
    """Publish one night for D; `outcomes_of(build)` writes the jobs' files and returns their outcomes."""
    build = publish.new_build_dir(s.reports_dir, D.isoformat())
    page = publish_night(s, D, build, outcomes_of(build), attempt, fingerprints or {}, quality or {})
    link = s.reports_dir / D.isoformat()
    return page, json.loads((link / "manifest.json").read_text()), link


# -- the manifest of a night -------------------------------------------------------------------------------

def test_a_first_night_writes_its_manifest_pages_and_the_index(s) -> None:
    quality = {"sales": {"drops": 1, "rows_read": 10, "rows_loaded": 10, "rows_quarantined": 0,
                         "first_drop": "2026-03-10", "last_drop": "2026-03-10", "drops_loaded_now": 1, "reasons": {},
                         "missing_drops": [], "usable": True, "problem": None, "errors": [], "day_rows_read": 10,
                         "day_rows_quarantined": 0}}
    attempt = _attempt("r1", trigger="schedule", log="/logs/r1.log")
    page, m, link = _night(s, lambda b: [_success(s, b, "sales", "one", seconds=1.5, summary={"mae": 2.0}),
                                         JobOutcome("loans", "failed", error="ValueError: boom")],
                           attempt, {"sales": "abc"}, quality)
    assert page == s.reports_dir / "2026-03-10" / "index.html" and page.is_file()
    assert link.is_symlink() and page.resolve().parent.parent == s.reports_dir / ".builds"
    assert m["run_date"] == "2026-03-10" and m["run_id"] == "r1" and m["nightshift_version"] == __version__
    assert m["status"] == "partial" and m["started"] == "2026-03-11T01:00:00+00:00"
    assert datetime.fromisoformat(m["finished"]).tzinfo is not None
    assert m["trigger"] == "schedule" and m["log"] == "/logs/r1.log"
    assert m["inputs"] == quality and m["input_hashes"] == {"sales": "abc"}
    assert set(m["jobs"]) == {"sales", "loans"}
    sales, loans = m["jobs"]["sales"], m["jobs"]["loans"]
    assert sales["produced_by"] == loans["produced_by"] == "r1"
    assert sales["seconds"] == 1.5 and sales["summary"] == {"mae": 2.0} and sales["outputs"] == ["sales.html",
                                                                                                 "sales/table.txt"]
    assert sales["log"] == "" and sales["stale_from"] is None  # only a failed job points at the log
    # the failed job: its own page, naming the error, the log and the job's title
    assert loans["log"] == "/logs/r1.log" and loans["outputs"] == ["loans.html"] and loans["stale_from"] is None
    failure = (link / "loans.html").read_text()
    assert "ValueError: boom" in failure and "/logs/r1.log" in failure and JOBS["loans"].title in failure
    assert "<title>loans failed · 2026-03-10" in failure
    assert "<code>nightshift run --date 2026-03-10 --jobs loans</code>" in failure
    assert (link / "sales.html").read_text() == "<html>one</html>"
    assert m["attention"] == [{"text": "loans failed: ValueError: boom (full traceback in /logs/r1.log)",
                               "link": "loans.html"}]
    assert m["change"] == {}  # nothing earlier to compare with
    # the shareable tier lists the good job only; the run page links the shared assets
    shared = json.loads((link / "shareable" / "manifest.json").read_text())
    assert shared == {"run_date": "2026-03-10", "files": {}}
    night_page = page.read_text()
    assert 'href="../assets/' in night_page and "ValueError: boom" in night_page
    assert "<title>nightshift · 2026-03-10</title>" in night_page and '<a href="../index.html">All nights</a>' in night_page
    assert (s.reports_dir / "assets").is_dir()
    assert "2026-03-10/index.html" in (s.reports_dir / "index.html").read_text()


def test_an_attempt_without_trigger_or_log_is_manual_and_has_no_log(s) -> None:
    _, m, link = _night(s, lambda b: [JobOutcome("loans", "failed", error="E: x")], _attempt("r1"))
    assert m["trigger"] == "manual" and m["log"] == "" and m["status"] == "failed"
    assert m["jobs"]["loans"]["log"] == ""
    assert "This run kept no log file" in (link / "loans.html").read_text()


def test_the_shareable_page_lists_good_and_reused_jobs_only(s) -> None:
    entry = [{"file": "x.parquet", "kind": "non-person", "output": "x"}]
    written: dict = {}
    real = night_pages.shareable.write_page

    def spy(build, run_date, shareable):
        written.update(shareable)
        real(build, run_date, {})

    mp = pytest.MonkeyPatch()
    mp.setattr(night_pages.shareable, "write_page", spy)
    try:
        _night(s, lambda b: [JobOutcome("sales", "success", shareable=entry),
                             JobOutcome("inventory", "reused", shareable=entry),
                             JobOutcome("loans", "failed", shareable=entry),
                             JobOutcome("energy", "skipped", shareable=entry),
                             JobOutcome("behavior", "success")], _attempt("r1"))
    finally:
        mp.undo()
    assert written == {"sales": entry, "inventory": entry}


def test_the_night_page_draws_each_jobs_trend_over_the_earlier_nights(s) -> None:
    for days, seconds in ((2, 10.0), (1, 14.0)):
        day = D.replace(day=10 - days)
        build = publish.new_build_dir(s.reports_dir, day.isoformat())
        publish_night(s, day, build, [JobOutcome("sales", "success", seconds=seconds)], _attempt(f"r{days}"), {}, {})
        assert '<svg class="spark"' not in (s.reports_dir / day.isoformat() / "index.html").read_text()
    page, _, _ = _night(s, lambda b: [JobOutcome("sales", "success", seconds=12.0)], _attempt("r0"))
    assert page.read_text().count('<svg class="spark"') == 1  # the job's seconds over the three nights
    assert "job seconds over 3 nights, 2026-03-08 to 2026-03-10" in page.read_text()


def test_change_compares_with_last_nights_summaries(s) -> None:
    yesterday = D.replace(day=9)
    build = publish.new_build_dir(s.reports_dir, yesterday.isoformat())
    publish_night(s, yesterday, build, [JobOutcome("sales", "success", summary={"mae": 3.0})], _attempt("r0"), {}, {})
    _, m, _ = _night(s, lambda b: [JobOutcome("sales", "success", summary={"mae": 2.0})], _attempt("r1"))
    assert m["change"] == {"sales": {"mae": {"last night": 3.0, "a week ago": None}}}


# -- a job that failed or was skipped keeps its last good page -----------------------------------------------

def test_a_failed_job_keeps_the_last_good_page_marked_stale(s) -> None:
    _night(s, lambda b: [_success(s, b, "sales", "good")], _attempt("r1"))
    _, m, link = _night(s, lambda b: [JobOutcome("sales", "failed", error="E: bad")], _attempt("r2", log="l2"))
    sales = m["jobs"]["sales"]
    assert sales["stale_from"] == "r1" and sales["outputs"] == ["sales.html", "sales/table.txt"]
    assert sales["produced_by"] == "r2" and sales["log"] == "l2"
    assert (link / "sales.html").read_text() == "<html>good</html>"  # no failure page over the good one
    assert (link / "sales" / "table.txt").read_text() == "good"
    assert (link / "shareable" / "sales" / "t.txt").read_text() == "good"
    assert m["status"] == "failed"
    # the next failure has no good page left to keep: the stale page is not carried again
    _, m3, link = _night(s, lambda b: [JobOutcome("sales", "failed", error="E: worse")], _attempt("r3"))
    assert m3["jobs"]["sales"]["stale_from"] is None and m3["jobs"]["sales"]["outputs"] == ["sales.html"]
    assert "E: worse" in (link / "sales.html").read_text()


def test_a_kept_page_from_a_manifest_without_outputs_lists_none(s) -> None:
    _night(s, lambda b: [_success(s, b, "sales", "good")], _attempt("r1"))
    manifest = s.reports_dir / D.isoformat() / "manifest.json"
    old = json.loads(manifest.read_text())
    del old["jobs"]["sales"]["outputs"]  # a record that lists no outputs
    manifest.write_text(json.dumps(old))
    _, m, link = _night(s, lambda b: [JobOutcome("sales", "failed", error="E: bad")], _attempt("r2"))
    assert m["jobs"]["sales"]["stale_from"] == "r1" and m["jobs"]["sales"]["outputs"] == []
    assert (link / "sales.html").read_text() == "<html>good</html>"


def test_a_skipped_job_keeps_a_reused_page_and_gets_no_failure_page(s) -> None:
    _night(s, lambda b: [_success(s, b, "sales", "good")], _attempt("r1"))

    def reused(build: Path) -> list[JobOutcome]:
        assert carry_over(s, D, "sales", build)
        return [JobOutcome("sales", "reused", outputs=["sales.html", "sales/table.txt"])]

    _, m2, _ = _night(s, reused, _attempt("r2"))
    assert m2["jobs"]["sales"]["produced_by"] == "r1" and m2["status"] == "success"
    _, m3, link = _night(s, lambda b: [JobOutcome("sales", "skipped", error="no data")], _attempt("r3", log="l3"))
    sales = m3["jobs"]["sales"]
    assert sales["stale_from"] == "r2" and sales["outputs"] == ["sales.html", "sales/table.txt"]
    assert sales["log"] == "" and sales["produced_by"] == "r3"
    assert (link / "sales.html").read_text() == "<html>good</html>"
    assert m3["status"] == "failed"


def test_a_skipped_job_without_a_good_page_gets_no_page(s) -> None:
    _, m, link = _night(s, lambda b: [JobOutcome("sales", "skipped", error="no data")], _attempt("r1", log="l"))
    assert m["jobs"]["sales"]["outputs"] == [] and m["jobs"]["sales"]["log"] == ""
    assert not (link / "sales.html").exists()


def test_a_reused_job_names_the_run_that_made_it(s) -> None:
    _night(s, lambda b: [_success(s, b, "sales", "good")], _attempt("r1"))
    _, m, _ = _night(s, lambda b: [JobOutcome("sales", "reused"), JobOutcome("loans", "reused", produced_by="r0")],
                     _attempt("r2"))
    assert m["jobs"]["sales"]["produced_by"] == "r1" and m["jobs"]["loans"]["produced_by"] == "r0"


def test_a_failed_outcome_made_by_an_earlier_run_keeps_its_log_and_page(s) -> None:
    _, m, link = _night(s, lambda b: [JobOutcome("loans", "failed", error="E: x", produced_by="r0", log="l0")],
                        _attempt("r1", log="l1"))
    assert m["jobs"]["loans"]["log"] == "l0" and m["jobs"]["loans"]["outputs"] == []
    assert not (link / "loans.html").exists()


# -- a subset run keeps the jobs it left out ---------------------------------------------------------------

def test_a_subset_run_keeps_the_left_out_jobs_with_their_pages_and_records(s) -> None:
    _night(s, lambda b: [_success(s, b, "sales", "s1"), _success(s, b, "loans", "l1", summary={"auc": 0.8}),
                         JobOutcome("energy", "failed", error="E: e"), JobOutcome("behavior", "success")],
           _attempt("r1", log="l1"))
    # behavior, which runs again, comes first in the manifest: the jobs after it are still kept
    _, m, link = _night(s, lambda b: [_success(s, b, "sales", "s2"), JobOutcome("behavior", "success")],
                        _attempt("r2", log="l2"))
    assert set(m["jobs"]) == {"sales", "loans", "energy", "behavior"}
    loans, energy = m["jobs"]["loans"], m["jobs"]["energy"]
    assert loans["status"] == "success" and loans["produced_by"] == "r1" and loans["summary"] == {"auc": 0.8}
    assert loans["outputs"] == ["loans.html", "loans/table.txt"] and loans["stale_from"] is None
    assert (link / "loans.html").read_text() == "<html>l1</html>"
    assert (link / "loans" / "table.txt").read_text() == "l1"
    assert (link / "shareable" / "loans" / "t.txt").read_text() == "l1"
    assert (link / "sales.html").read_text() == "<html>s2</html>"
    # the failed job left out keeps its failure page and its own log, not tonight's
    assert energy["status"] == "failed" and energy["log"] == "l1" and energy["produced_by"] == "r1"
    assert "E: e" in (link / "energy.html").read_text()
    assert m["status"] == "partial"
    # kept again by a third subset run: still the outputs of r1, not of r2 (the night they were kept in)
    _, m3, link = _night(s, lambda b: [_success(s, b, "sales", "s3")], _attempt("r3"))
    assert m3["jobs"]["loans"]["produced_by"] == "r1" and m3["jobs"]["behavior"]["produced_by"] == "r2"
    assert (link / "loans.html").read_text() == "<html>l1</html>"


def test_a_left_out_record_without_outputs_or_produced_by_is_kept_from_the_previous_run(s) -> None:
    _night(s, lambda b: [_success(s, b, "sales", "s1"), _success(s, b, "loans", "l1")], _attempt("r1"))
    manifest = s.reports_dir / D.isoformat() / "manifest.json"
    old = json.loads(manifest.read_text())
    del old["jobs"]["loans"]["produced_by"]  # a manifest from before the field existed
    old["jobs"]["loans"]["outputs"] = []
    old["jobs"]["loans"]["from_the_future"] = 1  # a field this version does not know
    manifest.write_text(json.dumps(old))
    _, m, link = _night(s, lambda b: [_success(s, b, "sales", "s2")], _attempt("r2"))
    loans = m["jobs"]["loans"]
    assert loans["produced_by"] == "r1" and loans["outputs"] == [] and "from_the_future" not in loans
    assert not (link / "loans.html").exists()  # nothing listed, nothing carried


# -- the pieces -------------------------------------------------------------------------------------------

def test_previous_manifest_is_none_before_the_first_night(s) -> None:
    assert previous_manifest(s, D) is None
    _night(s, lambda b: [JobOutcome("sales", "success")], _attempt("r1"))
    assert previous_manifest(s, D)["run_id"] == "r1"
    assert previous_manifest(s, D.replace(day=11)) is None


def test_carry_over_copies_a_jobs_outputs_and_names_their_build(s, tmp_path: Path) -> None:
    build = tmp_path / "new"
    build.mkdir()
    assert carry_over(s, D, "sales", build) is None  # nothing published for the date
    _night(s, lambda b: [_success(s, b, "sales", "good")], _attempt("r1"))
    published = os.readlink(s.reports_dir / D.isoformat())
    assert carry_over(s, D, "sales", build) == Path(published).name
    assert (build / "sales.html").read_text() == "<html>good</html>"
    assert (build / "sales" / "table.txt").read_text() == "good"
    assert (build / "shareable" / "sales" / "t.txt").read_text() == "good"
    (build / "sales" / "table.txt").write_text("newer")  # copied into an existing folder
    assert carry_over(s, D, "sales", build) and (build / "sales" / "table.txt").read_text() == "good"
    # a job with a folder but no page: copied, but nothing to mark stale with
    (s.reports_dir / D.isoformat() / "sales.html").unlink()
    other = tmp_path / "other"
    other.mkdir()
    assert carry_over(s, D, "sales", other) is None
    assert (other / "sales" / "table.txt").read_text() == "good"
    assert carry_over(s, D, "loans", other) is None and not (other / "loans").exists()


def _inner() -> None:
    raise ValueError("boom")


def _a() -> None:
    _inner()


def _b() -> None:
    _a()


def _c() -> None:
    _b()


def _d() -> None:
    _c()


def _e() -> None:
    _d()


def _outer() -> None:
    _e()


def test_failed_keeps_the_error_and_the_end_of_the_traceback() -> None:
    try:
        _outer()
    except ValueError as e:
        out = failed("sales", e, 2.5)
    assert (out.job, out.status, out.seconds, out.error) == ("sales", "failed", 2.5, "ValueError: boom")
    tb = out.extra["traceback"]
    assert tb.endswith("ValueError: boom\n")
    # the five innermost frames and the error line; not the outer ones, nor the header
    assert [line.rsplit(" in ", 1)[1] for line in tb.splitlines() if line.startswith('  File "')] == [
        "_d", "_c", "_b", "_a", "_inner"]
    assert "Traceback (most recent call last)" not in tb
    assert failed("sales", RuntimeError("x")).seconds == 0.0


def test_failed_keeps_a_short_traceback_whole() -> None:
    try:
        raise KeyError("k")
    except KeyError as e:
        out = failed("loans", e)
    assert out.error == "KeyError: 'k'"
    assert out.extra["traceback"].startswith("Traceback (most recent call last)")


@pytest.mark.parametrize(("statuses", "expected"), [
    (["success", "reused"], "success"),
    (["success", "failed"], "partial"),
    (["reused", "skipped"], "partial"),
    (["failed", "skipped"], "failed"),
    (["failed"], "failed"),
    ([], "success"),
])
def test_overall_status(statuses: list[str], expected: str) -> None:
    assert overall_status([JobOutcome(f"j{i}", st) for i, st in enumerate(statuses)]) == expected


def test_the_index_lists_every_published_night_newest_first(s, monkeypatch) -> None:
    def manifest(day: str, **m) -> None:
        folder = s.reports_dir / day
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps(m))

    manifest("2026-03-01", run_date="2026-03-01", status="success", finished="2026-03-02T01:00:00+00:00",
             trigger="catch-up", jobs={"sales": {"status": "success", "seconds": 1.5},
                                       "old_job": {"status": "failed", "seconds": 2.5}},
             attention=[{"text": "a", "link": "#"}])
    manifest("2026-03-03", run_date="2026-03-03", status="partial", finished="2026-03-04T01:00:00+00:00",
             jobs={"loans": {"status": "failed"}, "sales": {"status": "reused", "seconds": 3.0}})
    (s.reports_dir / "2026-03-02").mkdir()  # a date folder without a manifest
    (s.reports_dir / "assets").mkdir(exist_ok=True)
    seen: dict = {}
    real = reporting.write_page

    def spy(path, template, **context):
        seen.update(context, path=path, template=template)
        real(path, template, **context)

    monkeypatch.setattr(reporting, "write_page", spy)
    path = write_reports_index(s)
    assert path == s.reports_dir / "index.html" == seen["path"] and seen["template"] == "reports_index.html.j2"
    assert seen["nights"] == [
        {"date": "2026-03-03", "status": "partial", "finished": "2026-03-04T01:00:00+00:00", "trigger": None,
         "caught_up": False, "jobs": {"loans": "failed", "sales": "reused"}, "attention": [], "seconds": 3.0},
        {"date": "2026-03-01", "status": "success", "finished": "2026-03-02T01:00:00+00:00", "trigger": "catch-up",
         "caught_up": True, "jobs": {"sales": "success", "old_job": "failed"},
         "attention": [{"text": "a", "link": "#"}], "seconds": 4.0},
    ]
    assert seen["job_names"] == [*JOBS, "old_job"]
    assert seen["root"] == "." and seen["assets"] == "assets" and seen["shareable_link"] == ""
    html = path.read_text()
    assert html.index("2026-03-03/index.html") < html.index("2026-03-01/index.html")
    assert "caught up" in html and 'href="assets/' in html and '<a href="./index.html">All nights</a>' in html
    assert "each night's shareable page" in html  # no link: the index belongs to no one night
