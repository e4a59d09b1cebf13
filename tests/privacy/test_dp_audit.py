"""The neighbour audit on every release shape the jobs use, and on each planted privacy bug.

Shapes: counts, distinct counts, counts with sums (channel_window), a sum with a negative bound, means
at a fine resolution (loans portfolio, energy) and a one-row-per-unit histogram (visits_histogram),
each over several cells; and the DP key selection (thresholded noisy distinct counts, (ε, δ)-DP),
audited against its declared ε and δ, which must fail when the threshold ignores δ, when the counts
are kept without noise, or when K values per unit are not bounded. The added unit has more than K rows, in every declared cell and in one
undeclared cell, with values far beyond the bound of larger magnitude: the worst case for K, for the
clip bounds and for the cells. The audit must pass on the real code and fail on each planted bug.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import polars as pl
import pytest
from dp_audit import audit, audit_selection, numpy_sampler, numpy_selector, opendp_sampler, opendp_selector
from scipy import stats

from nightshift.privacy import Count, KeySelection, Mean, Release, Sum, bounding, keys, layer
from nightshift.privacy.spec import Query

CELLS = ["search", "social", "email"]
BINS = ["1", "2", "3-4", "5-9", "10-19", "20+"]


@dataclass(frozen=True)
class Shape:
    release: Release
    far: float  # the added unit's values: far beyond the bound of larger magnitude


SHAPES = {
    "count": Shape(Release("count", "users", "user_id", {"g": CELLS}, [Count("n")], max_rows_per_unit=3), 0),
    "distinct": Shape(Release("distinct", "users", "user_id", {"g": CELLS}, [Count("u", distinct=True)],
                              max_rows_per_unit=2), 0),
    "sums": Shape(Release("sums", "users", "user_id", {"g": CELLS},
                          [Count("n"), Sum("rev", "x", 0, 5_000), Sum("visits", "y", 0, 2)], max_rows_per_unit=2),
                  50_000),
    "negative_sum": Shape(Release("negative_sum", "users", "user_id", {"g": CELLS}, [Sum("d", "x", -500, 100)],
                                  max_rows_per_unit=2), -50_000),
    "means": Shape(Release("means", "users", "user_id", {"g": CELLS},
                           [Count("n"), Mean("rev", "x", 0, 2_000, resolution=0.01), Mean("days", "y", 0, 90)],
                           max_rows_per_unit=2), 50_000),
    "histogram": Shape(Release("histogram", "users", "user_id", {"g": BINS}, [Count("users")]), 0),
}
EPSILON = 1.0
SHAPES = {k: replace(v, release=replace(v.release, epsilon=EPSILON)) for k, v in SHAPES.items()}


def neighbours(shape: Shape) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(without, with_unit): 80 units in the declared cells, and one more unit at the worst case."""
    cells = shape.release.keys["g"]
    rng = np.random.default_rng(5)  # the data only
    n = 200
    base = pl.DataFrame({"user_id": rng.integers(0, 80, n), "g": rng.choice(cells, n),
                         "x": rng.uniform(-600, 6_000, n), "y": rng.uniform(0, 100, n)})
    k = shape.release.max_rows_per_unit
    where = [cells[i % len(cells)] for i in range(3 * k * len(cells))] + ["zz"]  # "zz": never declared
    unit = pl.DataFrame({"user_id": [10_000] * len(where), "g": where, "x": [float(shape.far)] * len(where),
                         "y": [float(abs(shape.far))] * len(where)})
    return base, pl.concat([base, unit])


def declared(shape: Shape) -> Callable[[pl.DataFrame], Release]:
    return lambda frame: shape.release  # the jobs' way: keys fixed before the data is read


