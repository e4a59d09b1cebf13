"""Headline numbers beside last night's and a week ago's, from the published manifests."""

from __future__ import annotations

import json
from datetime import date

from nightshift.change import compare
from nightshift.reporting import render


def _publish(reports, day: str, summary: dict) -> None:
    (reports / day).mkdir(parents=True)
    (reports / day / "manifest.json").write_text(json.dumps({"jobs": {"loans": {"summary": summary}}}))


def test_values_of_last_night_and_a_week_ago(tmp_path):
    _publish(tmp_path, "2026-02-28", {"holdout_auc": 0.85, "published": "xgboost", "promoted": True})
    _publish(tmp_path, "2026-02-22", {"holdout_auc": 0.80})
    tonight = {"loans": {"holdout_auc": 0.86, "published": "logistic", "promoted": False, "scored": 10}}
    change = compare(tmp_path, date(2026, 3, 1), tonight)
    assert change == {"loans": {"holdout_auc": {"last night": 0.85, "a week ago": 0.80}}}
    manifest = {"status": "success", "run_id": "r", "trigger": "t", "started": "s", "finished": "f", "inputs": {},
                "change": change, "jobs": {"loans": {"status": "success", "seconds": 1.0, "models": {}, "error": None,
                                                     "warnings": [], "stale_from": None, "summary": tonight["loans"]}}}
    page = render("run.html.j2", run_date="2026-03-01", manifest=manifest)
    assert "▲0.010 vs last night" in page and "▲0.060 vs a week ago" in page


def test_a_first_night_has_nothing_to_compare(tmp_path):
    assert compare(tmp_path, date(2026, 3, 1), {"loans": {"holdout_auc": 0.86}}) == {}
