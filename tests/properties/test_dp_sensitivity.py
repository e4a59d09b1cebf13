"""DP sensitivity from declared bounds, for any K, any (asymmetric, negative) bounds and resolutions.

Two sides: the query plan's numbers against the rule recomputed here from the integer bounds the
test chose (K rows per unit; K·max(|L|, |U|) for a clipped sum; ε split equally; scale =
sensitivity / (ε/n)), and the bounding SQL against the plan: adding one unit's rows (any number,
any values, any cells) to any dataset moves each true query vector by at most the declared L1
sensitivity, and a worst-case unit moves it by exactly that much (so it is neither under- nor
overstated). Neighbours differ by adding or removing one unit, the definition the release uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nightshift.privacy.bounding import bound_and_aggregate, key_grid, prepare
from nightshift.privacy.spec import Count, Mean, Release, Sum, plan, sum_key

RESOLUTIONS = [1.0, 0.5, 0.25, 0.1, 0.01, 2.0, 100.0]


@dataclass(frozen=True)
class Bounds:
    """Declared clip bounds as integers in units of the resolution (the test knows them exactly)."""

    lo: int
    hi: int
    resolution: float

    @property
    def lower(self) -> float:
        return self.lo * self.resolution

    @property
    def upper(self) -> float:
        return self.hi * self.resolution

    @property
    def largest(self) -> int:
        """The largest |value| a clipped value can have: at one of the two ends."""
        return max(abs(v) for v in (self.lo, self.hi))


@st.composite
def bounds(draw: st.DrawFn, limit: int = 10_000) -> Bounds:
    """lo <= hi, not both 0: every sign pattern (both negative, straddling 0, |lo| > |hi|, ...)."""
    lo, hi = sorted(draw(st.lists(st.integers(-limit, limit), min_size=2, max_size=2)))
    if lo == hi == 0:
        hi = 1
    return Bounds(lo, hi, draw(st.sampled_from(RESOLUTIONS)))


@st.composite
def releases(draw: st.DrawFn) -> tuple[Release, dict[str, Bounds]]:
    """A valid release with random measures, K and ε, and the bounds of each summed measure."""
    measures, known = [], {}
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["count", "distinct", "sum", "mean"]))
        if kind in ("count", "distinct"):
            measures.append(Count(f"m{i}", distinct=kind == "distinct"))
            continue
        b = draw(bounds())
        column = draw(st.sampled_from(["x", "y"]))
        measure = (Sum if kind == "sum" else Mean)(f"m{i}", column, b.lower, b.upper, b.resolution)
        measures.append(measure)
        known[measure.name] = b
    release = Release("r", "users", "user_id", measures=measures,
                      max_rows_per_unit=draw(st.integers(1, 50)), epsilon=draw(st.floats(0.01, 10.0)))
    release.validate()
    return release, known


def expected_sensitivities(release: Release, known: dict[str, Bounds]) -> dict[str, int]:
    """The plan recomputed: one unit adds at most K rows, K distinct cells, and K clipped values."""
    k = release.max_rows_per_unit
    out: dict[str, int] = {}
    for m in release.measures:
        if isinstance(m, Count):
            out["units" if m.distinct else "rows"] = k
            continue
        if isinstance(m, Mean):
            out["rows"] = k  # a mean's denominator is the noisy row count
        out[sum_key(m)] = k * known[m.name].largest
    return out


def check_plan(release: Release, known: dict[str, Bounds]) -> None:
    want = expected_sensitivities(release, known)
    got = plan(release)
    assert {key: q.sensitivity for key, q in got.items()} == want
    n, eps = len(want), release.epsilon
    for q in got.values():
        assert q.epsilon == pytest.approx(eps / n, rel=1e-12)
        assert q.scale == pytest.approx(q.sensitivity / (eps / n), rel=1e-12)
    assert math.fsum(q.epsilon for q in got.values()) == pytest.approx(eps, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(releases())
def test_plan_sensitivity_and_scale_follow_k_and_bounds(drawn: tuple[Release, dict[str, Bounds]]) -> None:
    check_plan(*drawn)


@pytest.mark.parametrize(("lo", "hi"), [(-50, 3), (-50, -3), (-3, 50), (3, 50), (0, 7), (-7, 0), (-4, 4)],
                         ids=["straddle-lo-larger", "both-negative", "straddle-hi-larger", "both-positive",
                              "zero-lo", "zero-hi", "symmetric"])
@pytest.mark.parametrize("k", [1, 2, 7])
@pytest.mark.parametrize("resolution", [1.0, 0.01])
def test_sum_sensitivity_for_each_sign_pattern(lo: int, hi: int, k: int, resolution: float) -> None:
    # The shapes named in the issue, each with K = 1 and K > 1, written out rather than left to chance.
    b = Bounds(lo, hi, resolution)
    release = Release("r", "users", "user_id", measures=[Sum("s", "x", b.lower, b.upper, resolution)],
                      max_rows_per_unit=k, epsilon=0.5)
    check_plan(release, {"s": b})
    assert plan(release)[sum_key(release.measures[0])].scale == pytest.approx(k * max(abs(lo), abs(hi)) / 0.5)


# -- the bounding SQL against the plan --------------------------------------------------------------

CELLS = ["a", "b", "c", "d"]
UNDECLARED = "zz"  # rows with a key nobody declared drop out before bounding
NEW_UNIT = 10_000


@pytest.fixture(scope="module")
def cur() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


def release_for(k: int, n_cells: int, sums: list[Bounds]) -> Release:
    measures = [Count("n"), Count("u", distinct=True)]
    measures += [Sum(f"s{i}", "v", b.lower, b.upper, b.resolution) for i, b in enumerate(sums)]
    release = Release("r", "users", "unit", keys={"g": CELLS[:n_cells]}, measures=measures, max_rows_per_unit=k,
                      epsilon=1.0)
    release.validate()
    return release


def vectors(cur: duckdb.DuckDBPyConnection, release: Release, rows: list[tuple[int, str, float]],
            salt: str) -> dict[str, list[int]]:
    frame = pl.DataFrame(rows, schema={"unit": pl.Int64, "g": pl.String, "v": pl.Float64}, orient="row")
    grid = key_grid(release)
    return bound_and_aggregate(cur, release, prepare(release, frame, grid), grid.height, salt=salt).vectors


def l1(a: list[int], b: list[int]) -> int:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


@st.composite
def neighbours(draw: st.DrawFn) -> tuple[Release, list, list]:
    """A release over 1-4 cells with one or two sums on the same column (same resolution), a base
    dataset, and the rows one more unit adds: up to 3K of them, values far beyond the bounds."""
    k = draw(st.integers(1, 5))
    resolution = draw(st.sampled_from(RESOLUTIONS))
    sums = [Bounds(b.lo, b.hi, resolution) for b in draw(st.lists(bounds(limit=1_000), min_size=1, max_size=2))]
    release = release_for(k, draw(st.integers(1, len(CELLS))), sums)
    reach = 3 * max(b.largest for b in sums) + 3
    cell = st.sampled_from([*release.keys["g"], UNDECLARED])
    value = st.integers(-reach, reach).map(lambda n: n * resolution)
    base = draw(st.lists(st.tuples(st.integers(0, 5), cell, value), max_size=30))
    added = draw(st.lists(st.tuples(st.just(NEW_UNIT), cell, value), min_size=1, max_size=3 * k))
    return release, base, added


@settings(max_examples=30, deadline=None)
@given(neighbours(), st.text(max_size=4))
def test_adding_one_unit_moves_each_query_by_at_most_its_sensitivity(
        cur: duckdb.DuckDBPyConnection, drawn: tuple[Release, list, list], salt: str) -> None:
    release, base, added = drawn
    without, with_unit = vectors(cur, release, base, salt), vectors(cur, release, base + added, salt)
    for key, query in plan(release).items():
        assert l1(with_unit[key], without[key]) <= query.sensitivity, key


@settings(max_examples=20, deadline=None)
@given(st.integers(1, len(CELLS)), bounds(limit=1_000), st.data())
def test_a_worst_case_unit_moves_each_query_by_exactly_its_sensitivity(
        cur: duckdb.DuckDBPyConnection, k: int, b: Bounds, data: st.DataObject) -> None:
    # K or more rows spread over K distinct cells, every value beyond the bound of larger magnitude:
    # the declared sensitivity is attained, so it is neither too small (a privacy bug) nor too large.
    release = release_for(k, len(CELLS), [b])
    end = b.lo if abs(b.lo) >= abs(b.hi) else b.hi
    far = (end - 5 if end == b.lo else end + 5) * b.resolution
    n_rows = data.draw(st.integers(k, 3 * k), label="rows of the unit")
    added = [(NEW_UNIT, CELLS[i % len(CELLS)], far) for i in range(n_rows)]
    base = data.draw(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(CELLS), st.just(0.0)), max_size=10),
                     label="base")
    without, with_unit = vectors(cur, release, base, "s"), vectors(cur, release, base + added, "s")
    queries = plan(release)
    sum_query = sum_key(release.measures[2])
    assert l1(with_unit["rows"], without["rows"]) == queries["rows"].sensitivity == k
    assert l1(with_unit["units"], without["units"]) == queries["units"].sensitivity == k
    assert l1(with_unit[sum_query], without[sum_query]) == queries[sum_query].sensitivity == k * b.largest
