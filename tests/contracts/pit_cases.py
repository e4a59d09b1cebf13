"""Point-in-time cases for every mart: parameters, warehouse copies and the rows that must not leak.

A mart's output for a run date D may depend only on rows that landed by D (`_partition <= D`) and are
dated no later than D. The test module builds, from one base warehouse, a copy with extra rows that
break exactly one of the two conditions and compares every mart's output for D. Everything here is
derived from `sql/marts/*.sql` and `nightshift.tables.TABLES`, so a new mart or table is covered
without a new case; a new `$parameter` or column type fails loudly instead of being skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from nightshift.tables import TABLES, TableSpec
from nightshift.warehouse import SQL_DIR, Warehouse

D = date(2026, 3, 1)  # the tiny demo's last day: the base warehouse holds no row landed after it

# One default per bound parameter, close to what the jobs pass (sales.HORIZON, loans.PENDING_DAYS,
# behavior_channels.AGG_DAYS, ...). A mart that binds a name missing here fails the suite on purpose.
PARAMS: dict[str, object] = {
    "run_date": D,
    "days": 28,
    "history_days": 120,
    "retire_days": 28,
    "horizon": 28,
    "pending_days": 30,
    "max_rows": 1_000_000,
}

# Marts that change state instead of reading it. Tables kept between nights are written by
# sql/state/ (the sales forecast history, through jobs/sales/history.py; the behavior event history,
# through jobs/behavior/event_history.py, which JobContext.sql brings to D first), so none is listed; the
# test checks that no mart writes, so a new writing mart gets attention (move it to sql/state/).
STATE_MARTS: tuple[str, ...] = ()
_WRITE = re.compile(r"^\s*(create|insert|delete|update|drop|alter|copy|attach)\b", re.IGNORECASE)
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")

# Rows dated after D that landed by D are only legitimate as plans within a forecast horizon
# (sales_future_promotions reads them); the pre-landed future rows are dated beyond every horizon.
FAR_FUTURE_DAYS = 61
LATE_SPREAD = 30  # late rows land on D+1 .. D+30
SAMPLE = 40  # rows per table and kind of sample (recent week, whole history)


def mart_names() -> list[str]:
    """Every SQL file under sql/marts, as `<job>/<name>` (`marts/<job>/<name>` for run_sql)."""
    marts = SQL_DIR / "marts"
    return sorted(p.relative_to(marts).with_suffix("").as_posix() for p in marts.rglob("*.sql"))


def strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def writes(name: str) -> bool:
    """Whether the mart's statement changes state (create/insert/delete ...) rather than reads."""
    return bool(_WRITE.match(strip_comments((SQL_DIR / "marts" / f"{name}.sql").read_text())))


def read_marts() -> list[str]:
    return [m for m in mart_names() if m not in STATE_MARTS]


def bound_params(name: str) -> dict[str, object]:
    """The `$name`s the mart binds (comments aside: DuckDB rejects unused parameters), with defaults."""
    names = sorted(set(_PARAM.findall(strip_comments((SQL_DIR / "marts" / f"{name}.sql").read_text()))))
    unknown = [p for p in names if p not in PARAMS]
    if unknown:
        raise LookupError(
            f"sql/marts/{name}.sql binds {', '.join('$' + p for p in unknown)}, which the point-in-time test "
            "does not know: add a default to PARAMS in tests/contracts/pit_cases.py"
        )
    return {p: PARAMS[p] for p in names}


def job_params(name: str) -> dict[str, object]:
    """The parameters as a job passes them through JobContext.sql (which binds run_date itself)."""
    return {k: v for k, v in bound_params(name).items() if k != "run_date"}


# -- warehouses ------------------------------------------------------------------------------------
def copy_warehouse(src: Warehouse, path: Path) -> Warehouse:
    """A new warehouse file with every canonical table of `src` (including `_partition`)."""
    dst = Warehouse(path, memory_limit="1GB")
    # One thread: the same rows in the same order give bit-identical float sums, so outputs compare exactly.
    dst.execute("set threads = 1")
    for table in TABLES:
        insert(dst, table, src.frame("select * from " + table))  # noqa: S608 (registry names)
    return dst


def insert(wh: Warehouse, table: str, rows: pl.DataFrame) -> None:
    """Append rows (canonical columns plus `_partition`) to a table, as a late drop would."""
    if rows.is_empty():
        return
    with wh.transaction() as cur:
        cur.register("_pit_rows", rows.to_arrow())
        try:
            cur.execute("insert into " + table + " by name select * from _pit_rows")  # noqa: S608
        finally:
            cur.unregister("_pit_rows")


