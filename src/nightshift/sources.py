"""Where each table's rows come from: daily landing drops, or a user's own file, database or query.

A source yields *partitions*: (business day, rows as Arrow, a hash of the input, where it came
from). Column mapping onto canonical names happens here, so everything downstream sees only
canonical columns.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from nightshift.sandbox import computed, sandbox
from nightshift.settings import Settings, SourceSettings
from nightshift.tables import DAILY_TABLES as DAILY
from nightshift.tables import TABLES, spec

_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


class SourceError(ValueError):
    """A source can't be read as the table it claims to be; the message says what to do."""


@dataclass
class Partition:
    """One business day of one table, as read from its source."""

    table: str
    day: date
    origin: str  # file path(s) or query, for messages
    input_hash: str
    reader: object  # a callable returning the raw rows (pa.Table), read only when needed
    # Files of the drop that were not loaded, with why (unsupported, unreadable, missing columns);
    # filled when the drop is read, so the night page and the quarantine can list them.
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def read(self) -> pa.Table:
        return self.reader(self.rejected)  # type: ignore[operator]


READABLE = {".parquet", ".csv"}  # compared lower case: PART-0.PARQUET is a Parquet file


# Content hashes of drops already read by this process, by their files' path, size, modification time
# and inode: a file written anew gets a new modification time, so a backfill reads each unchanged drop
# once, not once a night (the hash is what tells a re-delivered drop from the one loaded).
_HASHED: dict[tuple[tuple[str, int, int, int], ...], str] = {}


def _hash_files(paths: list[str]) -> str:
    key = tuple((p, (st := os.stat(p)).st_size, st.st_mtime_ns, st.st_ino) for p in paths)
    if key in _HASHED:
        return _HASHED[key]
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.basename(p).encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    _HASHED[key] = h.hexdigest()[:16]
    return _HASHED[key]


def _drop_day(folder: Path) -> date | None:
    """The business day a `date=YYYY-MM-DD` folder holds, or None if its name is no real date."""
    return _day_of(folder.name)


def _day_of(name: str) -> date | None:
    m = _PARTITION.match(name)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:  # date=2026-02-30
        return None


# A year of drops per table is listed every night (twice): plain strings and `os.scandir`, not pathlib
# (three times faster at a few thousand folders).
def _drop_folders(folder: Path, until: date) -> list[tuple[date, str]]:
    """The `date=YYYY-MM-DD` folders of a landing zone with a real date up to `until`, oldest first."""
    with os.scandir(folder) as entries:
        found = [(day, e.path) for e in entries if (day := _day_of(e.name)) is not None and day <= until
                 and e.is_dir()]
    return sorted(found)


def _listing(folder: str, files_only: bool = False) -> list[str]:
    """The paths in `folder`, sorted; with `files_only` its files but not the hidden ones."""
    with os.scandir(folder) as entries:
        return sorted(e.path for e in entries if not files_only or (e.is_file() and not e.name.startswith(".")))


def invalid_drop_folders(settings: Settings, table: str) -> list[str]:
    """Folders in the table's landing zone that are not a `date=YYYY-MM-DD` of a real date (skipped)."""
    folder = settings.landing_dir / table
    if not folder.is_dir():
        return []
    return [f"table {table}: skipped the folder {sub}: its name is not date=YYYY-MM-DD with a real date; "
            "rename or remove it" for sub in sorted(folder.iterdir())
            if not sub.name.startswith(".") and _drop_day(sub) is None]


def landing_partitions(settings: Settings, table: str, until: date) -> Iterator[Partition]:
    """The landing drops `data/landing/<table>/date=D/` with D <= until, oldest first."""
    folder = settings.landing_dir / table
    if not folder.is_dir():
        return
    for day, sub in _drop_folders(folder, until):
        entries = _listing(sub, files_only=True)
        files = [p for p in entries if os.path.splitext(p)[1].lower() in READABLE]
        ignored = [(p, "not a CSV or Parquet file: ignored") for p in entries if p not in files]
        yield Partition(table, day, sub, _hash_files(entries), _file_reader(table, files, {}, ignored))


