"""Putting broken state right from the command line: `nightshift repair warehouse` and `nightshift forget`."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from nightshift.cli_args import parse_date, read_settings

app = typer.Typer(help="Put broken state right.", no_args_is_help=True)
console = Console()


@app.command("warehouse")
def repair_warehouse(
    date_: Annotated[str | None, typer.Option("--date", help="Load up to this date (default: the newest drop)")] = None,
) -> None:
    """Move the warehouse file aside and load every table again from the landing zone and your sources.

    Everything in the warehouse is derived from its inputs; the privacy ledger, the models and the
    published reports live outside it and are kept. The old file stays beside the new one until you
    delete it.
    """
    from nightshift import ingest
    from nightshift.sources import latest_drop
    from nightshift.warehouse import Warehouse

    settings = read_settings()
    run_date = parse_date(date_) or latest_drop(settings)
    if run_date is None:
        console.print("[red]nothing to load: the landing zone and the sources have no data[/red]")
        raise typer.Exit(2)
    path = settings.warehouse_path
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for old in (path, path.with_name(path.name + ".wal")):
        if old.exists():
            old.rename(old.with_name(f"{old.name}.broken-{stamp}"))
            console.print(f"moved {old.name} aside: {old.name}.broken-{stamp}")
    with Warehouse.open(settings) as warehouse:
        loads = ingest.ingest(settings, warehouse, run_date)
    for table, load in loads.items():
        note = f" — {escape(load.problem)}" if load.problem else ""
        console.print(f"{table}: {load.rows_loaded:,} rows loaded, {load.rows_quarantined:,} quarantined{note}")
    console.print(f"the warehouse is rebuilt up to {run_date}; run the nights you need again")


def forget_command(
    date_: Annotated[str, typer.Option("--date", help="The night to forget, YYYY-MM-DD")],
) -> None:
    """Remove one night's published outputs and its run records (the privacy ledger is kept: what was
    released stays spent). The date can then be run again like one that never ran."""
    from nightshift import runs
    from nightshift.night_pages import write_reports_index

    settings = read_settings()
    day = parse_date(date_)
    assert day is not None
    with runs.date_lock(settings, day, purpose="forget"):
        link = settings.reports_dir / day.isoformat()
        removed = []
        if link.is_symlink():
            build = link.resolve()
            link.unlink()
            shutil.rmtree(build, ignore_errors=True)
            removed.append(str(link))
        record = runs.record_path(settings, day)
        if record.exists():
            record.unlink()
            removed.append(str(record))
        write_reports_index(settings)
    if not removed:
        console.print(f"nothing to forget for {day}: it has no published night and no run record")
        raise typer.Exit(1)
    console.print(f"forgot {day}: removed {', '.join(removed)}")
