"""`PrivacyLayer`: one job's DP releases for one run date, and the page's Privacy section.

Order of a release: bound and aggregate (SQL) → fingerprint the bounded input → serve the stored
release if this exact one exists (free) → check the budget → draw noise → post-process → commit the
charge together with the stored values (`ledger.commit`, under the ledger's file lock) → only then
return them. A refusal returns the last good stored numbers of the same job and release, flagged
stale, and spends nothing. The ledger and the stored releases live in `<home>/data/privacy/`
(`store`), apart from the warehouse, which only lends its DuckDB engine to the bounding SQL.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from nightshift.privacy import keys, ledger, legacy
from nightshift.privacy.bounding import TrueAggregates, bound_and_aggregate, key_grid, prepare
from nightshift.privacy.budget import Limit, PrivacyRefused, in_force
from nightshift.privacy.keys import KeySelection
from nightshift.privacy.noise import CONFIDENCE, add_noise, margin_of_error
from nightshift.privacy.release import MEAN_MIN_COUNT_FACTOR, build_table
from nightshift.privacy.spec import Count, Mean, Query, Release, describe, plan, sum_key
from nightshift.privacy.store import Store


@dataclass
class ReleaseResult:
    """What a job gets back: the released table (or the last good one), and what it cost."""

    name: str
    dataset: str
    table: pl.DataFrame | None  # None only when refused with nothing stored before
    refused: str | None = None  # a message for people when the budget refused this release
    reused: bool = False  # served from the store: nothing spent now
    epsilon: float = 0.0  # ε charged by this call
    delta: float = 0.0  # δ charged by this call (a key selection only)
    release_id: str | None = None
    run_date: date | None = None  # the run date of the values served (older when stale)
    stale: bool = False  # True when these are the last good numbers after a refusal
    queries: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[dict[str, Any]] = field(default_factory=list)


def release_id(job: str, name: str, run_date: date, input_hash: str) -> str:
    """The deterministic id of a release: same job, name, date and bounded input → same id."""
    return hashlib.sha256(f"{job}\x1f{name}\x1f{run_date.isoformat()}\x1f{input_hash}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Measured:
    """A release's true (not yet noisy) answers: its cells, its noisy queries and their true vectors."""

    grid: pl.DataFrame
    queries: dict[str, Query]
    truth: TrueAggregates
    input_hash: str


def measure(cur: Any, release: Release, frame: pl.DataFrame, salt: str) -> Measured:
    """Declared cells, query plan and bounded true aggregates: everything before the noise.

    The privacy audit in the tests calls this same function, so what it audits is what releases use.
    """
    release.validate()
    grid = key_grid(release)
    truth = bound_and_aggregate(cur, release, prepare(release, frame, grid), grid.height, salt=salt)
    input_hash = hashlib.sha256(
        (json.dumps(describe(release), sort_keys=True) + "|" + truth.fingerprint).encode()
    ).hexdigest()
    return Measured(grid, plan(release), truth, input_hash)


def candidate_counts(cur: Any, selection: KeySelection, frame: pl.DataFrame, salt: str) -> tuple[dict[str, int], str]:
    """A key selection's true answers: distinct units per value of its column (at most K values per unit,
    bounded in SQL by `measure`), and the input's fingerprint. The candidates come from the data: only the
    thresholded noisy counts may name them. The privacy audit in the tests calls this same function."""
    frame = frame.with_columns(pl.col(selection.column).cast(pl.String))
    values = frame[selection.column].drop_nulls().unique().sort().to_list()
    if not values:
        return {}, "empty"
    bounding = Release(selection.name, selection.dataset, selection.unit, {selection.column: values},
                       [Count("units", distinct=True)], max_rows_per_unit=int(selection.max_keys_per_unit),
                       epsilon=selection.epsilon)
    m = measure(cur, bounding, frame, salt=salt)
    return dict(zip(values, m.truth.vectors["units"], strict=True)), m.truth.fingerprint


