"""A log file per night: a failed job's full traceback lands in `<home>/logs/<D>/<run_id>.log`, and the
night page, the job's page and `nightshift run`'s result name that file."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from nightshift import night, nightlog
from nightshift.jobs import JOBS, Job
from nightshift.settings import load_settings

D = date(2026, 3, 10)


def _sales_drops(settings, days: int = 3) -> None:
    """A few good sales drops up to D (as tests/flows/test_faults.py builds them)."""
    for i in range(days, -1, -1):
        day = D - timedelta(days=i)
        folder = settings.landing_dir / "sales" / f"date={day}"
        folder.mkdir(parents=True)
        pl.DataFrame([{"date": day, "store_id": "s1", "product_id": f"p{k}", "units": 5 + k,
                       "unit_price_cents": 199, "on_promotion": False} for k in range(3)]).write_parquet(
            folder / "part-0.parquet")


def _explode(ctx):
    raise ValueError("planted: the sales model blew up")


@dataclass(frozen=True)
class _Broken(Job):
    """The sales job with a planted bug."""

    @property
    def run(self):
        return _explode


def test_a_failed_job_writes_its_traceback_to_the_log_and_its_pages_name_the_file(home, monkeypatch):
    s = load_settings()
    _sales_drops(s)
    monkeypatch.setitem(JOBS, "sales", _Broken("sales", ("sales",), JOBS["sales"].title))
    monkeypatch.setattr(night, "preload", lambda names: None)  # nothing to import for the planted job

    result = night.run_night(s, D, ["sales"])

    assert result.status == "failed"
    manifest = json.loads((s.reports_dir / str(D) / "manifest.json").read_text())
    log = Path(result.log)
    assert log == s.home / "logs" / str(D) / f"{manifest['run_id']}.log"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in _explode" in text
    assert "ValueError: planted: the sales model blew up" in text
    assert manifest["jobs"]["sales"]["log"] == str(log)
    # the night page's attention item and the failed job's own page both name the file
    page = (s.reports_dir / str(D) / "index.html").read_text()
    assert f"sales failed: ValueError: planted: the sales model blew up (full traceback in {log})" in page
    job_page = (s.reports_dir / str(D) / "sales.html").read_text()
    assert str(log) in job_page and "planted: the sales model blew up" in job_page
    assert '<a href="sales.html">sales</a>' in page


def test_the_nights_progress_lines_reach_its_log_file_whoever_shows_them(home, monkeypatch):
    """`nightshift run` shows progress on a live status line; the file must still get every line, once."""
    s = load_settings()
    _sales_drops(s)
    monkeypatch.setitem(JOBS, "sales", _Broken("sales", ("sales",), JOBS["sales"].title))
    monkeypatch.setattr(night, "preload", lambda names: None)
    shown: list[str] = []

    result = night.run_night(s, D, ["sales"], progress=shown.append)

    assert shown[0] == f"{D}: loading the tables" and shown[-1].startswith("published ")
    assert any(line.startswith("sales: failed") for line in shown)
    text = Path(result.log).read_text()
    for line in shown:
        assert text.count(line) == 1, line
    # without a listener (the backfill, the Prefect flow) the file gets them just the same
    quiet = night.run_night(s, D, ["sales"])
    again = Path(quiet.log).read_text()
    assert again.count(f"{D}: loading the tables") == 1 and again.count("sales: failed") == 1
    assert again.count(f"published {quiet.report}") == 1


def test_the_log_keeps_what_the_terminal_does_not_show(tmp_path):
    """Libraries' INFO lines reach the file while a handler that was there keeps its own level."""
    terminal = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(terminal)
    before = root.level
    root.setLevel(logging.WARNING)
    try:
        with nightlog.night_log(tmp_path / "n.log") as path:
            logging.getLogger("prefect.engine").info("telemetry banner")
            assert terminal.level == logging.WARNING  # the terminal still shows warnings only
        assert "telemetry banner" in path.read_text()
        assert root.level == logging.WARNING and terminal.level == logging.NOTSET
    finally:
        root.removeHandler(terminal)
        root.setLevel(before)
