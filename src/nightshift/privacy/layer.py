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

from nightshift.privacy import ledger, legacy
from nightshift.privacy.bounding import TrueAggregates, bound_and_aggregate, key_grid, prepare
from nightshift.privacy.budget import Limit, PrivacyRefused, in_force
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


class PrivacyLayer:
    """Bounded, noisy aggregates with a persistent budget, for one job and run date."""

    def __init__(self, warehouse: Any, settings: Any, job: str, run_date: date):
        self.warehouse, self.settings, self.job, self.run_date = warehouse, settings, job, run_date
        self.store = Store.for_home(settings.data_dir, settings.reports_dir)
        legacy.adopt(self.store, warehouse.cursor)
        self.results: list[ReleaseResult] = []
        self._declared: dict[str, Release] = {}

    # -- releasing ---------------------------------------------------------------------------------
    def release(self, release: Release, frame: pl.DataFrame, *, strict: bool = False) -> ReleaseResult:
        """Release `frame`'s bounded, noisy aggregates as declared; `strict` raises BudgetExceeded on refusal."""
        asked = self._asked(release.dataset)
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
                        "k": int(release.max_rows_per_unit), "unit": release.unit}
                stored, charged = ledger.commit(self.store, charge, table, meta)
        except PrivacyRefused as e:
            if strict:
                raise
            return self._record(self._refused(release, str(e)))
        return self._record(self._reveal(release, stored, charged))

    def _reveal(self, release: Release, stored: ledger.Stored, charged: bool) -> ReleaseResult:
        # The only place noisy values leave the layer; by now the charge is committed.
        return ReleaseResult(
            name=release.name, dataset=release.dataset, table=stored.table, reused=not charged,
            epsilon=stored.epsilon if charged else 0.0, release_id=stored.release_id, run_date=stored.run_date,
            queries=stored.meta["queries"], suppressed=stored.meta["suppressed"],
        )

    def _refused(self, release: Release, message: str) -> ReleaseResult:
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
                "spent": round(use.spent, 6), "left": round(max(limit.epsilon - use.spent, 0.0), 6)}

    def section(self) -> dict[str, Any]:
        """The page's Privacy section: ε spent now, budget left, MoEs, suppressions and refusals."""
        latest = list({r.name: r for r in self.results}.values())  # a release asked twice is shown once
        charged = {r.name: 0.0 for r in latest}
        for r in self.results:
            charged[r.name] += r.epsilon
        releases = [self._describe(r, charged[r.name]) for r in latest]
        datasets = list(dict.fromkeys(r.dataset for r in latest))
        return {
            "job": self.job,
            "run_date": self.run_date.isoformat(),
            "epsilon_spent": round(sum(r.epsilon for r in self.results), 6),
            "confidence": CONFIDENCE,
            "releases": releases,
            "budgets": [self.budget_left(d) for d in datasets],
            "suppressed": [s for r in latest for s in r.suppressed],
            "refusals": [{"release": r.name, "dataset": r.dataset, "message": r.refused,
                          "showing": r.run_date.isoformat() if r.stale and r.run_date else None}
                         for r in latest if r.refused],
            "mean_rule": f"a mean is suppressed unless its noisy count exceeds {MEAN_MIN_COUNT_FACTOR:g}× "
                         "the count's margin of error",
        }

    def _describe(self, r: ReleaseResult, charged: float) -> dict[str, Any]:
        rel = self._declared[r.name]
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
        status = ("refused" + (f", showing {r.run_date}" if r.stale else ", nothing to show")) if r.refused \
            else ("new" if charged > 0 else "reused (no new spend)")
        return {"name": r.name, "dataset": r.dataset, "unit": rel.unit, "status": status,
                "epsilon_declared": rel.epsilon, "epsilon_charged": charged, "k": rel.max_rows_per_unit,
                "keys": list(rel.keys), "release_id": r.release_id,
                "run_date": r.run_date.isoformat() if r.run_date else None, "measures": measures}


def _query_info(queries: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "sensitivity": q.sensitivity, "epsilon": q.epsilon, "scale": q.scale,
             "moe": margin_of_error(q.scale)} for k, q in queries.items()]
