"""The one model-selection rule: which model a job uses tonight, judged on a holdout no candidate saw.

Every job that trains a model calls `compete` once with tonight's candidates: its learned model(s)
and its baselines (seasonal naive, a logistic regression, a campaign's own rate...), all trained on
the same window. The bake-off scores each on the holdout after that window; the best by the job's
metric is tonight's challenger (a learned model must beat every baseline outright: ties go to the
baseline), is saved in the registry like any model (a baseline champion has a version too) and then
challenges the champion by `challenge`. The rule of `challenge`:

1. The holdout is cut to what is newer than every candidate's training window (the challenger's
   and the champion's: a champion trained later, in a backfill, has seen part of tonight's holdout).
2. With no champion (or the challenger is the champion), the challenger is used.
3. A champion whose inputs differ from tonight's, or that fails to load or score, cannot be judged:
   the challenger is promoted and the reason recorded.
4. Fewer than `Judge.min_rows` holdout rows newer than both: the champion is kept (a decision on
   a handful of rows is noise), and the registry's history says so.
5. Otherwise the challenger replaces the champion only if it beats it by the registry's margin on
   the metric, in the metric's direction (`ModelRegistry.decide`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from nightshift.modeling import ArtifactFormat
from nightshift.registry import METADATA, Decision, LoadedModel, ModelLoadError, ModelRegistry, ModelVersion


@dataclass(frozen=True)
class Judge:
    """How a job's candidates are judged: the metric, its direction, and the fewest rows worth a verdict."""

    metric: str
    higher_is_better: bool
    min_rows: int


@dataclass(frozen=True)
class Candidate:
    """One of tonight's models, trained on the same window as the others: learned, or a baseline."""

    name: str  # what the page calls it: "xgboost", "logistic baseline", "seasonal naive (168 h)"
    model: Any
    fmt: ArtifactFormat  # how the registry stores it (each family its own format name)
    baseline: bool = False


@dataclass(frozen=True)
class Entry:
    """A candidate's score in tonight's bake-off (NaN when it could not be scored)."""

    name: str
    baseline: bool
    value: float


@dataclass
class Selection:
    """The model to use tonight, the registry's decision, and the holdout it was judged on."""

    model: Any
    version: str
    decision: Decision
    holdout: Any  # the rows (or windows) newer than every candidate's training window
    values: dict[str, float] = field(default_factory=dict)  # the metric per candidate version
    notes: list[str] = field(default_factory=list)  # warnings for the job's page
    champion: LoadedModel | None = None  # the champion it was judged against, if one could be loaded
    board: list[Entry] = field(default_factory=list)  # tonight's bake-off, best first
    judge: Judge | None = None
    bake_off_rows: int = 0  # holdout rows of the bake-off
    published: str = ""  # the candidate name of the model in use (a kept champion's own name)

    @property
    def winner(self) -> Entry | None:
        return self.board[0] if self.board else None

    @property
    def runner_up(self) -> Entry | None:
        return self.board[1] if len(self.board) > 1 else None

    @property
    def learned_lost(self) -> bool:
        """Did a baseline beat every learned model tonight (the learned model's training was wasted)?"""
        return bool(self.board) and self.board[0].baseline and any(not e.baseline for e in self.board)

    def verdict(self) -> dict[str, Any]:
        """What the job page, the night page and the terminal say about the choice (plain data)."""
        winner, runner = self.winner, self.runner_up
        gap = None
        if winner and runner and math.isfinite(winner.value) and math.isfinite(runner.value):
            gap = abs(winner.value - runner.value)
        return {
            "metric": self.judge.metric if self.judge else self.decision.metric,
            "higher_is_better": self.judge.higher_is_better if self.judge else None,
            "holdout_rows": self.bake_off_rows,
            "board": [{"name": e.name, "baseline": e.baseline, "value": e.value} for e in self.board],
            "winner": winner.name if winner else self.published, "runner_up": runner.name if runner else None,
            "gap": gap, "published": self.published, "version": self.version,
            "promoted": self.decision.promoted, "reason": self.decision.reason,
            "learned_lost": self.learned_lost,
        }