def _file_reader(table: str, files: list[Path] | list[str], mapping: dict[str, str] | None,
                 ignored: list[tuple[str, str]] = ()):
    """A reader of several files as one relation; a file that can't be read or mapped is rejected
    (with its reason) and the others load. Only when every file fails is the drop unreadable.
    With `mapping` None the files keep their own columns (the source's mapping comes after)."""
    def read(rejected: list[tuple[str, str]]) -> pa.Table:
        rejected[:] = list(ignored)
        frames = []
        for f in map(Path, files):
            try:
                frame = _read_one(table, f)
                frames.append(frame if mapping is None else _rename(table, frame, mapping, f))
            except SourceError as e:
                rejected.append((str(f), str(e)))
        if files and not frames:
            raise SourceError("; ".join(reason for _, reason in rejected))
        if not frames:
            return pa.table({c: pa.array([], pa.string()) for c in spec(table).column_names})
        return one_relation(frames)

    return read


def one_relation(frames: list[pa.Table]) -> pa.Table:
    """Files (or drops) with the same columns as one table; when their types differ (a CSV beside a
    Parquet file, an int beside a string), every column is compared as text and the contract types it."""
    if len({f.schema for f in frames}) > 1:
        frames = [as_text(f) for f in frames]
    return pa.concat_tables(frames, promote_options="permissive")


def as_text(frame: pa.Table) -> pa.Table:
    """Every column as text, `_partition` (the drop date) kept as a date."""
    return pa.table({n: c if n == "_partition" else pc.cast(c, pa.string()) for n, c in zip(
        frame.column_names, frame.columns, strict=True)})