# -- the planted bugs: each returns how releases are declared while it is in place ------------------
def _patch_bounding_sql(monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    real = bounding.sql_text
    assert old in real("privacy/bound_rows"), "the planted bug no longer applies to the bounding SQL"

    def mutated(name: str) -> str:
        return real(name).replace(old, new) if name.startswith("privacy/bound_") else real(name)

    monkeypatch.setattr(bounding, "sql_text", mutated)


def k_per_unit_and_cell(monkeypatch, shape):
    _patch_bounding_sql(monkeypatch, "partition by unit order by", "partition by unit, cell order by")
    return declared(shape)


def clip_removed(monkeypatch, shape):
    # The bounds stay bound parameters (DuckDB refuses unused ones) but no longer clip.
    _patch_bounding_sql(monkeypatch, "least(greatest(v, $lower[i]), $upper[i])",
                        "case when $lower[i] <= $upper[i] then v end")
    return declared(shape)


def sensitivity_without_k(monkeypatch, shape):
    real = layer.plan

    def plan(release: Release) -> dict[str, Query]:
        k = release.max_rows_per_unit
        return {key: Query(key, q.sensitivity // k, q.epsilon) for key, q in real(release).items()}

    monkeypatch.setattr(layer, "plan", plan)
    return declared(shape)


def data_derived_key(monkeypatch, shape):
    # As `campaigns = frame["campaign_id"].unique()` would: the cells come from the person-level rows.
    return lambda frame: replace(shape.release, keys={"g": sorted(frame["g"].unique().to_list())})


BUGS = {
    "k_per_unit_and_cell": (k_per_unit_and_cell, list(SHAPES)),
    "clip_removed": (clip_removed, ["sums", "negative_sum", "means"]),
    "sensitivity_without_k": (sensitivity_without_k, [s for s, v in SHAPES.items() if v.release.max_rows_per_unit > 1]),
    "data_derived_key": (data_derived_key, list(SHAPES)),
}


@pytest.fixture(scope="module")
def cur() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


def test_the_fast_sampler_draws_the_discrete_laplace():
    scale, n, edge = 3.0, 50_000, 12
    draws = numpy_sampler(7)(np.zeros(n, dtype=np.int64), scale)
    z = np.arange(-edge, edge + 1)
    observed = np.array([(draws < -edge).sum(), *[(draws == v).sum() for v in z], (draws > edge).sum()])

    def p_value(s: float) -> float:
        q = math.exp(-1.0 / s)
        pmf = (1 - q) / (1 + q) * q ** np.abs(z)
        tail = (1 - pmf.sum()) / 2
        return stats.chisquare(observed, n * np.concatenate([[tail], pmf, [tail]])).pvalue

    assert p_value(scale) > 1e-3 and p_value(scale * 1.2) < 1e-6


@pytest.mark.parametrize("name", list(SHAPES))
def test_real_releases_pass_the_audit(cur, name):
    shape = SHAPES[name]
    verdict = audit(cur, declared(shape), *neighbours(shape), sampler=numpy_sampler(1))
    assert verdict.passed, verdict


@pytest.mark.parametrize(("bug", "name"), [(b, s) for b, (_, shapes) in BUGS.items() for s in shapes])
def test_each_planted_bug_fails_the_audit(cur, monkeypatch, bug, name):
    shape = SHAPES[name]
    declare = BUGS[bug][0](monkeypatch, shape)
    verdict = audit(cur, declare, *neighbours(shape), sampler=numpy_sampler(1))
    assert not verdict.passed, f"the audit missed {bug} on {name}: {verdict}"


@pytest.mark.slow
@pytest.mark.parametrize("bug", [None, "k_per_unit_and_cell", "sensitivity_without_k"])
def test_audit_with_the_releases_own_opendp_noise(cur, monkeypatch, bug):
    shape = SHAPES["count"]
    declare = BUGS[bug][0](monkeypatch, shape) if bug else declared(shape)
    verdict = audit(cur, declare, *neighbours(shape), sampler=opendp_sampler, n=20_000)
    assert verdict.passed is (bug is None), verdict


# -- the key selection shape ----------------------------------------------------------------------------
SELECTION = KeySelection("key_selection", "users", "user_id", "g", "campaigns", max_keys_per_unit=1,
                         epsilon=EPSILON, delta=1e-6)
# The added unit: alone in a value nobody else has (the δ case: it must not be named), or in every common
# value (more values than K: the bound on values per unit, and each kept count, must absorb it).
SELECTION_UNITS = {"rare": ["zz"] * 3, "common": CELLS * 3}


def selection_neighbours(unit: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    base, _ = neighbours(SHAPES["count"])
    where = SELECTION_UNITS[unit]
    added = pl.DataFrame({"user_id": [10_000] * len(where), "g": where, "x": [0.0] * len(where),
                          "y": [0.0] * len(where)})
    return base, pl.concat([base, added])


def threshold_without_delta(monkeypatch):
    # The smallest threshold OpenDP accepts, whatever δ it costs: one person's value gets named.
    monkeypatch.setattr(keys, "threshold", lambda selection: int(selection.max_keys_per_unit))


def kept_without_noise(monkeypatch):
    monkeypatch.setattr(keys, "select", lambda selection, counts, at: {k: v for k, v in counts.items() if v >= at})


def values_per_unit_unbounded(monkeypatch):
    _patch_bounding_sql(monkeypatch, "partition by unit order by", "partition by unit, cell order by")


SELECTION_BUGS = {"threshold_without_delta": (threshold_without_delta, "rare"),
                  "values_per_unit_unbounded": (values_per_unit_unbounded, "common")}


@pytest.mark.parametrize("unit", list(SELECTION_UNITS))
def test_key_selection_passes_the_audit(cur, unit):
    verdict = audit_selection(cur, SELECTION, *selection_neighbours(unit), selector=numpy_selector(1))
    assert verdict.passed, verdict


@pytest.mark.parametrize("bug", list(SELECTION_BUGS))
def test_each_planted_key_selection_bug_fails_the_audit(cur, monkeypatch, bug):
    plant, unit = SELECTION_BUGS[bug]
    plant(monkeypatch)
    verdict = audit_selection(cur, SELECTION, *selection_neighbours(unit), selector=numpy_selector(1))
    assert not verdict.passed, f"the audit missed {bug}: {verdict}"


def test_key_selection_kept_without_noise_fails_the_audit(cur, monkeypatch):
    # Through the layer's own `keys.select` (a few hundred draws suffice: the outputs never overlap).
    kept_without_noise(monkeypatch)
    verdict = audit_selection(cur, SELECTION, *selection_neighbours("common"), selector=opendp_selector, n=300)
    assert not verdict.passed, verdict


@pytest.mark.slow
@pytest.mark.parametrize(("bug", "unit"), [(None, "rare"), (None, "common"), ("threshold_without_delta", "rare"),
                                           ("kept_without_noise", "common")])
def test_key_selection_audit_with_opendps_own_threshold_mechanism(cur, monkeypatch, bug, unit):
    if bug:
        {"threshold_without_delta": threshold_without_delta, "kept_without_noise": kept_without_noise}[bug](monkeypatch)
    verdict = audit_selection(cur, SELECTION, *selection_neighbours(unit), selector=opendp_selector, n=3_000)
    assert verdict.passed is (bug is None), verdict
