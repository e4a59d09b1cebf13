"""`nightshift privacy`: the privacy budget ledger for people — spent and left per dataset and window."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The privacy budget ledger: ε spent and left per dataset and window.")
console = Console()

HOME = typer.Option(None, "--home", help="nightshift home (default: settings / NIGHTSHIFT_HOME)")
AS_OF = typer.Option(None, "--as-of", help="Date whose windows to show, YYYY-MM-DD (default: today)")
RELEASES = typer.Option(False, "--releases", help="Also list every charged release")


def show_ledger(home: Path | None = None, as_of: str | None = None, releases: bool = False) -> None:
    """Print, per dataset, the fullest budget window containing `as_of`: budget, spent, left."""
    from nightshift.privacy import ledger
    from nightshift.settings import load_settings
    from nightshift.warehouse import Warehouse

    settings = load_settings(home=home)
    day = date.fromisoformat(as_of) if as_of else date.today()
    path = settings.warehouse_path
    rows, uses, units = None, {}, {}
    if path.exists():
        with Warehouse(path, read_only=True) as wh:
            cur = wh.cursor
            if ledger.has_tables(cur):
                rows = ledger.ledger_rows(cur)
                for name, budget in settings.privacy_budgets.items():
                    uses[name] = ledger.window_use(cur, name, day, budget.window_days)
                    units[name] = sorted(set(rows.filter(rows["dataset"] == name)["privacy_unit"].to_list()))
    table = Table(title=f"Privacy budget as of {day} ({path})")
    for col, justify in (("dataset", "left"), ("unit", "left"), ("window", "left"), ("budget ε", "right"),
                         ("spent ε", "right"), ("left ε", "right"), ("releases", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, budget in settings.privacy_budgets.items():
        use = uses.get(name)
        spent = use.spent if use else 0.0
        window = f"{use.window_start} … {use.window_end}" if use else f"{budget.window_days} days ending {day}"
        left = max(budget.epsilon - spent, 0.0)
        style = "red" if left <= 1e-9 else ("yellow" if left < 0.1 * budget.epsilon else "")
        table.add_row(name, ", ".join(units.get(name, [])) or "—", window, f"{budget.epsilon:g}",
                      f"{spent:.4g}", f"[{style}]{left:.4g}[/{style}]" if style else f"{left:.4g}",
                      str(use.releases if use else 0))
    console.print(table)
    if rows is None:
        console.print("No releases recorded yet: nothing has been spent.")
    elif releases:
        detail = Table(title="Charged releases")
        for col in ("run date", "dataset", "job", "release", "ε", "release id", "charged at"):
            detail.add_column(col)
        for r in rows.iter_rows(named=True):  # one row per charged release: the ledger itself
            detail.add_row(str(r["run_date"]), r["dataset"], r["job"], r["release_name"], f"{r['epsilon']:g}",
                           r["release_id"][:12], str(r["charged_at"])[:19])
        console.print(detail)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, home: Path = HOME, as_of: str = AS_OF, releases: bool = RELEASES) -> None:
    """Show the ledger (also `nightshift privacy ledger`)."""
    if ctx.invoked_subcommand is None:
        show_ledger(home, as_of, releases)


@app.command("ledger")
def ledger_command(home: Path = HOME, as_of: str = AS_OF, releases: bool = RELEASES) -> None:
    """Show ε spent and left per dataset in the window containing a date, optionally every release."""
    show_ledger(home, as_of, releases)