def trained_until(metadata: dict[str, Any]) -> Any:
    """The last day a version's training (and validation) saw, from its metadata."""
    return date.fromisoformat(metadata["training_window"]["end"])


def compete(registry: ModelRegistry, candidates: list[Candidate], *, judge: Judge, trained_until: Any,
            holdout_after: Callable[[Any], Any], score: Callable[[Any, Any], float],
            save: Callable[[Candidate, dict[str, Any]], ModelVersion], rows: Callable[[Any], int] = len,
            until: Callable[[dict[str, Any]], Any] = trained_until,
            compatible: Callable[[dict[str, Any]], bool] = lambda metadata: True) -> Selection:
    """Tonight's bake-off on the holdout after `trained_until`, then its winner challenges the champion.

    `save(candidate, extra)` stores the winner in the registry; `extra` (its name, whether it is a
    baseline, the bake-off's scores) belongs in the version's metadata.
    """
    own = holdout_after(trained_until)
    notes: list[str] = []
    board = _bake_off(candidates, own, judge, score, notes)
    if rows(own) < judge.min_rows:
        notes.append(f"only {rows(own)} holdout rows after the training window (at least {judge.min_rows} are "
                     f"needed to judge): {candidates[0].name} is used untested")
        board = [e for e in board if e.name == candidates[0].name] + [e for e in board if e.name != candidates[0].name]
    winner = next(c for c in candidates if c.name == board[0].name)
    if winner.baseline and any(not e.baseline for e in board):
        best_learned = next(e for e in board if not e.baseline)
        notes.append(f"the learned model {best_learned.name} lost to the baseline {winner.name} on the holdout "
                     f"({judge.metric} {best_learned.value:.4g} vs {board[0].value:.4g}): the baseline is the challenger")
    version = save(winner, {"candidate": winner.name, "baseline": winner.baseline,
                            "bake_off": {e.name: e.value for e in board}, "bake_off_rows": rows(own)})
    formats = {c.fmt.name: c.fmt for c in candidates}
    judged = challenge(registry, version, winner.model, formats, judge=judge, holdout_after=holdout_after,
                       score=score, rows=rows, until=until, compatible=compatible)
    judged.notes[:0] = notes
    judged.board, judged.judge, judged.bake_off_rows = board, judge, rows(own)
    judged.published = (winner.name if judged.version == version.version
                        else candidate_name(judged.champion.metadata if judged.champion else {}, judged.version))
    return judged


def _bake_off(candidates: list[Candidate], holdout: Any, judge: Judge, score: Callable[[Any, Any], float],
              notes: list[str]) -> list[Entry]:
    """Every candidate's metric on the same holdout, best first; on a tie the baseline ranks first."""
    entries = []
    for c in candidates:
        try:
            value = float(score(c.model, holdout))
        except Exception as e:  # a candidate that cannot score loses the bake-off, it does not fail the night
            notes.append(f"{c.name} could not be scored on the holdout: {type(e).__name__}: {e}")
            value = math.nan
        entries.append(Entry(c.name, c.baseline, value))
    sign = -1.0 if judge.higher_is_better else 1.0
    order = {c.name: i for i, c in enumerate(candidates)}
    return sorted(entries, key=lambda e: (not math.isfinite(e.value), sign * e.value if math.isfinite(e.value) else 0.0,
                                          not e.baseline, order[e.name]))


def candidate_name(metadata: dict[str, Any], version: str) -> str:
    """The name a stored version competed under (`champion <version>` when it has none)."""
    return (metadata.get("extra") or {}).get("candidate") or f"champion {version}"


def by_format(formats: Mapping[str, ArtifactFormat]) -> Callable[[Path], Any]:
    """A loader for a version of any of the job's families: the format named in its metadata."""
    def load(directory: Path) -> Any:
        name = json.loads((directory / METADATA).read_text())["format"]
        if name not in formats:
            raise ModelLoadError(f"{directory.name} is stored as {name!r}, which tonight's candidates "
                                 f"({', '.join(formats)}) cannot load")
        return formats[name].load(directory)
    return load