def replace(wh: Warehouse, table: str, rows: pl.DataFrame) -> None:
    """Replace the rows with these keys by `rows` (what a correct on-time delivery would have held)."""
    key = TABLES[table].key
    on = " and ".join(f"{table}.{k} = _pit_rows.{k}" for k in key)
    with wh.transaction() as cur:
        cur.register("_pit_rows", rows.to_arrow())
        try:
            cur.execute("delete from " + table + " using _pit_rows where " + on)  # noqa: S608
            cur.execute("insert into " + table + " by name select * from _pit_rows")  # noqa: S608
        finally:
            cur.unregister("_pit_rows")


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """A deterministic row order: marts promise sets of rows, not an order among ties."""
    return frame.sort(frame.columns, nulls_last=True) if frame.columns else frame


# -- the rows that must not leak -----------------------------------------------------------------
def changed(t: TableSpec, rows: pl.DataFrame, step: int) -> pl.DataFrame:
    """Rows with every value column changed (keys and time kept): another version of the same rows."""
    exprs = []
    for c in t.columns:
        if c.name in t.key or c.name == t.time_column:
            continue
        col = pl.col(c.name)
        if c.type in ("BIGINT", "INTEGER"):
            exprs.append(col + step)
        elif c.type == "DOUBLE":
            exprs.append(col * (1 + 0.25 * step) + step)
        elif c.type == "BOOLEAN":
            exprs.append(~col if step % 2 else col)
        elif c.type == "VARCHAR" and c.enum:
            nxt = {v: c.enum[(i + step) % len(c.enum)] for i, v in enumerate(c.enum)}
            exprs.append(col.replace_strict(nxt, default=None))
        elif c.type == "VARCHAR":
            exprs.append(col + f"~v{step}")
        else:
            raise TypeError(f"{t.name}.{c.name}: no rule to change a {c.type} value; add one to changed()")
        exprs[-1] = exprs[-1].alias(c.name)
    return rows.with_columns(exprs) if exprs else rows


def new_keys(t: TableSpec, rows: pl.DataFrame, tag: str) -> pl.DataFrame:
    """The same rows under keys nobody delivered before (dated the same or, if the key is only a
    reference and the time column, one day earlier)."""
    refs = {r.column for r in t.references}
    free = [k for k in t.key if k != t.time_column and k not in refs]
    if not free:
        return rows.with_columns(pl.col(t.time_column) - timedelta(days=1))
    exprs = []
    for k in free:
        typ = t.column(k).type
        if typ == "VARCHAR":
            exprs.append(pl.col(k) + tag)
        elif typ in ("BIGINT", "INTEGER"):
            exprs.append(pl.col(k) + 10**9)
        else:
            raise TypeError(f"{t.name}.{k}: no rule for a new {typ} key; add one to new_keys()")
    return rows.with_columns(exprs)


def redated(t: TableSpec, rows: pl.DataFrame, first_day: date, tag: str) -> pl.DataFrame:
    """The rows moved to first_day, first_day+1, ... (time of day kept), under new keys unless the
    time column is part of the key."""
    offsets = pl.int_range(0, pl.len()) % LATE_SPREAD
    col = pl.col(t.time_column)
    if t.column(t.time_column).type == "TIMESTAMP":
        day = pl.lit(datetime.combine(first_day, datetime.min.time())) + pl.duration(days=offsets)
        moved = day + (col - col.dt.truncate("1d"))
    else:
        moved = pl.lit(first_day) + pl.duration(days=offsets)
    out = rows.with_columns(moved.cast(rows.schema[t.time_column]).alias(t.time_column))
    return out if t.time_column in t.key else new_keys(t, out, tag)


