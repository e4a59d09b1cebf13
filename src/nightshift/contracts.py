"""Data contracts: every row of a partition is either good or quarantined with the rule it broke.

The raw rows are typed (`staging_sql`, generated from the table's spec, casts the columns not sent as
their contract type) and their text normalised. The rules come from the table's declaration in
`nightshift.tables`: wrong types, nulls in required columns, enums, ranges, dates outside the
partition, duplicates (within the drop and against rows already loaded from other days) and
references to other tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import pyarrow as pa

from nightshift.settings import Settings
from nightshift.tables import Column, TableSpec, spec
from nightshift.warehouse import Warehouse


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


@dataclass(frozen=True)
class Rule:
    """A broken rule as people read it: its name (counted in the log) and the sentence formatted
    for each quarantined row (only for those: which rows break it is decided with booleans)."""

    name: str
    message: pl.Expr


def _present(raw: pl.Series) -> pl.Expr:
    """The source sent a value (not null, and not blank text)."""
    col = pl.col(raw.name)
    if raw.dtype in (pl.String, pl.Categorical):
        return col.is_not_null() & (col.str.strip_chars().str.len_bytes() > 0)
    return col.is_not_null()


def _raw_text(c: str) -> pl.Expr:
    return pl.col(f"_raw_{c}").cast(pl.String).str.strip_chars().replace("", None)


def _column_rules(t: TableSpec) -> list[tuple[pl.Expr, Rule]]:
    rules = []
    for c in t.columns:
        col, present = pl.col(c.name), pl.col(f"_present_{c.name}")
        rules.append((present & col.is_null(), Rule(f"wrong type in {c.name}", pl.format(
            "column {}: {} is not a valid {}", pl.lit(c.name), _raw_text(c.name), pl.lit(c.type)))))
        if c.required:  # no value sent: null, or blank text (a blank key is as missing as a null one)
            rules.append((~present,
                          Rule(f"null in required column {c.name}", pl.lit(f"column {c.name} is null but required"))))
        if c.enum:
            rules.append((col.is_not_null() & ~col.is_in(list(c.enum)), Rule(f"unknown value in {c.name}", pl.format(
                "column {}: {} is not one of {}", pl.lit(c.name), col, pl.lit(", ".join(c.enum))))))
        if c.type == "DOUBLE":
            rules.append(((col.is_nan() | col.is_infinite()).fill_null(False), Rule(
                f"not a finite number in {c.name}", pl.format("column {}: {} is not a finite number",
                                                              pl.lit(c.name), _raw_text(c.name)))))
        if c.min is not None:
            low = (col <= c.min) if c.min_exclusive else (col < c.min)
            bound = ("> " if c.min_exclusive else ">= ") + f"{c.min:g}"
            rules.append((low.fill_null(False), Rule(f"out of range in {c.name}",
                                                    pl.format("column {}: {} is not {}", pl.lit(c.name), col, pl.lit(bound)))))
        if c.max is not None:
            rules.append(((col > c.max).fill_null(False), Rule(f"out of range in {c.name}", pl.format(
                "column {}: {} is above {}", pl.lit(c.name), col, pl.lit(f"{c.max:g}")))))
    return rules


def _mark(frame: pl.DataFrame, rules: list[Rule], broken: pl.Expr, rule: Rule) -> pl.DataFrame:
    """Give rows that are still good and break `rule` its number (the first broken rule wins)."""
    rules.append(rule)
    hit = pl.col("_rule_no").is_null() & broken
    return frame.with_columns(pl.when(hit).then(pl.lit(len(rules) - 1, pl.Int16)).otherwise(pl.col("_rule_no"))
                              .alias("_rule_no"))


INTEGERS = ("BIGINT", "INTEGER")


# Arrow types that already are a contract type: a column sent as one needs no cast (casting every
# column in SQL was most of the cost of checking a typed Parquet drop).
_NATIVE = {
    "BIGINT": pa.types.is_int64,
    "INTEGER": pa.types.is_int32,
    "BOOLEAN": pa.types.is_boolean,
    "DOUBLE": pa.types.is_float64,
    "DATE": pa.types.is_date32,
    "TIMESTAMP": lambda a: pa.types.is_timestamp(a) and a.tz is None and a.unit == "us",
    "VARCHAR": lambda a: pa.types.is_string(a) or pa.types.is_large_string(a) or pa.types.is_string_view(a),
}


def _cast(c: Column) -> str:
    """One column's cast in the staging projection: a value that does not fit becomes null (and the
    contract quarantines the row as a wrong type).

    A whole-number column takes only whole numbers (DuckDB's cast would round 28.5 to 28 or 29); a
    timestamp with an offset (`...T01:00:00+05:00`) becomes UTC, one without stays as sent."""
    if c.type in INTEGERS:
        number = f"try_cast({c.name} as double)"
        return f"case when {number} = floor({number}) then try_cast({c.name} as {c.type.lower()}) end"
    if c.type == "TIMESTAMP":
        cast = f"try_cast(try_cast({c.name} as timestamptz) as timestamp)"
    else:
        cast = f"try_cast({c.name} as {c.type.lower()})"
    return f"date_trunc('{c.truncate}', {cast})" if c.truncate else cast


def _needs_cast(c: Column, sent: pa.DataType) -> bool:
    return not _NATIVE[c.type](sent) or c.truncate is not None


def staging_sql(t: TableSpec, types: pa.Schema) -> str | None:
    """The staging projection of the registered `raw` rows (whose Arrow schema is `types`): the columns
    not sent as their contract type, cast; None when every column already is."""
    # Identifiers and types come from the table registry, never from data or settings.
    cast = [f"{_cast(c)} as {c.name}" for c in t.columns if _needs_cast(c, types.field(c.name).type)]
    if not cast:
        return None
    return "select\n        _row,\n        " + ",\n        ".join(cast) + "\nfrom raw\norder by _row"  # noqa: S608


def _text(frame: pl.DataFrame, c: Column) -> pl.Series:
    """A text column normalised: trimmed of any whitespace (tabs, line breaks and no-break spaces too, as
    `_present` judges a blank), blank text null, enums lower case."""
    text = pl.col(c.name).str.strip_chars().replace("", None)
    if not c.enum:
        return frame.select(text).to_series()
    # An enum column holds few distinct values: each is normalised once, and the column is rewritten
    # only where one changes (lower-casing every row was most of the time of checking a clean drop).
    distinct = frame.select(pl.col(c.name).unique()).with_columns(text.str.to_lowercase().alias("_to"))
    changed = distinct.filter(pl.col(c.name).ne_missing(pl.col("_to")))
    if changed.is_empty():
        return frame.get_column(c.name)
    return frame.get_column(c.name).replace(changed.get_column(c.name), changed.get_column("_to"))


def _typed(t: TableSpec, raw: pa.Table, raw_pl: pl.DataFrame, warehouse: Warehouse) -> pl.DataFrame:
    """`_row` and the table's columns as their contract types: cast in SQL where sent otherwise, text normalised."""
    sql = staging_sql(t, raw.schema)
    frame = raw_pl.select("_row", *t.column_names)
    if sql is not None:
        cur = warehouse.cursor
        cur.register("raw", raw)
        try:
            cast = cur.sql(sql).pl()
        finally:
            cur.unregister("raw")
        frame = frame.with_columns(cast.drop("_row"))
    return frame.with_columns(_text(frame, c) for c in t.columns if c.type == "VARCHAR")


@dataclass(frozen=True)
class Plausible:
    """When a row's date is implausible: before `earliest` (a sentinel such as 1900-01-01), or more
    than `max_days_before_drop` days older than the drop that delivered it (a landing drop only)."""

    earliest: date = date(1901, 1, 1)
    max_days_before_drop: int | None = 366

    @classmethod
    def of(cls, settings: Settings, table: str) -> Plausible:
        """The settings' window for `table`. A user source splits rows by their own date, so "long
        before its drop" applies to landing drops only."""
        return cls(settings.earliest_date, None if table in settings.sources else settings.max_days_before_drop)


def check(table: str, raw: pa.Table, warehouse: Warehouse, plausible: Plausible = Plausible(),
          stored: Callable[[], object] | None = None) -> Checked:
    """Type, normalise and check rows of `table`; `raw` carries `_partition`, the drop each row came in.
    `stored` waits for rows still being written to the warehouse, before the rows are compared with it.

    Rules are decided on every row with boolean columns; the reason text and the raw values kept
    for people are built only for the rows that go to quarantine (usually few): formatting text
    for every row was most of the cost of a check.
    """
    t = spec(table)
    raw = raw.append_column("_row", pa.array(np.arange(raw.num_rows, dtype=np.int64)))
    raw_pl = pl.from_arrow(raw)
    assert isinstance(raw_pl, pl.DataFrame)
    typed = _typed(t, raw, raw_pl, warehouse)
    # Whether the source sent a value tells a wrong type (value sent, typed value null) from a null.
    # Text sent as text and kept as text is present where its normalised value is not null (the
    # same trim, done once).
    present = pl.concat([
        typed.select(pl.col(c.name).is_not_null()) if c.type == "VARCHAR" and raw_pl[c.name].dtype == pl.String
        else raw_pl.select(_present(raw_pl[c.name])) for c in t.columns
    ], how="horizontal").rename(lambda c: f"_present_{c}")
    frame = pl.concat([typed, present, raw_pl.select(pl.col("_partition").cast(pl.Date))], how="horizontal")
    checks = _column_rules(t)
    rules = [rule for _, rule in checks]
    rule_no = pl.lit(None, pl.Int16)
    for i, (broken, _) in reversed(list(enumerate(checks))):
        rule_no = pl.when(broken).then(pl.lit(i, pl.Int16)).otherwise(rule_no)
    frame = frame.with_columns(rule_no.alias("_rule_no")).drop([f"_present_{c}" for c in t.column_names])

    day_col = pl.col(t.time_column).cast(pl.Date)
    frame = _mark(frame, rules, (day_col > pl.col("_partition")).fill_null(False), Rule(
        "future timestamp",
        pl.format("{} {} is after the drop date {}", pl.lit(t.time_column), day_col, pl.col("_partition"))))
    frame = _implausible_dates(t, frame, rules, plausible)
    key = list(t.key)
    # Distinct key hashes first (cheap): as many as rows proves every key distinct; fewer (a repeat,
    # or rarely two keys with one hash) takes the exact check.
    if frame.select(pl.struct(key).hash().n_unique()).item() < frame.height:
        frame = _duplicates(t, frame, rules)  # an identical row is a repeated key too: else none
    if stored is not None:
        stored()
    frame = _against_warehouse(t, frame, rules, warehouse)
    good = frame.filter(pl.col("_rule_no").is_null()).select([*t.column_names, "_partition"])
    return Checked(good=good, bad=_quarantined(t, frame.filter(pl.col("_rule_no").is_not_null()), rules, raw_pl))


def _implausible_dates(t: TableSpec, frame: pl.DataFrame, rules: list[Rule], plausible: Plausible) -> pl.DataFrame:
    day_col = pl.col(t.time_column).cast(pl.Date)
    frame = _mark(frame, rules, (day_col < plausible.earliest).fill_null(False), Rule(
        "date before the earliest plausible date",
        pl.format("{} {} is before {} (set earliest_date in nightshift.toml if it is real)",
                  pl.lit(t.time_column), day_col, pl.lit(plausible.earliest.isoformat()))))
    if plausible.max_days_before_drop is None:
        return frame
    old = (pl.col("_partition") - day_col).dt.total_days() > plausible.max_days_before_drop
    return _mark(frame, rules, old.fill_null(False), Rule(
        "dated long before its drop",
        pl.format("{} {} is more than {} days before the drop date {} (max_days_before_drop)",
                  pl.lit(t.time_column), day_col, pl.lit(plausible.max_days_before_drop), pl.col("_partition"))))


def _duplicates(t: TableSpec, frame: pl.DataFrame, rules: list[Rule]) -> pl.DataFrame:
    """Duplicates in the batch: identical rows within a drop, then distinct rows sharing a key
    (within one drop, or across drops: the earliest drop wins). Drops come oldest first."""
    if not frame["_partition"].is_sorted():
        frame = frame.sort("_partition", "_row")
    ok = pl.col("_rule_no").is_null()
    frame = _mark(frame, rules, ok & ~pl.struct([*t.column_names, "_partition"]).is_first_distinct().over(ok),
                  Rule("duplicate row", pl.lit("an identical row appears earlier in the drop")))
    ok = pl.col("_rule_no").is_null()
    key = list(t.key)
    frame = frame.with_columns(pl.col("_partition").first().over([*key, ok]).alias("_first_partition"))
    not_first = ~pl.struct(key).is_first_distinct().over(ok)
    frame = _mark(frame, rules, ok & not_first & (pl.col("_first_partition") == pl.col("_partition")),
                  Rule("duplicate key",
                       pl.format("key ({}) appears more than once in the drop", pl.lit(", ".join(key)))))
    return _mark(frame, rules, pl.col("_rule_no").is_null() & not_first,
                 Rule("duplicate key across days",
                      pl.format("key already delivered in the drop of {}", pl.col("_first_partition"))))


def _quarantined(t: TableSpec, bad: pl.DataFrame, rules: list[Rule], raw: pl.DataFrame) -> pl.DataFrame:
    """The quarantined rows: drop, row number, reason and rule, and each value as the source sent it."""
    raw_bad = raw.select(pl.col(t.column_names).gather(bad["_row"]).name.prefix("_raw_"))
    bad = pl.concat([bad, raw_bad], how="horizontal")
    # Each rule's sentence on its own rows (a long when/then chain of string formats is slower and
    # trips a Polars bug), then back in drop and row order.
    parts = [
        rows.with_columns(rules[no].message.alias("_reason"), pl.lit(rules[no].name).alias("_rule"))
        for (no,), rows in bad.partition_by("_rule_no", as_dict=True).items()
    ]
    cols = ["_partition", "_row", "_reason", "_rule", *[_raw_text(c).alias(c) for c in t.column_names]]
    if not parts:
        return bad.with_columns(pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_rule")) \
            .select(cols)
    return pl.concat(parts).sort("_partition", "_row").select(cols)


def _against_warehouse(t: TableSpec, frame: pl.DataFrame, rules: list[Rule], warehouse: Warehouse) -> pl.DataFrame:
    """Quarantine keys already loaded from other drops, and references to rows that don't exist."""
    cur = warehouse.cursor
    key = list(t.key)
    candidates = frame.filter(pl.col("_rule_no").is_null()).select(["_row", "_partition", *key])
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
        frame = frame.join(clash.rename({"other": "_other_partition"}), on="_row", how="left")
        frame = _mark(frame, rules, pl.col("_other_partition").is_not_null(), Rule(
            "duplicate key across days",
            pl.format("key already loaded from the drop of {}", pl.col("_other_partition"))))
    for ref in t.references:
        pending = frame.filter(pl.col("_rule_no").is_null()).select("_row", "_partition", ref.column)
        cur.register("_refs", pending.to_arrow())
        try:
            missing = cur.sql(
                "select r._row from _refs r anti join " + ref.table + " t on r." + ref.column + " = t." + ref.target  # noqa: S608
                + " and t._partition <= r._partition"
            ).pl()
        finally:
            cur.unregister("_refs")
        if missing.height:
            frame = _mark(frame, rules, pl.col("_row").is_in(missing["_row"].implode()), Rule(
                f"unknown {ref.column}",
                pl.format("{} {} has no row in {}", pl.lit(ref.column), pl.col(ref.column), pl.lit(ref.table))))
    return frame
