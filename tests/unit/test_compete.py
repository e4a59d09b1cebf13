"""Tonight's bake-off (`nightshift.selection.compete`) on toy models of two families.

A model is {"err": e} (its holdout error, lower is better) stored as JSON; the baseline family has
its own format, so a baseline champion must load through the format its metadata names.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path

import pytest

from nightshift.modeling import FnFormat
from nightshift.registry import ModelRegistry
from nightshift.selection import Candidate, Judge, _bake_off, compete


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


def _night(reg: ModelRegistry, learned: float | None, baseline: float, run: date = TRAINED, holdout=HOLDOUT,
           **overrides):
    candidates = [Candidate("learned", {"err": learned}, LEARNED),
                  Candidate("baseline", {"err": baseline}, BASELINE, baseline=True)]
    return _compete(reg, candidates, run, holdout, **overrides)


def _compete(reg: ModelRegistry, candidates: list[Candidate], run: date = TRAINED, holdout=HOLDOUT, **overrides):
    def save(c: Candidate, extra: dict):
        return reg.save(c.model, c.fmt, run_date=run, training_window=(date(2025, 1, 1), TRAINED),
                        data_hash=f"{c.name}-{c.model['err']}", features=["a"], params={}, metrics={}, extra=extra)

    kw = {"judge": JUDGE, "trained_until": TRAINED, "save": save, "score": _score,
          "holdout_after": lambda end: [d for d in holdout if d > end], **overrides}
    return compete(reg, candidates, **kw)


def _champion(reg: ModelRegistry, err: float, trained_until: date, fmt: FnFormat = LEARNED, features=("a",)):
    """A champion from an earlier night (or promoted by hand): no bake-off, so no candidate name."""
    version = reg.save({"err": err}, fmt, run_date=trained_until, training_window=(date(2025, 1, 1), trained_until),
                       data_hash=f"champion-{err}", features=list(features), params={}, metrics={})
    reg.promote(version.version)
    return version


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path, "toy", margin=0.1)


def test_the_better_learned_model_is_published_and_the_board_says_by_how_much(reg) -> None:
    judged = _night(reg, 0.5, 0.8)
    v = judged.verdict()
    assert (v["winner"], v["runner_up"], v["published"]) == ("learned", "baseline", "learned")
    assert v["gap"] == pytest.approx(0.3) and not v["learned_lost"] and v["holdout_rows"] == 20
    assert (v["metric"], v["higher_is_better"], v["promoted"]) == ("error", False, True) and judged.notes == []
    extra = reg.get(judged.version).metadata["extra"]
    assert extra["candidate"] == "learned" and extra["baseline"] is False and extra["bake_off"] == {
        "learned": 0.5, "baseline": 0.8} and extra["bake_off_rows"] == 20


def test_the_bake_off_ranks_in_the_metrics_direction(reg) -> None:
    judged = _night(reg, 0.9, 0.5, judge=Judge("accuracy", higher_is_better=True, min_rows=5))
    assert [e.name for e in judged.board] == ["learned", "baseline"] and judged.published == "learned"


def test_every_candidate_is_scored_on_the_holdout_after_the_training_window(reg) -> None:
    calls = []

    def score(model: dict, rows: list) -> float:
        calls.append((model["err"], rows))
        return model["err"]

    _night(reg, 0.5, 0.8, score=score)
    assert calls == [(0.5, HOLDOUT), (0.8, HOLDOUT), (0.5, HOLDOUT)]  # the bake-off, then the challenge


def test_a_baseline_win_names_both_scores(reg) -> None:
    judged = _night(reg, 0.7, 0.5)
    assert judged.notes == ["the learned model learned lost to the baseline baseline on the holdout "
                            "(error 0.7 vs 0.5): the baseline is the challenger"]


def test_baselines_alone_are_not_a_lost_learned_model(reg) -> None:
    judged = _compete(reg, [Candidate("naive", {"err": 0.7}, BASELINE, baseline=True),
                            Candidate("drift", {"err": 0.5}, BASELINE, baseline=True)])
    assert judged.published == "drift" and judged.notes == [] and not judged.verdict()["learned_lost"]


def test_unscorable_candidates_rank_last_and_among_them_the_baseline_first(reg) -> None:
    notes: list[str] = []
    board = _bake_off([Candidate("learned", {"err": None}, LEARNED), Candidate("baseline", {"err": None}, BASELINE,
                       baseline=True), Candidate("other", {"err": 0.9}, LEARNED)], HOLDOUT, JUDGE, _score, notes)
    assert [e.name for e in board] == ["other", "baseline", "learned"]
    assert notes[0] == "learned could not be scored on the holdout: ValueError: cannot score"


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
    v = second.verdict()
    assert (v["winner"], v["published"], v["promoted"]) == ("learned", "baseline", False)
    third = _night(reg, 0.3, 0.6, run=date(2026, 3, 2))  # by more than the margin: replaced
    assert third.decision.promoted and third.published == "learned" and reg.champion() == third.version


def test_a_candidate_that_cannot_score_loses_without_failing_the_night(reg) -> None:
    judged = _night(reg, None, 0.7)
    assert judged.published == "baseline" and math.isnan(judged.board[-1].value)
    assert any("learned could not be scored" in n for n in judged.notes)
    assert judged.verdict()["gap"] is None  # no gap to a model without a score


def test_too_few_holdout_rows_use_the_first_candidate_untested(reg) -> None:
    judged = _night(reg, 0.9, 0.5, holdout=HOLDOUT[:3])
    assert judged.published == "learned" and any("learned is used untested" in n for n in judged.notes)
    assert [e.name for e in judged.board] == ["learned", "baseline"]


def test_exactly_min_rows_are_enough_for_the_bake_off(reg) -> None:
    judged = _night(reg, 0.9, 0.5, holdout=HOLDOUT[:5])
    assert judged.published == "baseline" and not any("used untested" in n for n in judged.notes)


def test_a_kept_champion_without_a_candidate_name_is_named_by_its_version(reg) -> None:
    old = _champion(reg, 0.1, date(2026, 3, 18))  # a later backfill: 2 holdout days newer than both
    judged = _night(reg, 0.5, 0.8)
    assert judged.version == old.version and judged.published == f"champion {old.version}"


def test_the_rows_function_reaches_the_champion_challenge(reg) -> None:
    old = _champion(reg, 0.9, date(2026, 3, 18))
    judged = _night(reg, 0.5, 0.8, rows=lambda days: 7 * len(days))  # 7 rows a day: 2 days are enough
    assert judged.decision.promoted and judged.published == "learned" and judged.verdict()["holdout_rows"] == 140
    assert reg.history()[-1]["holdout"] == {"rows": 14} and judged.values[old.version] == 0.9


def test_the_until_function_reaches_the_challenge(reg) -> None:
    judged = _night(reg, 0.5, 0.8, until=lambda meta: date.fromisoformat(meta["training_window"]["end"]) + timedelta(5))
    assert judged.holdout == HOLDOUT[5:]  # the version also saw 5 days after its training window


def test_a_champion_with_other_inputs_is_replaced_and_both_notes_reach_the_page(reg) -> None:
    old = _champion(reg, 0.1, TRAINED, features=("old",))
    judged = _night(reg, None, 0.6, compatible=lambda meta: meta["features"] == ["a"])
    assert judged.decision.promoted and judged.published == "baseline"
    assert judged.notes[0] == "learned could not be scored on the holdout: ValueError: cannot score"
    assert judged.notes[-1] == f"champion {old.version} could not be compared: its inputs differ from tonight's"


def test_a_champion_in_a_format_tonights_candidates_lack_is_replaced(reg) -> None:
    _champion(reg, 0.1, TRAINED, fmt=_fmt("toy-retired"))
    judged = _night(reg, 0.5, 0.8)
    assert judged.decision.promoted and judged.published == "learned"
    assert any("is stored as 'toy-retired', which tonight's candidates (toy-learned, toy-baseline) cannot load" in n
               for n in judged.notes)
