"""The night's "needs a look" list: each planted problem becomes one sentence linking to its section."""

from __future__ import annotations

from nightshift.attention import needs_a_look
from nightshift.reporting import render

MANIFEST = {
    "run_date": "2026-03-01", "status": "partial", "run_id": "r1", "trigger": "manual", "started": "s",
    "finished": "f",
    "jobs": {
        "loans": {"status": "success", "seconds": 3.0, "summary": {}, "models": {}, "error": None, "stale_from": None,
                  "warnings": ["the learned model xgboost lost to the baseline logistic baseline on the holdout"]},
        "inventory": {"status": "success", "seconds": 2.0, "summary": {"skus_at_risk": 3}, "models": {},
                      "error": None, "stale_from": None, "warnings": []},
        "energy": {"status": "skipped", "seconds": 0.0, "summary": {}, "models": {}, "stale_from": None,
                   "error": "table energy: no data for 2026-03-01", "warnings": []},
        "sales": {"status": "failed", "seconds": 1.0, "summary": {}, "models": {}, "stale_from": None,
                  "error": "ValueError: boom", "warnings": []},
    },
    "inputs": {"sales": {"day_rows_read": 100, "day_rows_quarantined": 20, "problem": None},
               "loans": {"day_rows_read": 100, "day_rows_quarantined": 1, "problem": None}},
}


def test_every_planted_problem_is_one_linked_sentence():
    items = needs_a_look(MANIFEST)
    texts = [i["text"] for i in items]
    assert "sales failed: ValueError: boom" in texts
    assert "energy did not run: table energy: no data for 2026-03-01" in texts
    assert any(t.startswith("loans: the learned model xgboost lost") for t in texts)
    assert any("3 warehouse × SKU may run out of stock" in t for t in texts)
    assert any(t.startswith("table sales: 20% of the rows delivered") for t in texts)
    assert not any("table loans" in t for t in texts)  # 1% quarantined is not news
    assert {i["link"] for i in items} <= {"#jobs", "#quality", "loans.html", "inventory.html"}


def test_the_night_page_opens_with_them():
    page = render("run.html.j2", run_date="2026-03-01",
                  manifest={**MANIFEST, "inputs": {}, "attention": needs_a_look(MANIFEST)})
    assert page.index("Needs a look") < page.index("<h2>Jobs</h2>")
    assert '<a href="#jobs">sales failed: ValueError: boom</a>' in page
