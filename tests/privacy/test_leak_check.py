"""The shareable tier of a demo night holds only DP releases and non-person outputs; the leak check
finds a planted exact count, a person column and an undeclared file."""

from __future__ import annotations

import json
import re
from datetime import date

import polars as pl
import pytest
from leak_check import untraced

pytestmark = pytest.mark.slow
D = date(2026, 3, 1)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from nightshift import demo
    from nightshift.night import run_night
    from nightshift.settings import load_settings

    settings = load_settings(home=tmp_path_factory.mktemp("leak"), demo_size="tiny")
    demo.generate(settings.landing_dir, end=D, size="tiny", seed=4)
    result = run_night(settings, D, ["behavior", "loans", "sales", "inventory"])
    assert result.status == "success", result.jobs
    return settings


def test_the_shareable_tier_of_a_demo_night_traces_every_number(night):
    root = night.reports_dir / D.isoformat() / "shareable"
    kinds = {e["kind"] for entries in json.loads((root / "manifest.json").read_text())["files"].values()
             for e in entries}
    assert kinds == {"dp", "dp-post", "non-person"}
    assert untraced(night, D) == []
    team = (night.reports_dir / D.isoformat() / "loans.html").read_text()
    assert "Team tier" in team and "shareable/index.html" in team
    assert "Shareable tier" in (root / "index.html").read_text()


def test_a_planted_exact_count_is_found(night):
    page = night.reports_dir / D.isoformat() / "shareable" / "index.html"
    original = page.read_text()
    exact = str(night and pl.read_parquet(next((night.landing_dir / "users").rglob("*.parquet"))).height + 987654)
    try:
        page.write_text(original.replace("</main>", f"<p>users signed up: {exact}</p></main>"))
        assert any(exact in p for p in untraced(night, D))
    finally:
        page.write_text(original)


def test_a_person_column_and_an_undeclared_file_are_found(night):
    root = night.reports_dir / D.isoformat() / "shareable"
    planted = root / "loans" / "extra.parquet"
    pl.DataFrame({"applicant_id": ["a1"], "probability": [0.3]}).write_parquet(planted)
    manifest = json.loads((root / "manifest.json").read_text())
    try:
        problems = untraced(night, D)
        assert any("extra.parquet: not declared" in p for p in problems)
        manifest["files"]["loans"].append({"file": "loans/extra.parquet", "kind": "non-person", "output": "extra"})
        (root / "manifest.json").write_text(json.dumps(manifest))
        problems = untraced(night, D)
        assert any(re.search(r"columns naming people: applicant_id", p) for p in problems)
        assert any("does not declare 'extra'" in p for p in problems)
    finally:
        planted.unlink()
        manifest["files"]["loans"].pop()
        (root / "manifest.json").write_text(json.dumps(manifest))


def test_every_team_page_that_spends_epsilon_shows_its_privacy_section(night):
    manifest = json.loads((night.reports_dir / D.isoformat() / "manifest.json").read_text())
    spenders = {job for job, o in manifest["jobs"].items() if any(e["kind"] == "dp" for e in o["shareable"])}
    assert {"behavior", "loans"} <= spenders
    for job in spenders:
        assert "<h2>Privacy</h2>" in (night.reports_dir / D.isoformat() / f"{job}.html").read_text(), job
