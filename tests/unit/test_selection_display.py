"""The selection verdict as a reader sees it: the job page's section, the night page's flag, the terminal."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from nightshift.cli import _models_in_use
from nightshift.modeling import FnFormat
from nightshift.registry import ModelRegistry
from nightshift.reporting import render
from nightshift.selection import Candidate, Judge, compete

FMT = FnFormat("json-number", lambda m, d: (d / "m.txt").write_text(str(m)), lambda d: float((d / "m.txt").read_text()))
END = date(2026, 2, 28)


def _verdict(tmp_path: Path, learned_error: float) -> dict:
    reg = ModelRegistry(tmp_path, "toy")

    def save(c: Candidate, extra: dict):
        return reg.save(c.model, c.fmt, run_date=END, training_window=(date(2026, 1, 1), END), data_hash=c.name,
                        features=["a"], params={}, metrics={}, extra=extra)

    judged = compete(reg, [Candidate("net <b>", learned_error, FMT), Candidate("naive", 1.0, FMT, baseline=True)],
                     judge=Judge("MAE", higher_is_better=False, min_rows=5), trained_until=END,
                     holdout_after=lambda end: list(range(20)), score=lambda model, rows: model, save=save)
    return judged.verdict()


def test_a_baseline_win_is_flagged_on_both_pages_and_the_terminal(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, learned_error=1.5)
    assert verdict["published"] == "naive" and verdict["learned_lost"] and verdict["gap"] == 0.5
    page = render("base.html.j2", selections={"model": verdict})
    assert "Which model is used: model" in page and "learned model lost to a baseline" in page
    assert "net &lt;b&gt;" in page  # names from data are escaped
    night = render("run.html.j2", run_date=date(2026, 3, 1), manifest={
        "status": "success", "run_id": "r", "trigger": "manual", "started": "s", "finished": "f", "inputs": {},
        "jobs": {"toy": {"status": "success", "seconds": 1.0, "summary": {}, "models": {"model": verdict["version"]},
                         "warnings": [], "error": None, "stale_from": None, "selections": {"model": verdict}}}})
    assert "⚑ learned model lost to a baseline" in night and "naive ahead of net &lt;b&gt; by 0.5000" in night
    assert "lost to a baseline" in _models_in_use({"selections": {"model": verdict}})


def test_a_learned_win_is_not_flagged(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, learned_error=0.5)
    assert verdict["published"] == "net <b>" and not verdict["learned_lost"]
    assert "lost to a baseline" not in render("base.html.j2", selections={"model": verdict})
    assert "lost to a baseline" not in _models_in_use({"selections": {"model": verdict}})
