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


def _save(reg: ModelRegistry, err: float | None, trained_until: date, features: tuple = ("a",)):
    version = reg.save({"err": err}, FMT, run_date=trained_until, training_window=(date(2025, 1, 1), trained_until),
                       data_hash=f"{err}-{trained_until}", features=list(features), params={}, metrics={})
    return version, {"err": err}


def _challenge(reg: ModelRegistry, version, model, seen: list[date] | None = None, **overrides):
    def holdout_after(end: date) -> list[date]:
        cut = [d for d in HOLDOUT if d > end]
        if seen is not None:
            seen.append(end)
        return cut

    kw = {"judge": JUDGE, "holdout_after": holdout_after, "score": lambda m, rows: m["err"],
          "compatible": lambda meta: meta["features"] == ["a"], **overrides}
    return challenge(reg, version, model, FMT, **kw)


def _score_or_fail(model: dict, rows: list) -> float:
    if model["err"] is None:
        raise ValueError("cannot score")
    return model["err"]


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path, "toy", margin=0.1)


def test_the_first_challenger_becomes_the_champion(reg) -> None:
    v, m = _save(reg, 1.0, date(2026, 2, 28))
    judged = _challenge(reg, v, m)
    assert judged.version == v.version == reg.champion() and judged.model == m
    assert len(judged.holdout) == 20 and judged.values == {v.version: 1.0} and judged.notes == []
    assert (judged.decision.metric, judged.decision.challenger_value) == ("error", 1.0)


def test_a_verdict_without_a_bake_off_falls_back_to_the_decision(reg) -> None:
    judged = _challenge(reg, *_save(reg, 1.0, date(2026, 2, 28)))  # challenge alone: no board, no judge
    v = judged.verdict()
    assert (v["metric"], v["higher_is_better"], v["winner"], v["runner_up"], v["gap"]) == ("error", None, "", None, None)
    assert v["promoted"] is True and v["board"] == [] and v["version"] == judged.version


def test_a_challenger_that_beats_the_champion_by_more_than_the_margin_is_promoted(reg) -> None:
    _challenge(reg, *_save(reg, 1.0, date(2026, 2, 28)))
    v2, m2 = _save(reg, 0.85, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2)
    assert judged.decision.promoted and judged.version == v2.version == reg.champion() and judged.model == m2
    assert judged.values == {v2.version: 0.85, judged.decision.previous: 1.0} and judged.decision.metric == "error"
    entry = reg.history()[-1]
    assert (entry["champion"], entry["metric"], entry["holdout"]) == (judged.decision.previous, "error", {"rows": 20})


def test_the_metric_direction_reaches_the_decision(reg) -> None:
    higher = Judge("auc", higher_is_better=True, min_rows=5)
    _challenge(reg, *_save(reg, 0.5, date(2026, 2, 28)), judge=higher)
    v2, m2 = _save(reg, 0.7, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2, judge=higher)  # higher is better: +0.2 beats the margin 0.1
    assert judged.decision.promoted and judged.version == v2.version


def test_both_models_are_scored_on_the_holdout_newer_than_both(reg) -> None:
    calls = []

    def score(model: dict, rows: list) -> float:
        calls.append((model["err"], rows))
        return model["err"]

    _challenge(reg, *_save(reg, 1.0, date(2026, 3, 10)), score=score)
    assert calls == [(1.0, HOLDOUT[10:])]
    calls.clear()
    _challenge(reg, *_save(reg, 0.5, date(2026, 2, 28)), score=score)
    assert calls == [(0.5, HOLDOUT[10:]), (1.0, HOLDOUT[10:])]


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
    assert reg.history()[-1]["reason"] == judged.decision.reason and reg.history()[-1]["metric"] == "error"
    assert judged.model == m1 and judged.holdout == HOLDOUT[17:] and judged.values == {} and judged.notes == []


def test_exactly_min_rows_newer_than_both_are_enough_to_judge(reg) -> None:
    _challenge(reg, *_save(reg, 1.0, date(2026, 3, 15)))  # leaves 16..20 March: min_rows=5 exactly
    v2, m2 = _save(reg, 0.1, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2)
    assert judged.decision.promoted and judged.version == v2.version and reg.history()[-1]["holdout"] == {"rows": 5}


@pytest.mark.parametrize("trained_until", [date(2026, 3, 1), date(2026, 3, 17)])  # judged; kept (3 rows)
def test_a_champion_that_fell_back_is_the_one_judged_and_its_warning_reaches_the_page(reg, trained_until) -> None:
    v0, _ = _save(reg, 1.0, date(2026, 2, 27))
    reg.promote(v0.version)
    v1, _ = _save(reg, 0.9, date(2026, 2, 28))
    reg.promote(v1.version)
    (v1.path / "m.json").write_text('{"err": 0.0}')  # no longer matches its checksum
    v2, m2 = _save(reg, 0.5, trained_until)
    with pytest.warns(RuntimeWarning, match="using the previous champion"):
        judged = _challenge(reg, v2, m2)
    assert judged.champion.version == v0.version
    assert any(f"using the previous champion {v0.version}" in n for n in judged.notes)
    if trained_until == date(2026, 3, 1):
        assert judged.decision.promoted and reg.history()[-1]["champion"] == v0.version


def test_a_champion_that_cannot_be_loaded_at_all_is_replaced_and_the_page_says_why(reg) -> None:
    v1, _ = _save(reg, 0.1, date(2026, 2, 28))
    reg.promote(v1.version)
    (v1.path / "m.json").write_text('{"err": 0.0}')
    v2, m2 = _save(reg, 1.0, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2)
    assert judged.version == v2.version == reg.champion() and judged.values == {v2.version: 1.0}
    assert len(judged.notes) == 1 and f"no champion of job 'toy' could be loaded: model toy/{v1.version}" in judged.notes[0]


def test_a_champion_that_cannot_be_scored_is_replaced_and_the_page_says_why(reg) -> None:
    v1, _ = _save(reg, None, date(2026, 2, 28))
    reg.promote(v1.version)
    v2, m2 = _save(reg, 1.0, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2, score=_score_or_fail)
    assert judged.decision.promoted and judged.version == v2.version and judged.values == {v2.version: 1.0}
    assert judged.notes == [f"champion {v1.version} could not be scored on the holdout: cannot score"]


def test_a_champion_with_other_inputs_cannot_be_judged_and_the_challenger_is_promoted(reg) -> None:
    v1, m1 = _save(reg, 0.1, date(2026, 2, 28), features=("old",))
    reg.promote(v1.version)
    v2, m2 = _save(reg, 1.0, date(2026, 2, 28))
    judged = _challenge(reg, v2, m2)
    assert judged.version == v2.version and any("inputs differ" in n for n in judged.notes)
