"""The sandbox a user's SQL runs in: their `query` and their column expressions from `[sources.*]`.

Settings are text anyone with write access to `nightshift.toml` controls, so the SQL in them runs in
a DuckDB connection that can read only the source's own declared files (or its database), and
nothing else: no other file, no `attach`, no `copy`, no extension installs, and the configuration
is locked so the query cannot undo it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa


@contextmanager
def sandbox(database: Path | None, readable: list[Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to `database` (read-only; in memory when None) that may read only `readable`."""
    con = duckdb.connect(str(database) if database else ":memory:", read_only=database is not None)
    try:
        # The list is bound as a parameter: file names never become SQL text.
        con.execute("set allowed_paths = $paths", {"paths": [str(p) for p in readable]})
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
        yield con
    finally:
        con.close()


def computed(con: duckdb.DuckDBPyConnection, raw: pa.Table, columns: dict[str, object],
             canonical: tuple[str, ...]) -> pa.Table:
    """`raw` with the canonical columns that the mapping computes: `our_name = "SQL expression"` over the
    user's columns, or `our_name = constant`. Their columns of the same names are replaced."""
    wanted = {ours: value for ours, value in columns.items() if ours in canonical}
    if not wanted:
        return raw
    select, params = [], {}
    for i, (ours, value) in enumerate(wanted.items()):
        if isinstance(value, str):
            select.append(f"({value}) as {ours}")  # the user's expression, run in the sandbox
        else:
            params[f"c{i}"] = value
            select.append(f"${'c' + str(i)} as {ours}")
    clash = [c for c in raw.column_names if c in wanted]
    rest = "* exclude (" + ", ".join(f'"{c}"' for c in clash) + ")" if clash else "*"
    if len(clash) == raw.num_columns:
        rest = ""
    con.register("source", raw)
    try:
        # The user's expressions from settings, run in the sandbox; our names come from the table registry.
        sql = "select " + ", ".join([*select, *([rest] if rest else [])]) + " from source"  # noqa: S608
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.unregister("source")
