"""`nightshift sources check`: what each table would load, without running a night (like `dbt debug`
and `dbt source freshness` for dbt users): where its rows come from, the mapping, rows per recent
date, and the first rows that break the contract, with why."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nightshift.settings import Settings

app = typer.Typer(help="Check the configured sources without running a night.", no_args_is_help=True)
console = Console()


@app.command()
def check(
    tables: Annotated[list[str] | None, typer.Argument(help="Tables to check (default: every table)")] = None,
    days: Annotated[int, typer.Option(help="How many of the newest dates to count and check")] = 7,
    failures: Annotated[int, typer.Option(help="How many contract failures to show per table")] = 5,
) -> None:
    """For each table: the resolved files or query, the mapping, rows per recent date, first failures."""
    from nightshift.cli_args import read_settings
    from nightshift.tables import TABLES

    settings = read_settings()
    names = tables or list(TABLES)
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        console.print(f"[red]unknown table(s): {', '.join(unknown)}; known: {', '.join(TABLES)}[/red]")
        raise typer.Exit(2)
    broken = 0
    with _warehouse(settings) as warehouse:
        for table in names:
            broken += not _check_table(settings, warehouse, table, days, failures)
    raise typer.Exit(1 if broken else 0)


def _check_table(settings: Settings, warehouse, table: str, days: int, failures: int) -> bool:
    """Print one table's report; False when it cannot be read at all."""
    from nightshift.sources import SourceError, invalid_drop_folders, partitions

    console.rule(f"[bold]{table}[/bold]")
    console.print(escape(_where(settings, table)))
    try:
        parts = list(partitions(settings, table, date.max))
    except (SourceError, OSError) as e:
        console.print(f"[red]cannot be read:[/red] {escape(str(e))}")
        return False
    for problem in invalid_drop_folders(settings, table) if table not in settings.sources else []:
        console.print(f"[yellow]{escape(problem)}[/yellow]")
    if not parts:
        console.print("[yellow]no data yet[/yellow]")
        return True
    console.print(f"{len(parts)} date(s): {parts[0].day} … {parts[-1].day}")
    _recent(settings, warehouse, table, parts[-days:], failures)
    return True


def _where(settings: Settings, table: str) -> str:
    src = settings.sources.get(table)
    if src is None:
        return f"source: landing drops under {settings.landing_dir / table}/date=YYYY-MM-DD/"
    lines = [f"source: {settings.source_path(table)}" + (f" (table {src.table})" if src.table else "")]
    if src.query:
        lines.append(f"query: {src.query}")
    lines += [f"  {key} = {value!r}" for key, value in src.columns.items()]
    return "\n".join(lines)


def _recent(settings: Settings, warehouse, table: str, parts: list, failures: int) -> None:
    """Rows read, loadable and quarantined per recent date, and the first quarantined rows."""
    import pyarrow as pa

    from nightshift import contracts
    from nightshift.sources import SourceError

    counts = Table("date", "rows read", "would load", "would quarantine", "files not read")
    bad_rows = []
    for part in parts:
        try:
            raw = part.read()
        except SourceError as e:
            counts.add_row(str(part.day), "-", "-", "-", escape(str(e)))
            continue
        raw = raw.append_column("_partition", pa.array([part.day] * raw.num_rows, pa.date32()))
        checked = contracts.check(table, raw, warehouse, contracts.Plausible.of(settings, table))
        counts.add_row(str(part.day), f"{raw.num_rows:,}", f"{checked.good.height:,}", f"{checked.bad.height:,}",
                       escape("; ".join(f"{Path(f).name}: {r}" for f, r in part.rejected)))
        bad_rows += checked.bad.head(failures).select("_partition", "_reason").rows()
    console.print(counts)
    for day, reason in bad_rows[:failures]:
        console.print(f"  [yellow]{day}[/yellow] {escape(reason)}")


@contextmanager
def _warehouse(settings: Settings) -> Iterator[object]:
    """The warehouse to check against, never written: the real one opened read-only (duplicates and
    references are judged against what is loaded), else an empty scratch one."""
    from nightshift.warehouse import Warehouse, WarehouseBusy

    loaded = None
    if settings.warehouse_path.exists():
        try:
            loaded = Warehouse(settings.warehouse_path, read_only=True, wait_s=0)
        except WarehouseBusy:
            console.print("[yellow]the warehouse is in use by a night: checking against an empty one[/yellow]")
    else:
        console.print("[yellow]nothing loaded yet: references to other tables (outcomes → loans) are judged "
                      "against an empty warehouse[/yellow]")
    if loaded is not None:
        with loaded:
            yield loaded
        return
    with tempfile.TemporaryDirectory() as tmp, Warehouse(Path(tmp) / "check.duckdb") as warehouse:
        yield warehouse