class PrivacyLayer:
    """Bounded, noisy aggregates with a persistent budget, for one job and run date."""

    def __init__(self, warehouse: Any, settings: Any, job: str, run_date: date):
        self.warehouse, self.settings, self.job, self.run_date = warehouse, settings, job, run_date
        self.store = Store.for_home(settings.data_dir, settings.reports_dir)
        legacy.adopt(self.store, warehouse.cursor)
        self.results: list[ReleaseResult] = []
        self._declared: dict[str, Release | KeySelection] = {}
        self._lists: dict[str, list[str]] = {}  # public list name -> the key values handed out tonight
        self.key_lists: list[dict[str, Any]] = []  # where each list came from, for the Privacy section
        # What the job coarsened (groupings, windows, fewer sums) so its numbers read, and why: the page says it.
        self.coarsened: list[str] = []

    # -- releasing ---------------------------------------------------------------------------------
    def release(self, release: Release, frame: pl.DataFrame, *, strict: bool = False) -> ReleaseResult:
        """Release `frame`'s bounded, noisy aggregates as declared; `strict` raises BudgetExceeded on refusal."""
        asked = self._asked(release.dataset)
        self._check_public(release)
        m = measure(self.warehouse.cursor, release, frame, salt=f"{self.job}/{release.name}")
        rid = release_id(self.job, release.name, self.run_date, m.input_hash)
        self._declared[release.name] = release
        try:
            stored = ledger.find(self.store, rid)
            charged = False
            if stored is None:
                charge = ledger.Charge(rid, self.job, release.name, self.run_date, m.input_hash, release.dataset,
                                       release.unit, float(release.epsilon), asked)
                self._check_budget(charge)  # cheap early refusal; re-checked under the lock when committing
                noisy = {k: add_noise(m.truth.vectors[k], q.scale) for k, q in m.queries.items()}
                table, suppressed = build_table(release, m.grid, noisy, m.queries)
                meta = {"queries": _query_info(m.queries), "suppressed": suppressed, "cells": m.grid.height,
                        "k": int(release.max_rows_per_unit), "unit": release.unit, "declaration": _shape(release)}
                stored, charged = ledger.commit(self.store, charge, table, meta)
        except PrivacyRefused as e:
            if strict:
                raise
            return self._record(self._refused(release, str(e)))
        return self._record(self._reveal(release, stored, charged))

    # -- public keys -------------------------------------------------------------------------------
    def public_keys(self, selection: KeySelection, frame: pl.DataFrame, every: int = 1) -> list[str]:
        """The key values of `selection.column`, ending in the OTHER cell: the settings' declared list
        `privacy_public_keys.<selection.public_list>`, or else a DP key selection over `frame` (charged),
        made at most once every `every` nights like the release it keys (`select_keys`).

        Fold the frame with `keys.fold_other` before releasing it under these keys.
        """
        declared = self.settings.privacy_public_keys.get(selection.public_list)
        if declared:
            values, how = list(declared), "declared in the settings"
        else:
            res = self.select_keys(selection, frame, every)
            values = [] if res.table is None else [str(v) for v in res.table[selection.column].to_list()]
            how = (f"chosen by DP key selection {selection.name!r} (noisy distinct {selection.unit} counts kept "
                   f"at ≥ {keys.threshold(selection)}, ε {selection.epsilon:g}, δ {selection.delta:g})")
        out = keys.with_other(values)
        self._lists[selection.public_list] = out
        self.key_lists.append({"list": selection.public_list, "column": selection.column, "how": how,
                               "values": len(out) - 1, "other": keys.OTHER})
        return out

    def select_keys(self, selection: KeySelection, frame: pl.DataFrame, every: int = 1) -> ReleaseResult:
        """DP key selection (OpenDP's thresholded Laplace): the table of kept values and their noisy counts.

        Made at most once every `every` nights: in between, the newest stored selection of the same
        declaration is served (free), so a weekly release keeps the keys it was released under."""
        selection.validate()
        self._declared[selection.name] = selection
        recent = self._in_force(selection.name, every)
        if recent is not None and recent.meta.get("declaration") == _selection_shape(selection):
            return self._record(_reserved(selection, recent))
        asked = self._asked(selection.dataset)
        salt = f"{self.job}/{selection.name}"
        counts, fingerprint = candidate_counts(self.warehouse.cursor, selection, frame, salt=salt)
        at = keys.threshold(selection)
        described = {**{k: repr(v) for k, v in vars(selection).items()}, "threshold": at}
        input_hash = hashlib.sha256((json.dumps(described, sort_keys=True) + "|" + fingerprint).encode()).hexdigest()
        rid = release_id(self.job, selection.name, self.run_date, input_hash)
        try:
            stored = ledger.find(self.store, rid)
            charged = False
            if stored is None:
                eps, delta = keys.privacy_loss(selection, at)
                charge = ledger.Charge(rid, self.job, selection.name, self.run_date, input_hash, selection.dataset,
                                       selection.unit, eps, asked, delta=delta)
                self._check_budget(charge)
                kept = keys.select(selection, counts, at)
                table = pl.DataFrame({selection.column: sorted(kept), "units": [kept[k] for k in sorted(kept)]},
                                     schema={selection.column: pl.String, "units": pl.Int64})
                query = {"key": "units", "sensitivity": int(selection.max_keys_per_unit), "epsilon": eps,
                         "scale": selection.scale, "moe": margin_of_error(selection.scale)}
                meta = {"queries": [query], "suppressed": [], "k": int(selection.max_keys_per_unit),
                        "unit": selection.unit, "threshold": at, "delta": delta, "kind": "key selection",
                        "declaration": _selection_shape(selection)}
                stored, charged = ledger.commit(self.store, charge, table, meta)
        except PrivacyRefused as e:
            return self._record(self._refused(selection, str(e)))
        return self._record(self._reveal(selection, stored, charged))

    def _check_public(self, release: Release) -> None:
        """Refuse key values that did not come from their public list (declared, or selected with DP)."""
        for column, name in release.public_lists.items():
            handed = self._lists.get(name)
            if handed is None:
                raise ValueError(f"release {release.name!r}: key {column!r} names the public list {name!r}, but "
                                 "no keys were taken from it tonight (call PrivacyLayer.public_keys first)")
            stray = [v for v in release.keys[column] if str(v) not in handed]
            if stray:
                raise ValueError(f"release {release.name!r}: key {column!r} values {stray[:5]} are not in the public "
                                 f"list {name!r}: keys must be declared or selected with DP, never read from the data")

    def release_every(self, release: Release, frame: pl.DataFrame, days: int) -> ReleaseResult:
        """Release at most once every `days` nights; in between, serve the newest stored release of the same
        declaration (free: no new noise, no new ε). Fewer, larger releases are more precise for the same ε."""
        last = self._in_force(release.name, days)
        if last is None or last.meta.get("declaration") != _shape(release):
            return self.release(release, frame)
        self._check_public(release)
        self._declared[release.name] = release
        return self._record(_reserved(release, last))

    def _in_force(self, name: str, days: int) -> ledger.Stored | None:
        """This job's stored release `name` made 1..days-1 nights before tonight (None: a new one is due).
        Tonight's own is not in force: re-running a night goes through `release`, which re-serves it by id."""
        last = ledger.last_good(self.store, self.job, name, self.run_date)
        if last is None or last.run_date == self.run_date or (self.run_date - last.run_date).days >= days:
            return None
        return last

    def _reveal(self, release: Release | KeySelection, stored: ledger.Stored, charged: bool) -> ReleaseResult:
        # The only place noisy values leave the layer; by now the charge is committed.
        return ReleaseResult(
            name=release.name, dataset=release.dataset, table=stored.table, reused=not charged,
            epsilon=stored.epsilon if charged else 0.0,
            delta=float(stored.meta.get("delta", 0.0)) if charged else 0.0,
            release_id=stored.release_id, run_date=stored.run_date,
            queries=stored.meta["queries"], suppressed=stored.meta["suppressed"],
        )

    def _refused(self, release: Release | KeySelection, message: str) -> ReleaseResult:
        last = ledger.last_good(self.store, self.job, release.name, self.run_date)
        if last is None:
            return ReleaseResult(release.name, release.dataset, None, refused=message)
        return ReleaseResult(
            name=release.name, dataset=release.dataset, table=last.table, refused=message,
            release_id=last.release_id, run_date=last.run_date, stale=True,
            queries=last.meta["queries"], suppressed=last.meta["suppressed"],
        )

    def _record(self, result: ReleaseResult) -> ReleaseResult:
        self.results.append(result)
        return result

    def _asked(self, dataset: str) -> Limit:
        """The budget the settings ask for; the ledger decides what is in force (`budget.settle`)."""
        try:
            return Limit.of(self.settings.privacy_budgets[dataset])
        except KeyError:
            raise ValueError(
                f"no privacy budget for dataset {dataset!r}; known: {', '.join(self.settings.privacy_budgets)}. "
                f"Add privacy_budgets.{dataset} to the settings or use a known dataset."
            ) from None

    def _check_budget(self, charge: ledger.Charge) -> None:
        ledger.check(self.store.entries(), charge)

    # -- reporting ---------------------------------------------------------------------------------
    def budget_left(self, dataset: str) -> dict[str, Any]:
        """Budget in force, spent and left for `dataset` in the fullest window containing the run date."""
        entries = self.store.entries()
        limit = in_force(entries, dataset, self._asked(dataset))
        use = ledger.window_use(entries, dataset, self.run_date, limit.window_days)
        return {"dataset": dataset, "budget": limit.epsilon, "window_days": limit.window_days,
                "window_start": use.window_start.isoformat(), "window_end": use.window_end.isoformat(),
                "spent": round(use.spent, 6), "left": round(max(limit.epsilon - use.spent, 0.0), 6),
                "delta_spent": use.delta_spent}

    def section(self) -> dict[str, Any]:
        """The page's Privacy section: ε spent now, budget left, MoEs, suppressions and refusals."""
        latest = list({r.name: r for r in self.results}.values())  # a release asked twice is shown once
        charged = {r.name: 0.0 for r in latest}
        for r in self.results:
            charged[r.name] += r.epsilon
        releases = [self._describe(r, charged[r.name]) for r in latest]
        datasets = list(dict.fromkeys(r.dataset for r in latest))
        fully = {r.name: len(r.suppressed) for r in latest if r.suppressed and len(r.suppressed) == _mean_values(
            self._declared[r.name], r.table)}
        return {
            "job": self.job,
            "run_date": self.run_date.isoformat(),
            "epsilon_spent": round(sum(r.epsilon for r in self.results), 6),
            "delta_spent": sum(r.delta for r in self.results),
            "key_lists": self.key_lists,
            "coarsened": self.coarsened,
            "confidence": CONFIDENCE,
            "releases": releases,
            "budgets": [self.budget_left(d) for d in datasets],
            "suppressed": [s for r in latest for s in r.suppressed if r.name not in fully],
            "fully_suppressed": [{"release": name, "values": n} for name, n in fully.items()],
            "refusals": [{"release": r.name, "dataset": r.dataset, "message": r.refused,
                          "showing": r.run_date.isoformat() if r.stale and r.run_date else None}
                         for r in latest if r.refused],
            "mean_rule": f"a mean is suppressed unless its noisy count exceeds {MEAN_MIN_COUNT_FACTOR:g}× "
                         "the count's margin of error",
        }

    def _describe(self, r: ReleaseResult, charged: float) -> dict[str, Any]:
        rel = self._declared[r.name]
        if isinstance(rel, KeySelection):
            return self._describe_selection(r, rel, charged)
        by_key = {q["key"]: q for q in r.queries}
        measures = []
        for m in rel.measures:
            key = ("units" if m.distinct else "rows") if isinstance(m, Count) else sum_key(m)
            q = by_key.get(key, {})
            kind = "distinct count" if isinstance(m, Count) and m.distinct else type(m).__name__.lower()
            moe: Any = "per row" if isinstance(m, Mean) else q.get("moe")
            if moe != "per row" and moe is not None and not isinstance(m, Count) and m.resolution != 1:
                moe = moe * m.resolution
            measures.append({"name": m.name, "kind": kind, "moe": moe, "epsilon": q.get("epsilon"),
                             "sensitivity": q.get("sensitivity"), "scale": q.get("scale")})
        return {"name": r.name, "dataset": r.dataset, "unit": rel.unit, "status": _status(r, charged),
                "epsilon_declared": rel.epsilon, "epsilon_charged": charged, "k": rel.max_rows_per_unit,
                "keys": list(rel.keys), "release_id": r.release_id,
                "run_date": r.run_date.isoformat() if r.run_date else None, "measures": measures}

    def _describe_selection(self, r: ReleaseResult, sel: KeySelection, charged: float) -> dict[str, Any]:
        q = r.queries[0] if r.queries else {}
        return {"name": r.name, "dataset": r.dataset, "unit": sel.unit, "status": _status(r, charged),
                "epsilon_declared": sel.epsilon, "epsilon_charged": charged, "k": sel.max_keys_per_unit,
                "keys": [sel.column], "release_id": r.release_id, "delta": sel.delta,
                "run_date": r.run_date.isoformat() if r.run_date else None,
                "measures": [{"name": "units", "kind": f"key selection (kept at ≥ {keys.threshold(sel)}, δ {sel.delta:g})",
                              "moe": q.get("moe"), "epsilon": q.get("epsilon"), "sensitivity": q.get("sensitivity"),
                              "scale": q.get("scale")}]}


