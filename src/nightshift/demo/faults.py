"""Messy-data faults for the demo: what real upstream systems deliver on a bad day.

`inject` spoils a small share of one table's rows in ways the contracts must catch (nulls in
required columns, duplicates, out-of-range values, wrong types, future and late rows), and
`drop_day` removes one day's drop entirely.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from nightshift.tables import spec

FAULT_SHARE = 0.004  # of rows per fault kind: visible in the quarantine, too few to make a table unusable


def _pick(rng: np.random.Generator, n: int, share: float = FAULT_SHARE) -> np.ndarray:
    k = max(1, int(n * share)) if n else 0
    return rng.choice(n, size=min(k, n), replace=False)


def inject(frame: pl.DataFrame, table: str, rng: np.random.Generator) -> pl.DataFrame:
    """Return `frame` with a few rows of every fault kind, and `_drop_day`: the drop each row lands in."""
    t = spec(table)
    n = frame.height
    tc = t.time_column
    shift = pl.duration(days=1) if t.column(tc).type == "TIMESTAMP" else timedelta(days=1)
    out = frame.with_row_index("_i").with_columns(pl.col(tc).cast(pl.Date).alias("_drop_day"))
    if n == 0:
        return out.drop("_i")
    hit = lambda: pl.col("_i").is_in(_pick(rng, n).tolist())  # noqa: E731 - a fresh sample each call

    # Nulls in a required column.
    required = [c.name for c in t.columns if c.required and c.name not in (tc, *t.key)]
    if required:
        name = required[int(rng.integers(len(required)))]
        out = out.with_columns(pl.when(hit()).then(None).otherwise(pl.col(name)).alias(name))
    # Out-of-range values.
    ranged = [c for c in t.columns if c.min is not None]
    if ranged:
        c = ranged[int(rng.integers(len(ranged)))]
        out = out.with_columns(pl.when(hit()).then(pl.lit(-1).cast(out[c.name].dtype)).otherwise(pl.col(c.name))
                               .alias(c.name))
    # Future rows: stamped a day after the drop they arrive in.
    out = out.with_columns(pl.when(hit()).then(pl.col(tc) + shift).otherwise(pl.col(tc)).alias(tc))
    # Late rows: copies arriving in the next day's drop. With a text key they get a new key (a
    # genuine late row, loaded); otherwise the key repeats (a duplicate key across days).
    late = out.filter(hit()).with_columns((pl.col("_drop_day") + timedelta(days=1)).alias("_drop_day"))
    first_key = t.key[0]
    if out[first_key].dtype == pl.String:
        late = late.with_columns((pl.col(first_key) + "-late").alias(first_key))
    # Exact duplicates within a drop.
    dups = out.filter(hit())
    out = pl.concat([out, late, dups], how="vertical")
    # Wrong types: a numeric column delivered as text, with a few unparseable values.
    numeric = [c.name for c in t.columns if c.type in ("BIGINT", "INTEGER", "DOUBLE") and c.required]
    if numeric:
        name = numeric[int(rng.integers(len(numeric)))]
        out = out.with_columns(pl.when(hit()).then(pl.lit("n/a")).otherwise(pl.col(name).cast(pl.String)).alias(name))
    return out.drop("_i")


def drop_day(frame: pl.DataFrame, table: str, rng: np.random.Generator) -> pl.DataFrame:
    """Remove every row of one day (not the last) from a table: a missing drop."""
    col = pl.col(spec(table).time_column).cast(pl.Date)
    days = frame.select(col.unique().sort()).to_series()
    if days.len() < 3:
        return frame
    lost = days[int(rng.integers(1, days.len() - 1))]
    return frame.filter(col != lost)
