"""Contracts at and around every declared bound: a value is loaded or quarantined exactly as the
table declaration in `nightshift.tables` says, for every min/max (inclusive or exclusive) of every
column of every table.

The bounds are enumerated from `TABLES`, so a new bound is covered without writing a test. Each case
is one partition of otherwise valid rows (one minimal valid row per table, built from its columns)
in which only the bounded column varies; rows get distinct keys so that no other rule can fire.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nightshift import contracts
from nightshift.tables import TABLES, Column, TableSpec, spec
from nightshift.warehouse import Warehouse

D = date(2026, 3, 1)
INTEGER_TYPES = {"BIGINT", "INTEGER"}
NUMERIC_TYPES = {*INTEGER_TYPES, "DOUBLE"}
# Raw frames are built with these dtypes; staging casts them to the declared DuckDB type.
RAW_DTYPES = {"VARCHAR": pl.String, "BIGINT": pl.Int64, "INTEGER": pl.Int64, "DOUBLE": pl.Float64,
              "DATE": pl.Date, "TIMESTAMP": pl.Datetime("us"), "BOOLEAN": pl.Boolean}


def declared_bounds() -> Iterator[tuple[str, str, str]]:
    """(table, column, "min" | "max") for every bound any table declares."""
    for t in TABLES.values():
        for c in t.columns:
            if c.min is not None:
                yield t.name, c.name, "min"
            if c.max is not None:
                yield t.name, c.name, "max"


BOUNDS = list(declared_bounds())


def max_exclusive(c: Column) -> bool:
    # No column declares an exclusive maximum today; if the declaration grows one, it is honoured here.
    return bool(getattr(c, "max_exclusive", False))


def declared_ok(c: Column, v: float) -> bool:
    """Whether the declaration allows `v` in column `c` (the oracle, read off the spec)."""
    if c.min is not None and (v <= c.min if c.min_exclusive else v < c.min):
        return False
    return not (c.max is not None and (v >= c.max if max_exclusive(c) else v > c.max))


def inside_value(c: Column) -> float:
    """A value well inside the column's declared range."""
    if c.min is not None and c.max is not None:
        v = (c.min + c.max) / 2
    elif c.min is not None:
        v = c.min + 1
    elif c.max is not None:
        v = c.max - 1
    else:
        v = 1
    return int(v) if c.type in INTEGER_TYPES else float(v)


def base_value(c: Column) -> Any:
    """A valid value for a column of any declared type."""
    if c.enum:
        return c.enum[0]
    if c.type in NUMERIC_TYPES:
        return inside_value(c)
    values = {"VARCHAR": "x", "DATE": D, "TIMESTAMP": datetime.combine(D, time(10)), "BOOLEAN": False}
    if c.type not in values:
        raise AssertionError(f"column {c.name}: no valid test value for type {c.type}; add one here")
    return values[c.type]


def base_row(t: TableSpec) -> dict[str, Any]:
    return {c.name: base_value(c) for c in t.columns}


def free_key(t: TableSpec) -> str:
    """A text key column that is neither an enum nor a reference: varied to make rows distinct."""
    refs = {r.column for r in t.references}
    for name in t.key:
        c = t.column(name)
        if c.type == "VARCHAR" and not c.enum and name not in refs:
            return name
    raise AssertionError(f"table {t.name}: no free text key column to make test rows distinct")


def raw_table(t: TableSpec, rows: list[dict[str, Any]]) -> pa.Table:
    schema = {c.name: RAW_DTYPES[c.type] for c in t.columns}
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(pl.lit(D).alias("_partition")).to_arrow()


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """A warehouse holding the rows that the base rows reference (e.g. the user of an event)."""
    with Warehouse(tmp_path_factory.mktemp("bounds") / "w.duckdb") as w:
        for t in TABLES.values():
            for ref in t.references:
                target = spec(ref.table)
                row = {**base_row(target), ref.target: base_row(t)[ref.column]}
                w.cursor.register("_ref_rows", raw_table(target, [row]))
                # The table name comes from the table registry, never from data.
                w.cursor.execute("insert into " + target.name + " select * from _ref_rows")  # noqa: S608
                w.cursor.unregister("_ref_rows")
        yield w