def _mean_values(rel: Release | KeySelection, table: pl.DataFrame | None) -> int:
    """How many mean values a release table holds (cells x means): all suppressed reads as one sentence."""
    means = sum(isinstance(m, Mean) for m in getattr(rel, "measures", []))
    return 0 if table is None else means * table.height


def _status(r: ReleaseResult, charged: float) -> str:
    if r.refused:
        return "refused" + (f", showing {r.run_date}" if r.stale else ", nothing to show")
    return "new" if charged > 0 else f"reused from {r.run_date} (no new spend)"


def _reserved(release: Release | KeySelection, last: ledger.Stored) -> ReleaseResult:
    """An earlier stored release served again tonight: nothing spent, its own run date."""
    return ReleaseResult(name=release.name, dataset=release.dataset, table=last.table, reused=True,
                         release_id=last.release_id, run_date=last.run_date, queries=last.meta["queries"],
                         suppressed=last.meta["suppressed"])


def _selection_shape(selection: KeySelection) -> dict[str, str]:
    """What a key selection asks, without its ε: a stored selection of the same shape may be served again."""
    return {k: repr(v) for k, v in vars(selection).items() if k != "epsilon"}


def _shape(release: Release) -> dict[str, Any]:
    """What a release asks, without its ε: a stored release of the same shape may be served again."""
    return {k: v for k, v in describe(release).items() if k != "epsilon"}


def _query_info(queries: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "sensitivity": q.sensitivity, "epsilon": q.epsilon, "scale": q.scale,
             "moe": margin_of_error(q.scale)} for k, q in queries.items()]
