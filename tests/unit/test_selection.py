"""The one model-selection rule (`nightshift.selection.challenge`), branch by branch, on toy models.

A model here is {"err": e}: its score on a holdout is e (lower is better); the holdout is a list of
days, cut by `holdout_after` to the days after a training window's end.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from nightshift.modeling import FnFormat
from nightshift.registry import ModelRegistry
from nightshift.selection import Judge, challenge

FMT = FnFormat("json-test", lambda m, d: (d / "m.json").write_text(json.dumps(m)),
               lambda d: json.loads((d / "m.json").read_text()))
JUDGE = Judge("error", higher_is_better=False, min_rows=5)
HOLDOUT = [date(2026, 3, d) for d in range(1, 21)]  # 20 days


def _save(reg: ModelRegistry, err: float, trained_until: date, features: tuple = ("a",)):
    version = reg.save({"err": err}, FMT, run_date=trained_until, training_window=(date(2025, 1, 1), trained_until),
                       data_hash=f"{err}-{trained_until}", features=list(features), params={}, metrics={})
    return version, {"err": err}


def _challenge(reg: ModelRegistry, version, model, seen: list[date] | None = None):
    def holdout_after(end: date) -> list[date]:
        cut = [d for d in HOLDOUT if d > end]
        if seen is not None:
            seen.append(end)
        return cut

    return challenge(reg, version, model, FMT, judge=JUDGE, holdout_after=holdout_after,
                     score=lambda m, rows: m["err"], compatible=lambda meta: meta["features"] == ["a"])


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path, "toy", margin=0.1)


def test_the_first_challenger_becomes_the_champion(reg) -> None:
    v, m = _save(reg, 1.0, date(2026, 2, 28))
    judged = _challenge(reg, v, m)
    assert judged.version == v.version == reg.champion() and judged.model == m
    assert len(judged.holdout) == 20


def test_a_challenger_that_beats_the_champion_by_more_than_the_margin_is_promoted(reg) -> None:
    _challenge(reg, *_save(reg, 1.0, date(2026, 2, 28)))
    v2, m2 = _save(reg, 0.85, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2)
    assert judged.decision.promoted and judged.version == v2.version == reg.champion()
    assert judged.values == {v2.version: 0.85, judged.decision.previous: 1.0}


def test_a_challenger_within_the_margin_leaves_the_champion_in_use(reg) -> None:
    v1, m1 = _save(reg, 1.0, date(2026, 2, 28))
    _challenge(reg, v1, m1)
    v2, m2 = _save(reg, 0.95, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2)
    assert not judged.decision.promoted and judged.version == v1.version and judged.model == m1


def test_the_holdout_is_cut_after_every_candidates_training_window(reg) -> None:
    v1, m1 = _save(reg, 1.0, date(2026, 3, 10))  # a champion from a later backfill: it saw 1..10 March
    _challenge(reg, v1, m1)
    v2, m2 = _save(reg, 0.5, date(2026, 2, 28))
    seen: list[date] = []
    judged = _challenge(reg, v2, m2, seen)
    assert max(seen) == date(2026, 3, 10) and min(judged.holdout) == date(2026, 3, 11) and len(judged.holdout) == 10
    assert judged.decision.promoted


def test_too_few_rows_newer_than_both_keep_the_champion_and_say_so(reg) -> None:
    v1, m1 = _save(reg, 1.0, date(2026, 3, 17))  # leaves 3 holdout days, fewer than min_rows=5
    _challenge(reg, v1, m1)
    v2, m2 = _save(reg, 0.1, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2)
    assert judged.version == v1.version == reg.champion() and not judged.decision.promoted
    assert "only 3 holdout rows" in judged.decision.reason
    assert reg.history()[-1]["reason"] == judged.decision.reason


def test_a_champion_with_other_inputs_cannot_be_judged_and_the_challenger_is_promoted(reg) -> None:
    v1, m1 = _save(reg, 0.1, date(2026, 2, 28), features=("old",))
    reg.promote(v1.version)
    v2, m2 = _save(reg, 1.0, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2)
    assert judged.version == v2.version and any("inputs differ" in n for n in judged.notes)
