"""Post-processing: noisy integer vectors → the released table (values, 95% MoE, suppression notes).

Everything here works on noisy values only, so it costs no privacy: clamping negative counts to 0,
clamping sums and means into what their declared bounds allow, and suppressing a mean whose noisy
count is not clearly above the count's own noise.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from nightshift.privacy.bounding import CELL
from nightshift.privacy.noise import margin_of_error
from nightshift.privacy.spec import Count, Mean, Query, Release, Sum, int_bounds, sum_key

# A mean is shown only when its noisy count exceeds this many count margins of error: below that,
# noise in the denominator dominates and the ratio is not worth publishing.
MEAN_MIN_COUNT_FACTOR = 2.0


def build_table(release: Release, grid: pl.DataFrame, noisy: dict[str, list[int]],
                queries: dict[str, Query]) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The released table (key columns, measures, `<measure>_moe`, `<mean>_note`) and what was suppressed."""
    moe = {k: margin_of_error(q.scale) for k, q in queries.items()}
    frame = grid.with_columns(pl.Series(f"_q{i}", noisy[k], dtype=pl.Int64) for i, k in enumerate(queries))
    qcol = {k: pl.col(f"_q{i}") for i, k in enumerate(queries)}
    exprs: list[pl.Expr] = []
    for m in release.measures:
        if isinstance(m, Count):
            key = "units" if m.distinct else "rows"
            exprs += [qcol[key].clip(lower_bound=0).alias(m.name), pl.lit(moe[key], pl.Int64).alias(f"{m.name}_moe")]
        elif isinstance(m, Sum):
            exprs += [_sum_expr(m, qcol[sum_key(m)]).alias(m.name),
                      _lit(_scaled(moe[sum_key(m)], m)).alias(f"{m.name}_moe")]
        else:
            exprs += _mean_exprs(m, qcol[sum_key(m)], qcol["rows"], _scaled(moe[sum_key(m)], m), moe["rows"])
    keys = [c for c in grid.columns if c != CELL]
    table = frame.select(*keys, *exprs)
    return table, _suppressed(release, table, keys)


def _lit(v: float | int) -> pl.Expr:
    return pl.lit(v, dtype=pl.Int64 if isinstance(v, int) else pl.Float64)


def _scaled(v: int, m: Sum | Mean) -> float | int:
    return v if m.resolution == 1 else float(v * m.resolution)


def _sum_expr(m: Sum | Mean, q: pl.Expr) -> pl.Expr:
    lo, hi = int_bounds(m)
    # Clipped values in [lo, hi] can only sum to >= 0 when lo >= 0 (and <= 0 when hi <= 0).
    q = q.clip(lower_bound=0) if lo >= 0 else q
    q = q.clip(upper_bound=0) if hi <= 0 else q
    return q if m.resolution == 1 else q.cast(pl.Float64) * m.resolution


def _mean_exprs(m: Mean, qsum: pl.Expr, qrows: pl.Expr, moe_sum: float, moe_rows: int) -> list[pl.Expr]:
    count = qrows.clip(lower_bound=0).cast(pl.Float64)
    total = qsum.cast(pl.Float64) * m.resolution
    threshold = MEAN_MIN_COUNT_FACTOR * moe_rows
    shown = count > threshold
    mean = (total / count).clip(m.lower, m.upper)
    # First-order error of a ratio: (MoE_sum + |mean|·MoE_count) / count, never wider than the bounds.
    err = ((moe_sum + mean.abs() * moe_rows) / count).clip(upper_bound=float(m.upper - m.lower))
    note = pl.format(
        "suppressed: noisy count {} is not clearly above its noise (needs > {})",
        count.cast(pl.Int64), pl.lit(f"{threshold:g}"),
    )
    return [
        pl.when(shown).then(mean).otherwise(None).alias(m.name),
        pl.when(shown).then(err).otherwise(None).alias(f"{m.name}_moe"),
        pl.when(shown).then(None).otherwise(note).cast(pl.String).alias(f"{m.name}_note"),
    ]


def _suppressed(release: Release, table: pl.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in release.measures:
        if not isinstance(m, Mean):
            continue
        rows = table.filter(pl.col(f"{m.name}_note").is_not_null()).select(*keys, f"{m.name}_note")
        for r in rows.iter_rows(named=True):  # suppressed cells of a declared grid: a few rows
            where = ", ".join(f"{k}={r[k]}" for k in keys) or "all"
            out.append({"release": release.name, "measure": m.name, "cell": where, "reason": r[f"{m.name}_note"]})
    return out
