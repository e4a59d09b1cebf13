"""The nightly flow end to end on a small generated dataset, under Prefect's test harness."""

from __future__ import annotations

import json
import os
from datetime import date

import polars as pl
import pytest

D = date(2026, 3, 1)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """Tiny demo data, one night of the fast jobs, then an unchanged re-run of the same date."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import nightly
    from nightshift import demo
    from nightshift.settings import load_settings

    home = tmp_path_factory.mktemp("night")
    old = os.environ.get("NIGHTSHIFT_HOME")
    os.environ["NIGHTSHIFT_HOME"] = str(home)
    try:
        settings = load_settings()
        demo.generate(settings.landing_dir, end=D, size="tiny", seed=5)
        with prefect_test_harness(server_startup_timeout=120):
            first = nightly(run_date=D, jobs=["loans", "inventory"])
            link_first = (settings.reports_dir / D.isoformat()).resolve()
            again = nightly(run_date=D, jobs=["loans", "inventory"])
        yield settings, first, again, link_first
    finally:
        if old is None:
            os.environ.pop("NIGHTSHIFT_HOME", None)
        else:
            os.environ["NIGHTSHIFT_HOME"] = old


def test_the_night_publishes_pages_tables_and_a_manifest(night):
    settings, first, _, _ = night
    assert first["status"] == "success", first
    day = settings.reports_dir / D.isoformat()
    for page in ("index.html", "loans.html", "inventory.html", "manifest.json"):
        assert (day / page).is_file(), page
    assert pl.read_parquet(settings.exports_dir / D.isoformat() / "loans" / "scores.parquet").height > 0
    assert not (day / "loans" / "scores.parquet").exists()  # person-level rows are exports, not reports
    manifest = json.loads((day / "manifest.json").read_text())
    assert set(manifest["jobs"]) == {"loans", "inventory"}
    assert manifest["inputs"]["sales"]["rows_read"] == (
        manifest["inputs"]["sales"]["rows_loaded"] + manifest["inputs"]["sales"]["rows_quarantined"])
    assert len(manifest["input_hashes"]) == 7
    assert manifest["jobs"]["loans"]["models"]  # the model version used is recorded
    index = (settings.reports_dir / "index.html").read_text()
    assert f'href="{D.isoformat()}/index.html"' in index
    assert (settings.reports_dir / "assets" / "plotly.min.js").is_file()
    # Offline: no page loads anything from the network.
    for page in day.glob("*.html"):
        text = page.read_text()
        assert "http://" not in text.replace("http://www.w3.org", "") and "https://cdn" not in text, page


def test_an_unchanged_rerun_reuses_the_work_and_swaps_the_report_atomically(night):
    settings, first, again, link_first = night
    assert again["status"] == "success"
    assert {j["status"] for j in again["jobs"].values()} == {"reused"}
    link_again = (settings.reports_dir / D.isoformat()).resolve()
    assert link_again != link_first and not link_first.exists()  # the old build was replaced whole
    assert (settings.reports_dir / D.isoformat() / "loans.html").is_file()


def test_a_reused_job_does_not_import_its_libraries(night):
    """An unchanged re-run in a fresh process: every job is reused and XGBoost (loans') is never loaded."""
    import subprocess
    import sys

    settings, _, _, _ = night
    code = ("import sys; from nightshift.night import run_night; from nightshift.settings import load_settings; "
            f"r = run_night(load_settings(), __import__('datetime').date.fromisoformat('{D}'), ['loans', 'inventory']); "
            "print(sorted({j['status'] for j in r.jobs.values()}), 'xgboost' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NIGHTSHIFT_HOME": str(settings.home)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['reused'] False", out.stdout


def test_status_shows_the_night(night, monkeypatch):
    from typer.testing import CliRunner

    from nightshift.cli import app

    settings, *_ = night
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(settings.home))
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "60"})  # narrow, like cron mail
    assert result.exit_code == 0
    assert result.output.startswith("2026-03-01  success") and "…" not in result.output  # nothing cut
    assert "    loans: reused" in result.output
    records = json.loads(CliRunner().invoke(app, ["status", "--json"]).output)
    assert records[0]["run_date"] == "2026-03-01" and records[0]["jobs"]["loans"]["status"] == "reused"


def test_a_subset_run_keeps_the_other_jobs_pages_marked_with_the_run_that_made_them(night):
    """`run --jobs inventory` after a loans+inventory night: loans' page and scores stay (runs last: it
    publishes a new build of the date)."""
    from nightshift.night import run_night

    settings, *_ = night
    before = json.loads((settings.reports_dir / D.isoformat() / "manifest.json").read_text())
    run_night(settings, D, ["inventory"], force=True)
    manifest = json.loads((settings.reports_dir / D.isoformat() / "manifest.json").read_text())
    assert set(manifest["jobs"]) == {"loans", "inventory"} and manifest["status"] == "success"
    assert manifest["jobs"]["inventory"]["produced_by"] == manifest["run_id"]
    assert manifest["jobs"]["loans"]["produced_by"] not in ("", manifest["run_id"])
    assert manifest["jobs"]["loans"]["produced_by"] in (before["run_id"], before["jobs"]["loans"].get("produced_by"))
    assert (settings.reports_dir / D.isoformat() / "loans.html").is_file()
    assert (settings.reports_dir / D.isoformat() / "loans.html").is_file()
    index = (settings.reports_dir / "index.html").read_text()
    assert index.index("<th>loans</th>") < index.index("<th>inventory</th>")
