"""Tonight's bake-off (`nightshift.selection.compete`) on toy models of two families.

A model is {"err": e} (its holdout error, lower is better) stored as JSON; the baseline family has
its own format, so a baseline champion must load through the format its metadata names.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import pytest

from nightshift.modeling import FnFormat
from nightshift.registry import ModelRegistry
from nightshift.selection import Candidate, Judge, compete


def _fmt(name: str) -> FnFormat:
    return FnFormat(name, lambda m, d: (d / "m.json").write_text(json.dumps(m)),
                    lambda d: {**json.loads((d / "m.json").read_text()), "family": name})


LEARNED, BASELINE = _fmt("toy-learned"), _fmt("toy-baseline")
JUDGE = Judge("error", higher_is_better=False, min_rows=5)
HOLDOUT = [date(2026, 3, d) for d in range(1, 21)]
TRAINED = date(2026, 2, 28)


def _score(model: dict, rows: list) -> float:
    if model["err"] is None:
        raise ValueError("cannot score")
    return model["err"]


def _night(reg: ModelRegistry, learned: float | None, baseline: float, run: date = TRAINED, holdout=HOLDOUT):
    candidates = [Candidate("learned", {"err": learned}, LEARNED),
                  Candidate("baseline", {"err": baseline}, BASELINE, baseline=True)]

    def save(c: Candidate, extra: dict):
        return reg.save(c.model, c.fmt, run_date=run, training_window=(date(2025, 1, 1), TRAINED),
                        data_hash=f"{c.name}-{c.model['err']}", features=["a"], params={}, metrics={}, extra=extra)

    return compete(reg, candidates, judge=JUDGE, trained_until=TRAINED, save=save, score=_score,
                   holdout_after=lambda end: [d for d in holdout if d > end])


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path, "toy", margin=0.1)


def test_the_better_learned_model_is_published_and_the_board_says_by_how_much(reg) -> None:
    judged = _night(reg, 0.5, 0.8)
    v = judged.verdict()
    assert (v["winner"], v["runner_up"], v["published"]) == ("learned", "baseline", "learned")
    assert v["gap"] == pytest.approx(0.3) and not v["learned_lost"] and v["holdout_rows"] == 20
    extra = reg.get(judged.version).metadata["extra"]
    assert extra["candidate"] == "learned" and extra["baseline"] is False and extra["bake_off"] == {
        "learned": 0.5, "baseline": 0.8}


def test_a_tie_goes_to_the_baseline_and_the_page_is_warned(reg) -> None:
    judged = _night(reg, 0.5, 0.5)
    assert judged.published == "baseline"
    assert judged.verdict()["learned_lost"] and any("lost to the baseline" in n for n in judged.notes)
    assert reg.get(judged.version).metadata["format"] == "toy-baseline"


def test_a_baseline_champion_loads_in_its_own_format_and_keeps_its_name(reg) -> None:
    first = _night(reg, 0.9, 0.5)
    second = _night(reg, 0.45, 0.6, run=date(2026, 3, 1))  # learned wins tonight, but by less than the margin
    assert second.version == first.version == reg.champion() and not second.decision.promoted
    assert second.published == "baseline" and second.model == {"err": 0.5, "family": "toy-baseline"}
    third = _night(reg, 0.3, 0.6, run=date(2026, 3, 2))  # by more than the margin: replaced
    assert third.decision.promoted and third.published == "learned" and reg.champion() == third.version


def test_a_candidate_that_cannot_score_loses_without_failing_the_night(reg) -> None:
    judged = _night(reg, None, 0.7)
    assert judged.published == "baseline" and math.isnan(judged.board[-1].value)
    assert any("learned could not be scored" in n for n in judged.notes)


def test_too_few_holdout_rows_use_the_first_candidate_untested(reg) -> None:
    judged = _night(reg, 0.9, 0.5, holdout=HOLDOUT[:3])
    assert judged.published == "learned" and any("used untested" in n for n in judged.notes)
