"""The champion rule at the margin: a challenger is promoted only when it beats the champion by
strictly more than the registry's margin, in the direction of the metric.

Values are drawn on a grid of multiples of 1/1024 below 2**20, so the champion value, the margin
and their sums and differences are exact in binary floating point: "better by exactly the margin"
is exactly that, and the strict comparison is tested, not float rounding.
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nightshift.modeling import FnFormat
from nightshift.registry import ModelRegistry

STEP = 1 / 1024  # the grid: every value below is a multiple of it, far from float rounding


def _save(model: dict, d: Path) -> None:
    (d / "model.json").write_text(json.dumps(model))


def _load(d: Path) -> dict:
    return json.loads((d / "model.json").read_text())


FMT = FnFormat("json-test", _save, _load)


def on_grid(low: int, high: int) -> st.SearchStrategy[float]:
    return st.integers(low, high).map(lambda n: n * STEP)


champions = on_grid(-500_000, 500_000)  # metrics of either sign (R², log-likelihood, loss)
margins = on_grid(0, 50_000)  # 0 included: then a tie must not promote
gaps = on_grid(1, 50_000)  # a strictly positive amount, at least one grid step


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A job folder with a champion and one challenger version, copied afresh for every decision."""
    models = tmp_path_factory.mktemp("models")
    reg = ModelRegistry(models, "job")
    versions = [reg.save({"w": w}, FMT, run_date=date(2026, 3, w), training_window=(date(2026, 1, 1), date(2026, 2, 1)),
                         data_hash=f"h{w}", features=["a"], params={}, metrics={}).version for w in (1, 2)]
    reg.promote(versions[0])
    return reg.root, versions[0], versions[1]


def challenge(stored: tuple[Path, str, str], margin: float, champion_value: float, challenger_value: float,
              higher_is_better: bool) -> bool:
    """Whether the challenger is promoted, decided in a fresh copy of the stored job (every example
    starts from the same registry); the champion pointer must agree with the decision."""
    template, champion, challenger = stored
    job = f"job_{uuid.uuid4().hex}"
    shutil.copytree(template, template.parent / job)
    reg = ModelRegistry(template.parent, job, margin=margin)
    assert reg.champion() == champion
    decision = reg.decide(challenger, metric="m", challenger_value=challenger_value, champion_value=champion_value,
                          higher_is_better=higher_is_better)
    assert reg.champion() == (challenger if decision.promoted else champion)
    assert decision.margin == margin and reg.history()[-1]["promoted"] == decision.promoted
    return decision.promoted


def better(value: float, by: float, higher_is_better: bool) -> float:
    """A metric value `by` better than `value` (exact on the grid)."""
    return value + by if higher_is_better else value - by


@settings(max_examples=40, deadline=None)
@given(champions, margins, st.booleans())
def test_better_by_exactly_the_margin_is_not_promoted(stored, champion: float, margin: float, hib: bool) -> None:
    challenger = better(champion, margin, hib)
    assert (challenger - champion) * (1 if hib else -1) == margin  # the grid keeps it exact
    assert not challenge(stored, margin, champion, challenger, hib)


@settings(max_examples=40, deadline=None)
@given(champions, margins, gaps, st.booleans())
def test_better_by_more_than_the_margin_is_promoted(stored, champion: float, margin: float, extra: float,
                                                    hib: bool) -> None:
    assert challenge(stored, margin, champion, better(champion, margin + extra, hib), hib)


@settings(max_examples=40, deadline=None)
@given(champions, margins, st.integers(0, 1024).map(lambda n: n / 1024), st.booleans())
def test_better_by_less_than_the_margin_is_not_promoted(stored, champion: float, margin: float, share: float,
                                                        hib: bool) -> None:
    # Any improvement up to the margin (a share of it: 0 is a tie, 1 is exactly the margin) is not enough.
    by = margin * share
    assert not challenge(stored, margin, champion, better(champion, by, hib), hib)


@settings(max_examples=40, deadline=None)
@given(champions, margins, gaps, st.booleans())
def test_worse_is_never_promoted(stored, champion: float, margin: float, gap: float, hib: bool) -> None:
    assert not challenge(stored, margin, champion, better(champion, -gap, hib), hib)


@settings(max_examples=40, deadline=None)
@given(champions, champions, margins)
def test_lower_is_better_mirrors_higher_is_better(stored, champion: float, challenger: float, margin: float) -> None:
    # Negating both values turns a lower-is-better comparison into the higher-is-better one.
    assert challenge(stored, margin, champion, challenger, False) == challenge(stored, margin, -champion,
                                                                               -challenger, True)
