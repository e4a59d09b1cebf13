"""Data contracts: every row of a partition is either good or quarantined with the rule it broke.

The staging SQL (`sql/staging/stg_<table>.sql`) types and normalises the raw rows; the rules
here come from the table's declaration in `nightshift.tables`: wrong types, nulls in required
columns, enums, ranges, dates outside the partition, duplicates (within the drop and against
rows already loaded from other days) and references to other tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from nightshift.tables import TableSpec, spec
from nightshift.warehouse import Warehouse, sql_text


@dataclass
class Checked:
    """The outcome of checking one partition: rows to load, rows to quarantine (with `_reason`)."""

    good: pl.DataFrame
    bad: pl.DataFrame

    @property
    def reasons(self) -> dict[str, int]:
        """How many rows broke each rule (the rule text without the row's value)."""
        if self.bad.height == 0:
            return {}
        counts = self.bad.group_by(pl.col("_rule")).len().sort("len", descending=True)
        return dict(zip(counts["_rule"].to_list(), counts["len"].to_list(), strict=True))


def _first_reason(rules: list[tuple[pl.Expr, pl.Expr, str]]) -> tuple[pl.Expr, pl.Expr]:
    """Fold (broken?, message, rule) checks into the first broken message and rule per row."""
    reason = pl.lit(None, pl.String)
    rule = pl.lit(None, pl.String)
    for broken, message, name in reversed(rules):
        reason = pl.when(broken).then(message).otherwise(reason)
        rule = pl.when(broken).then(pl.lit(name)).otherwise(rule)
    return reason, rule


def _column_rules(t: TableSpec) -> list[tuple[pl.Expr, pl.Expr, str]]:
    rules = []
    for c in t.columns:
        col = pl.col(c.name)
        raw_text = pl.col(f"_raw_{c.name}")
        rules.append((
            raw_text.is_not_null() & col.is_null(),
            pl.format("column {}: {} is not a valid {}", pl.lit(c.name), raw_text, pl.lit(c.type)),
            f"wrong type in {c.name}",
        ))
        if c.required:
            rules.append((col.is_null() & raw_text.is_null(), pl.lit(f"column {c.name} is null but required"),
                          f"null in required column {c.name}"))
        if c.enum:
            rules.append((col.is_not_null() & ~col.is_in(list(c.enum)),
                          pl.format("column {}: {} is not one of {}", pl.lit(c.name), col, pl.lit(", ".join(c.enum))),
                          f"unknown value in {c.name}"))
        if c.min is not None:
            low = (col <= c.min) if c.min_exclusive else (col < c.min)
            bound = ("> " if c.min_exclusive else ">= ") + f"{c.min:g}"
            rules.append((low.fill_null(False), pl.format("column {}: {} is not {}", pl.lit(c.name), col, pl.lit(bound)),
                          f"out of range in {c.name}"))
        if c.max is not None:
            rules.append(((col > c.max).fill_null(False),
                          pl.format("column {}: {} is above {}", pl.lit(c.name), col, pl.lit(f"{c.max:g}")),
                          f"out of range in {c.name}"))
    return rules


def _mark(frame: pl.DataFrame, broken: pl.Expr, message: pl.Expr, rule: str) -> pl.DataFrame:
    """Give rows that are still good and break this rule their first reason."""
    hit = pl.col("_reason").is_null() & broken
    return frame.with_columns(
        pl.when(hit).then(message).otherwise(pl.col("_reason")).alias("_reason"),
        pl.when(hit).then(pl.lit(rule)).otherwise(pl.col("_rule")).alias("_rule"),
    )


def check(table: str, raw: pa.Table, warehouse: Warehouse) -> Checked:
    """Type, normalise and check rows of `table`; `raw` carries `_partition`, the drop each row came in."""
    t = spec(table)
    raw = raw.append_column("_row", pa.array(range(raw.num_rows), pa.int64()))
    cur = warehouse.cursor
    cur.register("raw", raw)
    try:
        typed = cur.sql(sql_text(f"staging/stg_{table}")).pl()
    finally:
        cur.unregister("raw")
    raw_pl = pl.from_arrow(raw)
    assert isinstance(raw_pl, pl.DataFrame)
    # Keep each raw value as text: it shows a bad value in the quarantine and tells a wrong type
    # (text present, typed value null) from a real null.
    raw_text = raw_pl.select(
        [pl.col(c).cast(pl.String).str.strip_chars().replace("", None).alias(f"_raw_{c}") for c in t.column_names]
        + [pl.col("_partition").cast(pl.Date)]
    )
    frame = pl.concat([typed, raw_text], how="horizontal")
    reason, rule = _first_reason(_column_rules(t))
    frame = frame.with_columns(reason.alias("_reason"), rule.alias("_rule"))

    day_col = pl.col(t.time_column).cast(pl.Date)
    frame = _mark(frame, (day_col > pl.col("_partition")).fill_null(False),
                  pl.format("{} {} is after the drop date {}", pl.lit(t.time_column), day_col, pl.col("_partition")),
                  "future timestamp")
    # Duplicates in the batch: identical rows within a drop, then distinct rows sharing a key
    # (within one drop, or across drops: the earliest drop wins).
    frame = frame.sort("_partition", "_row")
    ok = pl.col("_reason").is_null()
    frame = _mark(frame, ok & ~pl.struct([*t.column_names, "_partition"]).is_first_distinct().over(ok),
                  pl.lit("an identical row appears earlier in the drop"), "duplicate row")
    ok = pl.col("_reason").is_null()
    key = list(t.key)
    first_part = pl.col("_partition").first().over([*key, ok])
    not_first = ~pl.struct(key).is_first_distinct().over(ok)
    frame = _mark(frame, ok & not_first & (first_part == pl.col("_partition")),
                  pl.format("key ({}) appears more than once in the drop", pl.lit(", ".join(key))), "duplicate key")
    frame = _mark(frame, pl.col("_reason").is_null() & not_first,
                  pl.format("key already delivered in the drop of {}", first_part), "duplicate key across days")
    frame = _against_warehouse(t, frame, warehouse)
    good = frame.filter(pl.col("_reason").is_null()).select([*t.column_names, "_partition"])
    bad = frame.filter(pl.col("_reason").is_not_null()).select(
        ["_partition", "_row", "_reason", "_rule"] + [f"_raw_{c}" for c in t.column_names]
    ).rename({f"_raw_{c}": c for c in t.column_names})
    return Checked(good=good, bad=bad)


def _against_warehouse(t: TableSpec, frame: pl.DataFrame, warehouse: Warehouse) -> pl.DataFrame:
    """Quarantine keys already loaded from other drops, and references to rows that don't exist."""
    cur = warehouse.cursor
    key = list(t.key)
    candidates = frame.filter(pl.col("_reason").is_null()).select(["_row", "_partition", *key])
    if candidates.height == 0:
        return frame
    cur.register("_cand", candidates.to_arrow())
    # Table and column names come from the table registry, never from data or settings.
    try:
        on = " and ".join(f"w.{k} = c.{k}" for k in key)
        clash = cur.sql(
            "select c._row, min(w._partition) as other from _cand c join " + t.name + " w on " + on  # noqa: S608
            + " where w._partition not in (select distinct _partition from _cand) group by c._row"
        ).pl()
    finally:
        cur.unregister("_cand")
    if clash.height:
        frame = frame.join(clash, on="_row", how="left")
        frame = _mark(frame, pl.col("other").is_not_null(),
                      pl.format("key already loaded from the drop of {}", pl.col("other")),
                      "duplicate key across days").drop("other")
    for ref in t.references:
        pending = frame.filter(pl.col("_reason").is_null()).select("_row", "_partition", ref.column)
        cur.register("_refs", pending.to_arrow())
        try:
            missing = cur.sql(
                "select r._row from _refs r anti join " + ref.table + " t on r." + ref.column + " = t." + ref.target  # noqa: S608
                + " and t._partition <= r._partition"
            ).pl()
        finally:
            cur.unregister("_refs")
        if missing.height:
            frame = _mark(frame, pl.col("_row").is_in(missing["_row"].implode()),
                          pl.format("{} {} has no row in {}", pl.lit(ref.column), pl.col(ref.column), pl.lit(ref.table)),
                          f"unknown {ref.column}")
    return frame
