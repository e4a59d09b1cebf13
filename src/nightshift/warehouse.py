"""The embedded DuckDB warehouse: one connection, named SQL files, point-in-time reads, atomic loads."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from nightshift.tables import TABLES, TableSpec, spec

if TYPE_CHECKING:
    from nightshift.settings import Settings



def _sql_dir() -> Path:
    """The SQL files: packaged inside `nightshift` in an installed wheel, else the checkout's `sql/`."""
    packaged = Path(str(resources.files("nightshift") / "sql"))
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "sql"


SQL_DIR = _sql_dir()
_SQL_NAME = re.compile(r"[a-z0-9_]+(/[a-z0-9_]+)*")  # folder/name (the whole name): never a path outside sql/


log = logging.getLogger(__name__)
_SETUP_LOCK = threading.Lock()


def asof_macros(t: TableSpec) -> list[str]:
    """The point-in-time table macros of one table, the one place SQL says "as of D".

    `<table>_known(run_date)`: the rows landed by the end of `run_date` (any date: planned
    promotions are future-dated). `<table>_asof(run_date)`: of those, the rows dated no later than
    `run_date` — what a run for `run_date` may see. Marts read `from <table>_asof($run_date)`.
    Contracts load a key from one drop only; marts that accept restated rows pick the newest
    version themselves (`qualify ... order by _partition desc`).
    """
    upper = "run_date::date + interval 1 day" if t.column(t.time_column).type == "TIMESTAMP" else "run_date::date + 1"
    # Identifiers from the table registry; run_date is the macro's parameter, bound by the caller.
    return [
        f"create or replace macro {t.name}_known(run_date) as table "  # noqa: S608
        f"select * from {t.name} where _partition <= run_date",
        f"create or replace macro {t.name}_asof(run_date) as table "  # noqa: S608
        f"select * from {t.name}_known(run_date) where {t.time_column} < {upper}",
    ]


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse; the message says which file and what to do."""


class WarehouseBroken(RuntimeError):
    """The warehouse file is not a database (truncated, emptied, overwritten); the message says the fix."""


def sql_text(name: str) -> str:
    """The text of `sql/<name>.sql` (for example `marts/sales/series`)."""
    if not _SQL_NAME.fullmatch(name):
        raise ValueError(f"not a SQL file name: {name!r}")
    path = SQL_DIR / f"{name}.sql"
    if not path.exists():
        raise FileNotFoundError(f"no SQL file {path}")
    return path.read_text()


class Warehouse:
    """A DuckDB file with the canonical tables (plus `_partition`, the landing date of each row)."""

    def __init__(self, path: Path, *, read_only: bool = False, wait_s: float = 30.0, memory_limit: str = "4GB"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        announced = False
        while True:
            try:
                self.con = duckdb.connect(str(self.path), read_only=read_only, config={"memory_limit": memory_limit})
                break
            except duckdb.IOException as e:  # the file lock of another process (DuckDB names its PID)
                holder = str(e).splitlines()[0]
                if "lock" not in holder.lower():
                    raise WarehouseBroken(
                        f"the warehouse {self.path} cannot be opened ({holder}); rebuild it from the landing "
                        "zone and your sources with `nightshift repair warehouse` (the privacy ledger and the "
                        "models are kept)") from None
                if time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"the warehouse {self.path} is in use by another nightshift process ({holder}); "
                        "wait for it to finish or stop it"
                    ) from None
                if not announced:  # a queued writer says whom it waits for, once
                    log.warning("waiting up to %.0f s for the warehouse %s: %s", wait_s, self.path, holder)
                    announced = True
                time.sleep(0.5)
        self._local = threading.local()
        self.write_lock = threading.RLock()  # one writer at a time inside this process
        if not read_only:
            with _SETUP_LOCK:  # jobs open the warehouse from parallel threads; DDL must not race
                self._create_tables()

    @classmethod
    def open(cls, settings: Settings, **kw: Any) -> Warehouse:
        """The warehouse of these settings, with their memory cap."""
        return cls(settings.warehouse_path, memory_limit=settings.warehouse_memory_limit, **kw)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread: DuckDB connections are not shared across threads."""
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self.con.cursor()
        return cur

    def _create_tables(self) -> None:
        for t in TABLES.values():
            cols = ", ".join(f"{c.name} {c.type}" for c in t.columns)
            # DDL from the table registry: identifiers and types, nothing from data or settings.
            self.con.execute("create table if not exists " + t.name + " (" + cols + ", _partition DATE not null)")
            for macro in asof_macros(t):
                self.con.execute(macro)
        self.con.execute(sql_text("staging/ingest_log"))
        for macro in sorted((SQL_DIR / "macros").glob("*.sql")):  # shared SQL macros, kept current
            self.con.execute(macro.read_text())

    # -- reading -----------------------------------------------------------------------------------
    def run_sql(self, name: str, **params: Any) -> pl.DataFrame:
        """Run `sql/<name>.sql` with bound `$params` and return the result as Polars (via Arrow)."""
        return self.frame(sql_text(name), params)

    def frame(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """Run a query with bound parameters on this thread's cursor; the result as Polars (via Arrow)."""
        return self.cursor.sql(sql, params=params or None).pl()

    def execute(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Execute a statement with bound parameters on this thread's cursor."""
        return self.cursor.execute(sql, params or {})

    def as_of(self, table: str, run_date: date, columns: list[str] | None = None) -> pl.DataFrame:
        """Rows of `table` known by the end of `run_date`: landed by then and dated no later."""
        t = spec(table)
        cols = columns or t.column_names
        for c in cols:
            t.column(c)  # raises for an unknown column
        # Identifiers come from the table registry (checked above); the date is bound.
        return self.frame("select " + ", ".join(cols) + " from " + t.name + "_asof($d)", {"d": run_date})  # noqa: S608

    # -- writing -----------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A transaction on this thread's cursor, serialised with other writers in this process."""
        with self.write_lock:
            cur = self.cursor
            cur.execute("begin transaction")
            try:
                yield cur
            except BaseException:
                cur.execute("rollback")
                raise
            cur.execute("commit")