def _utc(frame: pa.Table) -> pa.Table:
    """Time-zone-aware timestamps as UTC wall time (the stored instant), never the host's zone."""
    for i, f in enumerate(frame.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            frame = frame.set_column(i, f.name, pc.cast(frame.column(i), pa.timestamp(f.type.unit)))
    return frame


def _read_one(table: str, path: Path) -> pa.Table:
    csv = path.suffix.lower() == ".csv"
    try:
        if csv:
            # All text: types are the contract's job, so a bad value quarantines a row, not the file.
            opts = pa_csv.ConvertOptions(column_types={}, strings_can_be_null=True, auto_dict_encode=False)
            header = pa_csv.read_csv(path, convert_options=opts).schema.names
            opts = pa_csv.ConvertOptions(column_types={n: pa.string() for n in header}, strings_can_be_null=True)
            return pa_csv.read_csv(path, convert_options=opts)
        return _utc(_read_parquet(path))
    except (pa.ArrowException, OSError) as e:
        raise SourceError(
            f"table {table}: {path} is not a readable {'CSV' if csv else 'Parquet'} file "
            f"({str(e).splitlines()[0]}); re-deliver the file or remove it, then run the date again"
        ) from None


POLARS_FROM_BYTES = 256 * 1024  # Parquet files this big or bigger are read by Polars


def _read_parquet(path: Path) -> pa.Table:
    """A Parquet file as Arrow, its text as string views whichever reader read it (drops are checked
    together only when their columns' types match).

    Polars reads a big file in a third of pyarrow's time and hands it over without a copy (the contract
    check reads string views for free); on a small file its start-up costs more than it saves, so
    pyarrow reads those, and any file Polars cannot read (a type it lacks, or damage: pyarrow's error
    then names what is wrong)."""
    if os.path.getsize(path) >= POLARS_FROM_BYTES:
        try:
            return pl.read_parquet(path).to_arrow(compat_level=pl.CompatLevel.newest())
        except (pl.exceptions.PolarsError, OSError):
            pass
    table = pq.ParquetFile(path).read()
    return pa.Table.from_arrays(  # from arrays: a column name sent twice stays twice, for `_rename` to refuse
        [c.cast(pa.string_view()) if pa.types.is_string(c.type) or pa.types.is_large_string(c.type) else c
         for c in table.columns], names=table.column_names)


def _rename(table: str, raw: pa.Table, mapping: dict[str, str], origin: object) -> pa.Table:
    """Map `their_name -> our_name`, drop unknown columns, and insist on the required ones."""
    t = spec(table)
    theirs = raw.column_names
    names = [mapping.get(n, n) for n in theirs]
    twice = sorted({n for n in names if names.count(n) > 1 and n in t.column_names})
    if twice:
        raise SourceError(
            f"table {table}: {origin} has more than one column for {', '.join(twice)} "
            f"(it has: {', '.join(theirs)}); keep one, or map only one of them in [sources.{table}.columns]"
        )
    raw = raw.rename_columns(names)
    keep = [n for n in names if n in t.column_names]
    missing = [c for c in t.required_columns if c not in keep]
    if missing:
        raise SourceError(
            f"table {table}: {origin} has no column(s) {', '.join(missing)} "
            f"(it has: {', '.join(theirs)}); map them with "
            f"[sources.{table}.columns] their_name = \"our_name\" in nightshift.toml"
        )
    raw = raw.select(keep)
    for c in t.column_names:  # optional columns that the source does not have are null
        if c not in keep:
            raw = raw.append_column(c, pa.nulls(raw.num_rows, pa.string()))
    return raw.select(t.column_names)


def user_partitions(settings: Settings, table: str, until: date) -> Iterator[Partition]:
    """A user's own source for `table`, split into business days up to `until`."""
    src: SourceSettings = settings.sources[table]
    rejected: list[tuple[str, str]] = []
    raw = read_user_source(settings, table, src, rejected)
    t = spec(table)
    origin = src.query or src.table or src.path or ""
    days = (
        pl.from_arrow(raw.select([t.time_column]))
        .get_column(t.time_column)
        .cast(pl.String)
        .str.slice(0, 10)
        .str.to_date(strict=False)
    )
    frame = pl.from_arrow(raw).with_columns(days.alias("_day"))
    undated = frame.filter(pl.col("_day").is_null())
    if undated.height == frame.height and frame.height:
        raise SourceError(
            f"table {table}: no row of {origin} has a readable date in column {t.time_column!r} "
            f"(first: {undated.row(0)[:4]}); fix or map that column"
        )
    # A row without a readable date belongs to no day: it is delivered with the newest one, whose
    # contract check quarantines it (wrong type or null in the date column), so it is counted.
    newest = frame.filter(pl.col("_day") <= until)["_day"].max()
    if newest is not None:  # no row dated up to `until` (an empty source, or a run date before its first day)
        frame = frame.with_columns(pl.col("_day").fill_null(newest))
    days_rows = sorted(frame.filter(pl.col("_day") <= until).partition_by("_day", as_dict=True).items())
    for i, ((day,), part) in enumerate(days_rows):
        rows = part.drop("_day").to_arrow()
        digest = hashlib.sha256(pl.from_arrow(rows).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()[:16]
        # Files of the source that could not be read are reported once, with the newest day.
        yield Partition(table, day, str(origin), digest, (lambda _rejected, r=rows: r),
                        rejected=rejected if i == len(days_rows) - 1 else [])


def read_user_source(settings: Settings, table: str, src: SourceSettings,
                     rejected: list[tuple[str, str]] | None = None) -> pa.Table:
    """Read a user's CSV/Parquet glob, DuckDB table or query, mapped onto canonical columns; files
    of a glob that cannot be read are added to `rejected` (file, reason) and the others are used.

    A `query` (over the view `source` of the files, or over the database's tables) and the column
    expressions run in the sandbox: only the source's own files are readable. Files read for them
    are typed by DuckDB; files mapped by renames alone are read as text and typed by the contract."""
    path = settings.source_path(table)
    assert path is not None
    fmt = src.format or ("duckdb" if path.suffix.lower() in (".duckdb", ".db") else path.suffix.lstrip(".").lower())
    if fmt not in ("csv", "parquet", "duckdb"):
        raise SourceError(f"table {table}: can't tell the format of {path}; set sources.{table}.format")
    files, raw = [path], None
    computes = src.query or any(ours in spec(table).column_names for ours in src.columns)
    if fmt != "duckdb":
        files = _matches(settings, table, path)
        if not computes:  # read as text, each file on its own: the contract types and checks the values
            raw = _file_reader(table, files, None)([] if rejected is None else rejected)
    elif not path.exists():
        raise SourceError(f"table {table}: database {path} does not exist; check sources.{table}.path")
    elif not (src.query or src.table):
        raise SourceError(f"table {table}: a DuckDB source needs sources.{table}.table or .query")
    try:
        with sandbox(path if fmt == "duckdb" else None, files) as con:
            if fmt != "duckdb" and computes:  # typed by DuckDB, so a query or expression can do arithmetic
                read = con.read_csv if fmt == "csv" else con.read_parquet
                read([str(f) for f in files], union_by_name=True).create_view("source")
            if src.query:
                raw = con.sql(src.query).to_arrow_table()
            elif src.table:
                # The name was checked to be a plain identifier in settings; quote it anyway.
                raw = con.sql('select * from "' + src.table + '"').to_arrow_table()  # noqa: S608
            elif computes:
                raw = con.sql("select * from source").to_arrow_table()
            raw = computed(con, raw, src.columns, spec(table).column_names)
    except duckdb.Error as e:
        raise SourceError(f"table {table}: reading {path} failed: {str(e).splitlines()[0]} "
                          f"(check sources.{table}.query and .columns)") from None
    renames = {theirs: ours for theirs, ours in src.columns.items() if theirs not in spec(table).column_names}
    mapped = _rename(table, _utc(raw), renames, path)
    return _localize(table, mapped, src.timezone) if src.timezone else mapped


def _localize(table: str, raw: pa.Table, zone: str) -> pa.Table:
    """Timestamps sent without an offset, read as wall time in the source's declared zone, as UTC.
    A wall time that does not exist there (the hour skipped in spring) becomes null: quarantined."""
    frame = pl.from_arrow(raw)
    for c in spec(table).columns:
        if c.type != "TIMESTAMP":
            continue
        col = pl.col(c.name)
        text = frame.schema[c.name] == pl.String
        wall = col.str.to_datetime(strict=False, time_unit="us") if text else col.cast(pl.Datetime("us"))
        utc = (wall.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
               .dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        if text:  # a timestamp with its own offset is left for the staging cast, which honours it
            utc = pl.when(col.str.contains(r"(Z|[+-]\d\d:?\d\d)$")).then(col).otherwise(
                utc.dt.to_string("%Y-%m-%d %H:%M:%S%.f"))
        frame = frame.with_columns(utc.alias(c.name))
    return frame.to_arrow()


def _matches(settings: Settings, table: str, pattern: Path) -> list[Path]:
    """The files a source's glob matches, each resolved (symlinks followed) and confined."""
    files = [settings.confine(Path(p), f"sources.{table}.path match {p}") for p in sorted(glob.glob(str(pattern)))]
    if not files:
        raise SourceError(f"table {table}: no file matches {pattern}; check sources.{table}.path")
    return files


def partitions(settings: Settings, table: str, until: date) -> Iterator[Partition]:
    """Every partition of `table` up to `until`, from the user's source if set, else the landing zone."""
    if table in settings.sources:
        return user_partitions(settings, table, until)
    return landing_partitions(settings, table, until)


def latest_complete_date(settings: Settings, tables: list[str] | None = None) -> date | None:
    """The newest day for which every daily table (of `tables`) has data, from landing or its source."""
    newest = _newest_days(settings, tables)
    return None if not newest or None in newest.values() else min(newest.values())


def latest_drop(settings: Settings, tables: list[str] | None = None) -> date | None:
    """The newest day any daily table (of `tables`) has data for: a later run date has nothing to run on."""
    days = [d for d in _newest_days(settings, tables).values() if d is not None]
    return max(days) if days else None


def _newest_days(settings: Settings, tables: list[str] | None) -> dict[str, date | None]:
    """Per daily table, its newest day with data (None when it has none)."""
    newest: dict[str, date | None] = {}
    for table in sorted(DAILY if tables is None else DAILY & set(tables)):
        if table in settings.sources:
            days = [p.day for p in user_partitions(settings, table, date.max)]
        else:
            folder = settings.landing_dir / table
            days = [d for d, _ in _drop_folders(folder, date.max)] if folder.is_dir() else []
        newest[table] = max(days, default=None)
    return newest


def input_stamp(settings: Settings, until: date) -> str:
    """A cheap fingerprint (names, sizes, modification times) of every input up to `until`.

    Backfills compare it with the stamp of a date's last success to tell unchanged input from a
    re-delivery without reading any file.
    """
    h = hashlib.sha256()
    home = str(settings.home) + os.sep
    for table in sorted(TABLES):
        if table in settings.sources:
            path = settings.source_path(table)
            files = [str(f) for f in sorted(Path(p) for p in glob.glob(str(path)))] if path else []
        else:
            folder = settings.landing_dir / table
            files = [f for _, sub in _drop_folders(folder, until) for f in _listing(sub)] if folder.is_dir() else []
        for f in files:
            st = os.stat(f)
            h.update(f"{f.removeprefix(home)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
