"""Data contracts: every row of a partition is either good or quarantined with the rule it broke.

The staging SQL (`sql/staging/stg_<table>.sql`) types and normalises the raw rows; the rules
here come from the table's declaration in `nightshift.tables`: wrong types, nulls in required
columns, enums, ranges, dates outside the partition, duplicates (within the drop and against
rows already loaded from other days) and references to other tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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


def _column_rules(t: TableSpec, raw: pl.DataFrame) -> list[tuple[pl.Expr, pl.Expr, str]]:
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


def check(table: str, raw: pa.Table, day: date, warehouse: Warehouse) -> Checked:
    """Type, normalise and check one partition of `table` that landed on `day`."""
    t = spec(table)
    raw = raw.append_column("_row", pa.array(range(raw.num_rows), pa.int64()))
    cur = warehouse.cursor
    cur.register("raw", raw)
    try:
        typed = cur.execute(sql_text(f"staging/stg_{table}")).pl()
    finally:
        cur.unregister("raw")
    raw_pl = pl.from_arrow(raw)
    assert isinstance(raw_pl, pl.DataFrame)
    # Keep each raw value as text: it shows a bad value in the quarantine and tells a wrong type
    # (text present, typed value null) from a real null.
    raw_text = raw_pl.select(
        [pl.col(c).cast(pl.String).str.strip_chars().replace("", None).alias(f"_raw_{c}") for c in t.column_names]
    )
    frame = pl.concat([typed, raw_text], how="horizontal")

    day_col = pl.col(t.time_column).cast(pl.Date)
    rules = _column_rules(t, raw_pl)
    rules.append(((day_col > day).fill_null(False),
                  pl.format("{} {} is after the drop date {}", pl.lit(t.time_column), day_col, pl.lit(str(day))),
                  "future timestamp"))
    reason, rule = _first_reason(rules)
    frame = frame.with_columns(reason.alias("_reason"), rule.alias("_rule"))

    # Duplicates within the drop: identical rows, then distinct rows sharing a key.
    key = list(t.key)
    frame = frame.with_columns(
        pl.when(pl.col("_reason").is_null() & pl.struct(t.column_names).is_first_distinct().not_())
        .then(pl.lit("duplicate row"))
        .otherwise(pl.col("_rule"))
        .alias("_rule")
    ).with_columns(pl.when(pl.col("_rule") == "duplicate row").then(pl.lit("an identical row appears earlier in the drop"))
                   .otherwise(pl.col("_reason")).alias("_reason"))
    ok = pl.col("_reason").is_null()
    first_key = pl.struct(key).is_first_distinct().over(ok)
    frame = frame.with_columns(
        pl.when(ok & ~first_key).then(pl.lit("duplicate key")).otherwise(pl.col("_rule")).alias("_rule"),
        pl.when(ok & ~first_key)
        .then(pl.format("key ({}) appears more than once in the drop", pl.lit(", ".join(key))))
        .otherwise(pl.col("_reason"))
        .alias("_reason"),
    )
    frame = _against_warehouse(t, frame, day, warehouse)
    good = frame.filter(pl.col("_reason").is_null()).select(t.column_names)
    bad = frame.filter(pl.col("_reason").is_not_null()).select(
        ["_row", "_reason", "_rule"] + [f"_raw_{c}" for c in t.column_names]
    ).rename({f"_raw_{c}": c for c in t.column_names})
    return Checked(good=good, bad=bad)


def _against_warehouse(t: TableSpec, frame: pl.DataFrame, day: date, warehouse: Warehouse) -> pl.DataFrame:
    """Quarantine keys already loaded from another day, and references to rows that don't exist."""
    cur = warehouse.cursor
    candidates = frame.filter(pl.col("_reason").is_null())
    if candidates.height == 0:
        return frame
    key = list(t.key)
    cur.register("_cand", candidates.select(["_row", *key]).to_arrow())
    try:
        on = " and ".join(f"w.{k} = c.{k}" for k in key)
        clash = cur.execute(
            "select c._row, min(w._partition) as other from _cand c join " + t.name + " w on " + on
            + " where w._partition <> $d group by c._row",
            {"d": day},
        ).pl()
    finally:
        cur.unregister("_cand")
    if clash.height:
        frame = frame.join(clash, on="_row", how="left").with_columns(
            pl.when(pl.col("other").is_not_null())
            .then(pl.format("key already loaded from the drop of {}", pl.col("other")))
            .otherwise(pl.col("_reason")).alias("_reason"),
            pl.when(pl.col("other").is_not_null()).then(pl.lit("duplicate key across days"))
            .otherwise(pl.col("_rule")).alias("_rule"),
        ).drop("other")
    for ref in t.references:
        pending = frame.filter(pl.col("_reason").is_null()).select("_row", ref.column)
        cur.register("_refs", pending.to_arrow())
        try:
            missing = cur.execute(
                "select r._row from _refs r anti join (select distinct " + ref.target + " as k from " + ref.table
                + " where _partition <= $d) t on r." + ref.column + " = t.k",
                {"d": day},
            ).pl()
        finally:
            cur.unregister("_refs")
        if missing.height:
            lost = pl.col("_row").is_in(missing["_row"].implode())
            frame = frame.with_columns(
                pl.when(lost).then(pl.format("{} {} has no row in {}", pl.lit(ref.column), pl.col(ref.column),
                                             pl.lit(ref.table))).otherwise(pl.col("_reason")).alias("_reason"),
                pl.when(lost).then(pl.lit(f"unknown {ref.column}")).otherwise(pl.col("_rule")).alias("_rule"),
            )
    return frame


__all__ = ["Checked", "check", "sql_text"]