def challenge(registry: ModelRegistry, challenger: ModelVersion, challenger_model: Any,
              fmt: ArtifactFormat | Mapping[str, ArtifactFormat], *,
              judge: Judge, holdout_after: Callable[[Any], Any], score: Callable[[Any, Any], float],
              rows: Callable[[Any], int] = len, until: Callable[[dict[str, Any]], Any] = trained_until,
              compatible: Callable[[dict[str, Any]], bool] = lambda metadata: True) -> Selection:
    """Judge tonight's challenger against the champion and say which model to use (see the module)."""
    notes: list[str] = []
    champion = _champion(registry, by_format(fmt) if isinstance(fmt, Mapping) else fmt, notes)
    own = holdout_after(until(challenger.metadata))
    if champion is None or champion.version == challenger.version:
        value = score(challenger_model, own)
        decision = registry.decide(challenger.version, metric=judge.metric, challenger_value=value,
                                   champion_value=None, higher_is_better=judge.higher_is_better)
        return Selection(challenger_model, challenger.version, decision, own, {challenger.version: value}, notes)
    judged = _judge(registry, challenger, challenger_model, champion, judge, holdout_after, score, rows, until,
                    compatible, notes)
    judged.champion = champion
    return judged


def _judge(registry: ModelRegistry, challenger: ModelVersion, challenger_model: Any, champion: LoadedModel,
           judge: Judge, holdout_after: Callable[[Any], Any], score: Callable[[Any, Any], float],
           rows: Callable[[Any], int], until: Callable[[dict[str, Any]], Any],
           compatible: Callable[[dict[str, Any]], bool], notes: list[str]) -> Selection:
    holdout = holdout_after(max(until(challenger.metadata), until(champion.metadata)))
    if compatible(champion.metadata) and rows(holdout) < judge.min_rows:
        decision = registry.keep(challenger.version, metric=judge.metric, reason=(
            f"only {rows(holdout)} holdout rows are newer than both models' training windows "
            f"(at least {judge.min_rows} are needed): champion {champion.version} kept"))
        return Selection(champion.model, champion.version, decision, holdout, {}, notes)
    values = {challenger.version: score(challenger_model, holdout)}
    champion_value = _champion_value(champion, holdout, score, compatible, notes)
    if champion_value is not None:
        values[champion.version] = champion_value
    decision = registry.decide(challenger.version, metric=judge.metric, challenger_value=values[challenger.version],
                               champion_value=champion_value, higher_is_better=judge.higher_is_better,
                               champion=champion.version, holdout={"rows": rows(holdout)})
    promoted = decision.champion == challenger.version
    return Selection(challenger_model if promoted else champion.model, decision.champion, decision, holdout, values,
                     notes)


def _champion(registry: ModelRegistry, fmt: ArtifactFormat | Callable[[Path], Any],
              notes: list[str]) -> LoadedModel | None:
    try:
        champion = registry.load_champion(fmt)
    except ModelLoadError as e:
        if registry.champion() is not None:  # there is a champion, but nothing of it loads
            notes.append(str(e))
        return None
    notes.extend(champion.warnings)
    return champion


def _champion_value(champion: LoadedModel, holdout: Any, score: Callable[[Any, Any], float],
                    compatible: Callable[[dict[str, Any]], bool], notes: list[str]) -> float | None:
    """The champion's metric, or None when it cannot be judged (then the challenger is promoted)."""
    if not compatible(champion.metadata):
        notes.append(f"champion {champion.version} could not be compared: its inputs differ from tonight's")
        return None
    try:
        return score(champion.model, holdout)
    except Exception as e:  # a broken champion is "could not be evaluated", never a failed night
        notes.append(f"champion {champion.version} could not be scored on the holdout: {e}")
        return None
