"""`nightshift models list|promote|rollback`: the model registry for people (mounted by the main CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nightshift.registry import ModelRegistry, RegistryError

app = typer.Typer(help="Model versions, champions and rollbacks.", no_args_is_help=True)
console = Console()
ModelsDir = Annotated[Path | None, typer.Option(help="Registry root (default: <home>/models from settings)")]


def _registry(job: str, models_dir: Path | None) -> ModelRegistry:
    from nightshift.jobs import UnknownJob, get_job
    from nightshift.settings import load_settings

    try:
        get_job(job)
    except UnknownJob as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(2) from None
    settings = load_settings()
    return ModelRegistry(models_dir or settings.models_dir, job, margin=settings.champion_margin)


def _fmt(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _family(metadata: dict) -> str:
    """The candidate a version is (its bake-off name, "baseline" marked), else its storage format."""
    extra = metadata.get("extra") or {}
    name = extra.get("candidate") or metadata.get("format", "?")
    return f"{name} (baseline)" if extra.get("baseline") and "baseline" not in name else name


@app.command("list")
def list_models(job: str, models_dir: ModelsDir = None) -> None:
    """List a job's model versions with their holdout metrics; the champion is marked."""
    try:
        reg = _registry(job, models_dir)
        versions, champion = reg.list(), reg.champion()
    except RegistryError as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(1) from None
    if not versions:
        console.print(f"No models stored for {job!r} under {reg.root}.")
        return
    metric_names = sorted({k for v in versions for k in v.metrics})[:6]
    table = Table(title=f"{job} models ({reg.root})")
    for col in ["", "version", "model", "run date", "training window", *metric_names]:
        table.add_column(col)
    for v in versions:
        m = v.metadata
        window = m.get("training_window", {})
        table.add_row(
            "★" if v.version == champion else "",
            v.version,
            _family(m),
            str(m.get("run_date", m.get("error", "?"))),
            f"{window.get('start', '')} … {window.get('end', '')}" if window else "",
            *[_fmt(v.metrics.get(k, "")) for k in metric_names],
        )
    console.print(table)
    history = reg.history()[-5:]
    if history:
        hist = Table(title="recent decisions")
        for col in ("at", "action", "detail"):
            hist.add_column(col)
        for h in history:
            detail = h.get("reason") or f"{h.get('from', '')} → {h.get('to', '')}"
            hist.add_row(h.get("at", ""), h.get("action", ""), detail)
        console.print(hist)


@app.command()
def promote(job: str, version: str,
            models_dir: ModelsDir = None) -> None:
    """Make VERSION the champion of JOB (the previous champion stays available for rollback)."""
    try:
        reg = _registry(job, models_dir)
        reg.promote(version)
    except RegistryError as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{job}: champion is now [bold]{version}[/bold]")


@app.command()
def rollback(job: str, models_dir: ModelsDir = None) -> None:
    """Restore JOB's previous champion."""
    try:
        reg = _registry(job, models_dir)
        version = reg.rollback()
    except RegistryError as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{job}: rolled back; champion is now [bold]{version}[/bold]")
