"""Small trends across stored nights: read from earlier manifests, drawn only with enough nights."""

from __future__ import annotations

import json
from datetime import date, timedelta

from nightshift import trends
from nightshift.night import JobOutcome
from nightshift.reporting import render
from nightshift.reporting.charts import sparkline

D = date(2026, 3, 10)


def _publish(reports, day: date, auc: float, seconds: float, status: str = "success", quarantined: int = 0) -> None:
    (reports / str(day)).mkdir(parents=True)
    manifest = {"jobs": {"loans": {"status": status, "seconds": seconds, "summary": {"holdout_auc": auc}}},
                "inputs": {"loans": {"day_rows_read": 100, "day_rows_quarantined": quarantined},
                           "loan_outcomes": {"day_rows_read": 10, "day_rows_quarantined": 0}}}
    (reports / str(day) / "manifest.json").write_text(json.dumps(manifest))


def test_each_measure_over_the_stored_nights_and_tonight(tmp_path):
    _publish(tmp_path, D - timedelta(days=3), 0.80, 30.0, quarantined=5)
    _publish(tmp_path, D - timedelta(days=2), 0.82, 1.0, status="reused")  # a reused night took no time
    _publish(tmp_path, D - timedelta(days=1), 0.84, 31.0)
    _publish(tmp_path, D - timedelta(days=40), 0.10, 99.0)  # outside the window
    tonight = {"holdout AUC (higher is better)": 0.85, trends.SECONDS: 32.0, trends.ROWS_LOADED: 110,
               trends.QUARANTINED: 0}
    got = {t.label: t for t in trends.job_trends("loans", trends.earlier_nights(tmp_path, D), D, tonight)}
    auc = got["holdout AUC (higher is better)"]
    assert auc.values == [0.80, 0.82, 0.84, 0.85] and auc.dates[0] == "2026-03-07" and auc.days == [0, 1, 2, 3]
    assert got[trends.SECONDS].values == [30.0, 31.0, 32.0] and got[trends.SECONDS].days == [0, 2, 3]
    assert got[trends.QUARANTINED].values == [5, 0, 0, 0]
    assert got[trends.ROWS_LOADED].values == [105, 110, 110, 110]


def test_too_few_nights_draw_nothing(tmp_path):
    _publish(tmp_path, D - timedelta(days=1), 0.84, 31.0)
    assert trends.job_trends("loans", trends.earlier_nights(tmp_path, D), D, {trends.SECONDS: 3.0}) == []


def test_a_failed_night_has_no_model_quality(tmp_path):
    assert trends.measures("loans", {"status": "failed", "summary": {"holdout_auc": 0.9}, "seconds": 2.0}, {}) == {}


def test_the_sparkline_is_numbers_only_and_escapes_its_label():
    svg = str(sparkline([0, 1, 3], [2.0, 4.0, 3.0], label='<script>alert("x")</script>'))
    assert svg.startswith('<svg class="spark"') and "<script>" not in svg and "&lt;script&gt;" in svg
    points = svg.split('points="')[1].split('"')[0].split()
    assert len(points) == 3
    xs = [float(p.split(",")[0]) for p in points]
    assert xs[0] < xs[1] < xs[2] and xs[2] - xs[1] > xs[1] - xs[0]  # a missing night leaves its gap
    assert "nan" not in str(sparkline([0, 1, 2], [5.0, 5.0, 5.0]))  # a flat line, no division by zero


def test_the_night_page_and_a_job_page_show_the_trends(tmp_path):
    for i, auc in ((3, 0.80), (2, 0.82), (1, 0.84)):
        _publish(tmp_path, D - timedelta(days=i), auc, 30.0)
    record = {"status": "success", "seconds": 33.0, "summary": {"holdout_auc": 0.86}, "models": {}, "error": None,
              "warnings": [], "stale_from": None}
    manifest = {"run_id": "r", "status": "success", "trigger": "t", "started": "s", "finished": "f", "inputs": {},
                "jobs": {"loans": record}}
    night_page = render("run.html.j2", run_date=str(D), manifest=manifest,
                        job_trends=trends.night_trends(tmp_path, D, manifest))
    assert night_page.count('<svg class="spark"') == 2  # AUC and seconds; no rows without inputs tonight
    assert "holdout AUC (higher is better)" in night_page and "33.0" in night_page
    job_page = render("failed.html.j2", run_date=str(D), job="loans", title="Loans",
                      outcome=JobOutcome("loans", "failed", error="boom"),
                      trends=trends.job_trends("loans", trends.earlier_nights(tmp_path, D), D,
                                               {trends.SECONDS: 12.0}))
    assert "Across nights" in job_page and job_page.count('<svg class="spark"') == 1
