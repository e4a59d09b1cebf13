"""From a person-level frame to true per-cell aggregates of the *bounded* input.

Polars maps rows onto the declared cells (the cross product of the public key values; rows with an
undeclared key drop out here and can never be released) and turns values into integers. DuckDB SQL
then bounds contributions (at most K rows per unit, by a salted hash, values clipped) and
aggregates. Nothing in this module is noisy: its output must never leave the privacy package.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import duckdb
import polars as pl

from nightshift.privacy.spec import Release, plan, sum_columns, sum_key
from nightshift.warehouse import sql_text

CELL = "_cell"


def key_grid(release: Release) -> pl.DataFrame:
    """Every declared key combination, one row each, with its cell index (0..n-1)."""
    cols = list(release.keys)
    if not cols:
        return pl.DataFrame({CELL: [0]}, schema={CELL: pl.Int32})
    combos = list(itertools.product(*(release.keys[c] for c in cols)))
    data = {c: pl.Series(c, [combo[i] for combo in combos]) for i, c in enumerate(cols)}
    return pl.DataFrame(data).with_row_index(CELL).with_columns(pl.col(CELL).cast(pl.Int32))


def prepare(release: Release, frame: pl.DataFrame, grid: pl.DataFrame) -> pl.DataFrame:
    """The bounding input: (unit, cell, vals) with vals the integer values of each summed column."""
    need = [release.unit, *release.keys, *(c for c, *_ in sum_columns(release))]
    missing = [c for c in dict.fromkeys(need) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"release {release.name!r}: the frame has no column(s) {', '.join(missing)} "
            f"(it has {', '.join(frame.columns)})"
        )
    cols = list(release.keys)
    rows = frame.select(list(dict.fromkeys(need))).filter(pl.col(release.unit).is_not_null())
    if cols:
        rows = rows.with_columns(pl.col(c).cast(grid.schema[c], strict=False) for c in cols)
        rows = rows.join(grid, on=cols, how="inner")  # undeclared (and null) keys drop out
    else:
        rows = rows.with_columns(pl.lit(0, dtype=pl.Int32).alias(CELL))
    values = []
    for column, _lo, _hi, res in sum_columns(release):
        col = pl.col(column)
        if res == 1 and rows.schema[column].is_integer():
            v = col.cast(pl.Int64)
        else:  # round to integer units of the declared resolution: noise is added on integers
            v = (col.cast(pl.Float64) / res).round().cast(pl.Int64)
        values.append(v.fill_null(0))  # a missing value counts as 0, then is clipped into bounds
    vals = pl.concat_list(values) if values else pl.lit([], dtype=pl.List(pl.Int64))
    return rows.select(
        pl.col(release.unit).alias("unit"), pl.col(CELL).alias("cell"), vals.alias("vals")
    )


@dataclass(frozen=True)
class TrueAggregates:
    """Per-query true vectors over all cells, and the fingerprint of the bounded input."""

    vectors: dict[str, list[int]]
    fingerprint: str


def bound_and_aggregate(cur: duckdb.DuckDBPyConnection, release: Release, prepared: pl.DataFrame,
                        n_cells: int, *, salt: str = "") -> TrueAggregates:
    """Bound contributions in SQL (K rows per unit, clipped values), then aggregate per cell."""
    k = int(release.max_rows_per_unit)
    cols = sum_columns(release)
    params = {"k": k, "salt": salt, "lower": [lo for _, lo, _, _ in cols], "upper": [hi for _, _, hi, _ in cols]}
    cur.register("_privacy_input", prepared.to_arrow())
    try:
        cur.execute(sql_text("privacy/bound_rows"), params)
        cur.execute(sql_text("privacy/bound_units"), {"k": k, "salt": salt})
    finally:
        cur.unregister("_privacy_input")
    fingerprint = cur.sql(sql_text("privacy/fingerprint")).fetchall()[0][0]
    counts = cur.sql(sql_text("privacy/cell_counts")).pl()
    sums = cur.sql(sql_text("privacy/cell_sums")).pl()
    cur.execute("drop table if exists _privacy_bounded; drop table if exists _privacy_bounded_units")

    def vector(frame: pl.DataFrame, value: str) -> list[int]:
        out = [0] * n_cells  # declared cells with no rows are released too (true value 0)
        for cell, v in zip(frame["cell"].to_list(), frame[value].to_list(), strict=True):
            out[cell] = int(v)
        return out

    vectors: dict[str, list[int]] = {}
    index = {sum_key_: i + 1 for i, sum_key_ in enumerate(_sum_keys(release))}
    for key in plan(release):
        if key in ("rows", "units"):
            vectors[key] = vector(counts.filter(pl.col("what") == key), "n")
        else:
            vectors[key] = vector(sums.filter(pl.col("m") == index[key]), "total")
    return TrueAggregates(vectors, fingerprint)


def _sum_keys(release: Release) -> list[str]:
    seen: dict[str, None] = {}
    for m in release.measures:
        if hasattr(m, "column"):
            seen.setdefault(sum_key(m), None)
    return list(seen)
