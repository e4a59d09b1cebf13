"""What every command reads from the command line: settings, dates and job names, with clean errors."""

from __future__ import annotations

import os
from datetime import date

import typer
from rich.console import Console
from rich.markup import escape

from nightshift.settings import Settings, SettingsError, load_settings

console = Console()


def _flag_label(option: typer.core.TyperOption, ctx) -> str | None:
    """Typer 0.29 labels an on/off flag `<bool>` in help, as if it took a value: show the flag alone."""
    return "" if option.is_flag else _typer_label(option, ctx)


_typer_label = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_label  # every command's help: --force, --json, --help


def read_settings() -> Settings:
    """The settings, or a clean exit that says what is wrong with them."""
    try:
        return load_settings()
    except SettingsError as e:
        console.print(f"[red]settings error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None


def parse_date(text: str | None, what: str = "date") -> date | None:
    """A YYYY-MM-DD option, or a clean exit."""
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        console.print(f"[red]{what} {text!r} is not a date: use YYYY-MM-DD[/red]")
        raise typer.Exit(2) from None


def prefect_env(settings: Settings) -> None:
    """Point Prefect's ephemeral API at our home, with telemetry off; before Prefect is imported."""
    os.environ.setdefault("PREFECT_HOME", str(settings.home / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_jobs(text: str | None) -> list[str] | None:
    """Comma-separated job names, each known, or a clean exit listing the known ones."""
    from nightshift.jobs import get_job

    if not text:
        return None
    names = [j.strip() for j in text.split(",") if j.strip()]
    for n in names:
        try:
            get_job(n)
        except KeyError as e:
            console.print(f"[red]{e.args[0]}[/red]")
            raise typer.Exit(2) from None
    return names