def sample(t: TableSpec, known: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Up to SAMPLE rows of the last week before D, SAMPLE from the whole history, and the last rows
    of the entities (a series, a meter: the key without its date) that stopped longest ago, where a
    row dated after D would bring a retired series back (no duplicates)."""
    day = pl.col(t.time_column).cast(pl.Date)
    recent = known.filter(day > D - timedelta(days=7))
    recent = recent.sample(min(SAMPLE, recent.height), seed=seed)
    rest = known.sample(min(SAMPLE, known.height), seed=seed + 1)
    entity = [k for k in t.key if k != t.time_column] or list(t.key)
    last = known.sort([*entity, t.time_column]).unique(entity, keep="last", maintain_order=True)
    stale = last.sort([t.time_column, *entity]).head(SAMPLE // 4)
    return pl.concat([recent, rest, stale]).unique(maintain_order=True)


def landing(rows: pl.DataFrame, partition: pl.Expr) -> pl.DataFrame:
    return rows.with_columns(partition.cast(pl.Date).alias("_partition"))


def late_by_index(first: date) -> pl.Expr:
    """first, first+1, ... first+LATE_SPREAD-1, by row: late rows land on many different nights."""
    return pl.lit(first) + pl.duration(days=pl.int_range(0, pl.len()) % LATE_SPREAD)


def extra_rows(base: Warehouse) -> dict[str, dict[str, pl.DataFrame]]:
    """Per table, the kinds of extra rows (canonical columns, no `_partition` yet):

    relanded_1/2: known rows again with other values (two later versions of the same keys),
    new: rows under new keys dated no later than D, future: rows dated D+1 ... D+30.
    """
    out = {}
    for i, (name, t) in enumerate(sorted(TABLES.items())):
        known = base.as_of(name, D)
        picked = sample(t, known, seed=100 + i)
        out[name] = {
            "relanded_1": changed(t, picked, 1),
            "relanded_2": changed(t, picked, 2),
            "new": changed(t, new_keys(t, picked, "~late"), 1),
            "future": changed(t, redated(t, picked, D + timedelta(days=1), "~future"), 1),
        }
    return out


def late_delivery(extra: dict[str, dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """What a warehouse may hold beyond D without changing any output for D: every kind of extra
    row landed after D, and rows dated far past D (beyond any horizon) landed on or before D."""
    out = {}
    for name, kinds in extra.items():
        t = TABLES[name]
        day = pl.col(t.time_column).cast(pl.Date)
        # same series and meters as known rows (a retired one comes back if the date filter is missing)
        far = redated(t, kinds["relanded_1"], D + timedelta(days=FAR_FUTURE_DAYS), "~planned")
        out[name] = pl.concat([
            landing(kinds["relanded_1"], late_by_index(D + timedelta(days=1))),
            landing(kinds["relanded_2"], late_by_index(D + timedelta(days=2))),
            landing(kinds["new"], late_by_index(D + timedelta(days=1))),
            landing(kinds["future"], day + pl.duration(days=pl.int_range(0, pl.len()) % 3)),  # landed on or after its date
            landing(far, pl.lit(D) - pl.duration(days=pl.int_range(0, pl.len()) % 5)),
        ], how="vertical_relaxed")
    return out


def on_time(base: Warehouse, wh: Warehouse, extra: dict[str, dict[str, pl.DataFrame]]) -> None:
    """The control: the same changes as if they had been delivered on time (so by D): known rows
    replaced in place, new rows landed on their own date, future rows planned (landed on D)."""
    for name, kinds in extra.items():
        t = TABLES[name]
        known = base.frame("select * from " + name)  # noqa: S608 (registry name)
        first = known.select([*t.key, "_partition"])
        replace(wh, name, kinds["relanded_1"].join(first, on=list(t.key), how="inner"))
        insert(wh, name, landing(kinds["new"], pl.col(t.time_column).cast(pl.Date)))
        insert(wh, name, landing(kinds["future"], pl.lit(D)))


# -- sales forecast history (a state table, no `_partition`: dated by its run_date) --------------
def forecasts(base: Warehouse, run_date: date, first_horizon: int = 1, days: int = 14) -> pl.DataFrame:
    """Synthetic forecasts made on `run_date` for `days` days from run_date + first_horizon, for every
    series it knew."""
    series = base.as_of("sales", run_date, ["store_id", "product_id"]).unique().sort(["store_id", "product_id"])
    horizons = list(range(first_horizon, first_horizon + days))
    grid = series.join(pl.DataFrame({"horizon": horizons}), how="cross")
    return grid.with_columns(
        pl.lit(run_date).alias("run_date"),
        (pl.lit(run_date) + pl.duration(days=pl.col("horizon"))).cast(pl.Date).alias("date"),
        pl.col("horizon").cast(pl.Int32),
        (2.0 + pl.col("horizon") % 3).alias("mean"),
        pl.lit(0.5).alias("lower_80"), pl.lit(5.0).alias("upper_80"),
        pl.lit(0.0).alias("lower_95"), pl.lit(8.0).alias("upper_95"),
        pl.lit(2.5).alias("naive"), pl.lit(1.5).alias("scale"), pl.lit("pit").alias("model"),
    )


def record_forecasts(wh: Warehouse, base: Warehouse, run_dates: list[date],
                     record: Callable[[Warehouse, date, pl.DataFrame], int], first_horizon: int = 1) -> None:
    for run_date in run_dates:
        record(wh, run_date, forecasts(base, run_date, first_horizon))
