"""The one model-selection rule: which model a job uses tonight, judged on a holdout no candidate saw.

Every job that trains a model calls `challenge` once after saving tonight's challenger. The rule:

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

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from nightshift.modeling import ArtifactFormat
from nightshift.registry import Decision, LoadedModel, ModelLoadError, ModelRegistry, ModelVersion


@dataclass(frozen=True)
class Judge:
    """How a job's candidates are judged: the metric, its direction, and the fewest rows worth a verdict."""

    metric: str
    higher_is_better: bool
    min_rows: int


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


def trained_until(metadata: dict[str, Any]) -> Any:
    """The last day a version's training (and validation) saw, from its metadata."""
    return date.fromisoformat(metadata["training_window"]["end"])


def challenge(registry: ModelRegistry, challenger: ModelVersion, challenger_model: Any, fmt: ArtifactFormat, *,
              judge: Judge, holdout_after: Callable[[Any], Any], score: Callable[[Any, Any], float],
              rows: Callable[[Any], int] = len, until: Callable[[dict[str, Any]], Any] = trained_until,
              compatible: Callable[[dict[str, Any]], bool] = lambda metadata: True) -> Selection:
    """Judge tonight's challenger against the champion and say which model to use (see the module)."""
    notes: list[str] = []
    champion = _champion(registry, fmt, notes)
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


def _champion(registry: ModelRegistry, fmt: ArtifactFormat, notes: list[str]) -> LoadedModel | None:
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