def fates(wh: Warehouse, table: str, cases: list[tuple[str, float]]) -> list[str | None]:
    """Check one partition of base rows, row i with column cases[i][0] set to cases[i][1]; per row
    None when it is loaded, else the rule that quarantined it. Every row ends up in exactly one place."""
    t = spec(table)
    key = free_key(t)
    rows = [{**base_row(t), key: f"k{i}", column: v} for i, (column, v) in enumerate(cases)]
    checked = contracts.check(table, raw_table(t, rows), wh)
    good = checked.good[key].to_list()
    bad = dict(zip(checked.bad[key].to_list(), checked.bad["_rule"].to_list(), strict=True))
    assert len(good) + len(bad) == len(rows) and not set(good) & set(bad)
    return [None if f"k{i}" in good else bad[f"k{i}"] for i in range(len(rows))]


def expected(c: Column, v: float) -> str | None:
    return None if declared_ok(c, v) else f"out of range in {c.name}"


def step(c: Column, v: float, toward: float) -> float:
    """The next representable value of the column's type from `v` toward `toward`."""
    if c.type in INTEGER_TYPES:
        return v + (1 if toward > v else -1)
    return math.nextafter(v, toward)


def at_bound(c: Column, side: str) -> float:
    v = c.min if side == "min" else c.max
    assert v is not None
    if c.type in INTEGER_TYPES:
        assert v == int(v), f"column {c.name}: an integer column with a fractional bound {v}"
        return int(v)
    return float(v)


def test_the_base_rows_are_valid(wh: Warehouse) -> None:
    # Without this, a base row broken by another rule would make every bound test meaningless.
    assert BOUNDS, "no table declares a bound: the declaration or this enumeration is broken"
    for table in dict.fromkeys(t for t, _, _ in BOUNDS):
        c = spec(table).columns[-1]
        assert fates(wh, table, [(c.name, base_value(c))]) == [None], table


@pytest.mark.parametrize(("table", "column", "side"), BOUNDS, ids=[f"{t}.{c}.{s}" for t, c, s in BOUNDS])
def test_at_just_inside_and_just_outside_each_bound(wh: Warehouse, table: str, column: str, side: str) -> None:
    c = spec(table).column(column)
    assert c.type in NUMERIC_TYPES, f"{table}.{column}: a bound on a {c.type} column"
    b = at_bound(c, side)
    inward = math.inf if side == "min" else -math.inf
    exclusive = c.min_exclusive if side == "min" else max_exclusive(c)
    values = [b, step(c, b, inward), step(c, b, -inward)]
    out_of_range = f"out of range in {column}"
    # Stated directly, not through the oracle: at the bound only if inclusive, inside yes, outside no.
    assert fates(wh, table, [(column, v) for v in values]) == [out_of_range if exclusive else None, None,
                                                               out_of_range]


def near(c: Column, b: float) -> st.SearchStrategy[float]:
    """Values around bound `b`: a few steps either side, small and large offsets."""
    if c.type in INTEGER_TYPES:
        b = int(b)
        return st.integers(b - 3, b + 3) | st.integers(b - 1_000_000, b + 1_000_000)

    def ulps(n: int) -> float:
        v = b
        for _ in range(abs(n)):
            v = math.nextafter(v, math.copysign(math.inf, n))
        return v

    scale = max(1.0, abs(b))
    offsets = st.floats(-scale, scale, allow_nan=False).map(lambda x: b + x)
    return st.integers(-4, 4).map(ulps) | offsets | st.floats(-1e12, 1e12, allow_nan=False)


BOUNDED_TABLES = list(dict.fromkeys(t for t, _, _ in BOUNDS))


def around_bounds(table: str) -> st.SearchStrategy[tuple[str, float]]:
    """(column, value) with the value near one of the table's declared bounds."""
    return st.one_of([near(spec(table).column(c), at_bound(spec(table).column(c), s)).map(lambda v, c=c: (c, v))
                      for t, c, s in BOUNDS if t == table])


# One partition per example holds values around all of a table's bounds: a check costs tens of ms.
@pytest.mark.parametrize("table", BOUNDED_TABLES)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_values_around_every_bound_are_judged_as_declared(wh: Warehouse, table: str, data: st.DataObject) -> None:
    cases = data.draw(st.lists(around_bounds(table), min_size=1, max_size=40), label="cases")
    t = spec(table)
    assert fates(wh, table, cases) == [expected(t.column(c), v) for c, v in cases]
