"""`nightshift privacy`: the privacy budget ledger — spent and left per dataset, verify it, raise a budget."""

from __future__ import annotations

import getpass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nightshift.cli_args import parse_date

app = typer.Typer(help="The privacy budget ledger: ε spent and left per dataset and window.")
console = Console()

HOME = typer.Option(None, "--home", help="nightshift home (default: settings / NIGHTSHIFT_HOME)")
AS_OF = typer.Option(None, "--as-of", help="Date whose windows to show, YYYY-MM-DD (default: today)")
RELEASES = typer.Option(False, "--releases", help="Also list every charged release")


def _open(home: Path | None) -> tuple[Any, Any]:
    from nightshift.privacy.store import Store
    from nightshift.settings import load_settings

    settings = load_settings(home=home)
    return settings, Store.for_home(settings.data_dir, settings.reports_dir)


def show_ledger(home: Path | None = None, as_of: str | None = None, releases: bool = False) -> None:
    """Print, per dataset, the fullest budget window containing `as_of`: budget in force, spent, left."""
    from nightshift.privacy import ledger
    from nightshift.privacy.budget import Limit, in_force

    settings, store = _open(home)
    day = parse_date(as_of, "--as-of") or date.today()
    entries = store.entries()
    rows = ledger.ledger_rows(store)
    table = Table(title=f"Privacy budget as of {day} ({store.folder})")
    for col, justify in (("dataset", "left"), ("unit", "left"), ("window", "left"), ("budget ε", "right"),
                         ("spent ε", "right"), ("left ε", "right"), ("releases", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    notes, deltas = [], []
    for name, asked_budget in settings.privacy_budgets.items():
        asked = Limit.of(asked_budget)
        limit = in_force(entries, name, asked)
        if limit != asked:
            notes.append(f"{name}: the settings ask for ε {asked.epsilon:g} per {asked.window_days} days; "
                         f"releases are refused until `nightshift privacy raise-budget {name}` records it")
        use = ledger.window_use(entries, name, day, limit.window_days)
        left = max(limit.epsilon - use.spent, 0.0)
        style = "red" if left <= 1e-9 else ("yellow" if left < 0.1 * limit.epsilon else "")
        units = sorted(set(rows.filter(rows["dataset"] == name)["privacy_unit"].to_list()))
        table.add_row(name, ", ".join(units) or "—", f"{use.window_start} … {use.window_end}",
                      f"{limit.epsilon:g}", f"{use.spent:.4g}",
                      f"[{style}]{left:.4g}[/{style}]" if style else f"{left:.4g}", str(use.releases))
        if use.delta_spent:  # a line of its own: the table already fills a narrow terminal
            deltas.append(f"{name}: δ {use.delta_spent:.2g} spent in this window by DP key selections "
                          "(the chance that a value held by a handful of people was named)")
    console.print(table)
    for line in deltas:
        console.print(escape(line))
    for note in notes:
        console.print(f"[yellow]{escape(note)}[/yellow]")
    if rows.is_empty():
        console.print("No releases recorded yet: nothing has been spent.")
    elif releases:
        detail = Table(title="Charged releases")
        for col in ("run date", "dataset", "job", "release", "ε", "δ", "release id", "charged at"):
            detail.add_column(col)
        for r in rows.iter_rows(named=True):  # one row per charged release: the ledger itself
            detail.add_row(str(r["run_date"]), r["dataset"], r["job"], r["release_name"], f"{r['epsilon']:g}",
                           _delta(r["delta"]), r["release_id"][:12], r["charged_at"])
        console.print(detail)


def _delta(delta: float) -> str:
    """δ as spent by DP key selections; a pure-ε release shows a dash, not a misleading 0."""
    return f"{delta:.2g}" if delta else "—"


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, home: Path = HOME, as_of: str = AS_OF, releases: bool = RELEASES) -> None:
    """Show the ledger (also `nightshift privacy ledger`)."""
    if ctx.invoked_subcommand is None:
        show_ledger(home, as_of, releases)


@app.command("ledger")
def ledger_command(home: Path = HOME, as_of: str = AS_OF, releases: bool = RELEASES) -> None:
    """Show ε spent and left per dataset in the window containing a date, optionally every release."""
    show_ledger(home, as_of, releases)


@app.command("verify")
def verify_command(home: Path = HOME) -> None:
    """Check the ledger's hash chain, the anchor and every stored release's hash; exit 1 if broken."""
    from nightshift.privacy.store import LedgerBroken

    _, store = _open(home)
    try:
        entries = store.verify()
    except LedgerBroken as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(1) from None
    head = entries[-1].hash if entries else "none"
    console.print(f"ledger OK: {len(entries)} entries, head {head}; anchor: {escape(store.anchor_text())}")


@app.command("readable")
def readable_command(run_date: str = typer.Option(..., "--date", help="The night to measure, YYYY-MM-DD"),
                     home: Path = HOME) -> None:
    """Per release charged on a night: its cells and how many are unreadable (suppressed, or not above ±)."""
    from nightshift.privacy.readability import night

    _, store = _open(home)
    day = parse_date(run_date, "--date")
    rows = night(store, day)
    table = Table(title=f"Readable cells of the releases charged on {day}")
    for col in ("job", "release", "ε", "δ", "cells", "unreadable", "readable"):
        table.add_column(col)
    for r in rows.iter_rows(named=True):
        table.add_row(r["job"], r["release"], f"{r['epsilon']:.4g}", _delta(r["delta"]), str(r["cells"]),
                      str(r["unreadable"]), _share(r["cells"] - r["unreadable"], r["cells"]))
    cells, bad = int(rows["cells"].sum()), int(rows["unreadable"].sum())
    table.add_row("all", "", "", "", str(cells), str(bad), _share(cells - bad, cells))
    console.print(table)


def _share(part: int, whole: int) -> str:
    return f"{part} ({part / whole:.0%})" if whole else "—"


@app.command("raise-budget")
def raise_budget_command(
    dataset: str = typer.Argument(..., help="The dataset whose budget to record, e.g. users"),
    why: str = typer.Option(..., "--why", help="Why the budget changes (kept in the ledger)"),
    by: str = typer.Option(None, "--by", help="Who decided (default: the current user)"),
    epsilon: float = typer.Option(None, "--epsilon", help="Confirms the settings' new ε"),
    window_days: int = typer.Option(None, "--window-days", help="Confirms the settings' new window"),
    home: Path = HOME,
) -> None:
    """Record the budget the settings now ask for as the one in force (a raise needs this; who/why kept)."""
    from nightshift.privacy.budget import Limit, budget_record, recorded

    settings, store = _open(home)
    if dataset not in settings.privacy_budgets:
        raise typer.BadParameter(f"no privacy_budgets.{dataset} in the settings", param_hint="DATASET")
    asked = Limit.of(settings.privacy_budgets[dataset])
    # The settings must already ask for it: a budget the settings undercut would be lowered back
    # by the next release, and one they exceed would still be refused.
    if (epsilon is not None and epsilon != asked.epsilon) or (window_days not in (None, asked.window_days)):
        raise typer.BadParameter(
            f"the settings ask for ε {asked.epsilon:g} per {asked.window_days} days; set "
            f"privacy_budgets.{dataset} to the new budget first, then record it here")
    if not why.strip():
        raise typer.BadParameter("say why the budget changes", param_hint="--why")
    with store.writing() as entries:
        before = recorded(entries, dataset)
        store.append(entries, [budget_record(dataset, asked, by or getpass.getuser(), why.strip(),
                                             datetime.now().isoformat(timespec="seconds"))])
    was = f"ε {before.epsilon:g} per {before.window_days} days" if before else "nothing recorded"
    console.print(f"recorded privacy_budgets.{dataset} = ε {asked.epsilon:g} per {asked.window_days} days "
                  f"(was {was}) in {store.ledger_path}")
