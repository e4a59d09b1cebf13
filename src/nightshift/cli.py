"""The `nightshift` command: demo data, nightly runs, backfills, status, privacy ledger, models."""

from __future__ import annotations

import errno
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nightshift import lifeline, malloc_arenas
from nightshift.cli_args import parse_date, parse_jobs, prefect_env, read_settings
from nightshift.settings import Settings, SettingsError

app = typer.Typer(help="nightshift: nightly batch analytics on your five business tables.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console()

@app.callback()
def _options(verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                                   help="Show the libraries' own logs (TensorFlow, Prefect)")] = False
             ) -> None:
    """Quiet by default: TensorFlow's C++ and absl lines, Prefect's banners and warnings are noise to a
    reader of the night; -v lets them through."""
    quiet(not verbose)


NOISY = ("absl", "tensorflow", "keras", "prefect", "distributed", "py.warnings")


def quiet(on: bool) -> None:
    """Keep the libraries' logging off the terminal (or let it through); set before they are imported.

    Their loggers stay open at INFO, so the night's log file (`nightshift.nightlog`) keeps every line:
    only the terminal's handler filters. Python warnings become log records for the same reason.
    """
    import logging
    import os

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3" if on else "0"  # C++ lines bypass logging: silenced, not kept
    os.environ["PREFECT_LOGGING_LEVEL"] = "ERROR" if on else "INFO"
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)
    terminal = logging.StreamHandler()
    terminal.setFormatter(logging.Formatter("%(message)s"))
    terminal.setLevel(logging.WARNING if on else logging.INFO)
    if on:
        terminal.addFilter(_not_noise)
    logging.basicConfig(level=logging.INFO, handlers=[terminal])


def _not_noise(record) -> bool:
    """On a quiet terminal the noisy libraries show only errors."""
    return record.levelno >= 40 or record.name.split(".")[0] not in NOISY


DateOpt = Annotated[str | None, typer.Option("--date", help="Run date YYYY-MM-DD (default: latest complete date).")]


@app.command()
def demo(
    size: Annotated[str | None, typer.Option(help="tiny, small (default), medium or large")] = None,
    end: Annotated[str | None, typer.Option(help="Last demo date (default: yesterday)")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: settings)")] = None,
    faults: Annotated[bool, typer.Option("--faults", help="Inject nulls, duplicates, bad values, late rows, a missing day")] = False,
) -> None:
    """Generate the synthetic demo tables as daily Parquet drops in data/landing/."""
    from nightshift import demo as demo_data

    s = read_settings()
    if size not in (None, "tiny", "small", "medium", "large"):
        console.print(f"[red]--size {escape(size)!r}: use tiny, small, medium or large[/red]")
        raise typer.Exit(2)
    last = parse_date(end, "--end") or s.demo_end or date.today() - timedelta(days=1)
    with console.status(f"generating {size or s.demo_size} demo data up to {last} ..."):
        counts = demo_data.generate(s.landing_dir, end=last, size=size or s.demo_size,
                                    seed=seed if seed is not None else s.seed, faults=faults,
                                    truth_dir=s.data_dir / "demo_truth")
    t = Table("table", "rows", title=f"demo data in {s.landing_dir}")
    for name, n in counts.items():
        t.add_row(name, f"{n:,}")
    console.print(t)


def _ensure_data(s: Settings) -> None:
    """Generate the demo data when the landing zone is empty and no table has a source of its own."""
    has_landing = s.landing_dir.exists() and any(s.landing_dir.iterdir())
    if not has_landing and not s.sources:
        console.print("[yellow]the landing zone is empty: generating the demo data first[/yellow]")
        demo()


@app.command()
def run(
    date_: DateOpt = None,
    jobs: Annotated[str | None, typer.Option(help="Comma-separated jobs (default: all)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute jobs even when their input is unchanged")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait if the date is being run elsewhere")] = 0.0,
) -> None:
    """Run the nightly flow for one date (default: the latest complete date) and print the report path."""
    s = read_settings()
    run_date, names = parse_date(date_), parse_jobs(jobs)  # a bad argument is refused before any work
    lifeline.start()
    _ensure_data(s)
    prefect_env(s)
    from nightshift import night
    from nightshift.progress import night_progress
    from nightshift.runs import DateLocked

    try:
        with night_progress(console) as progress:
            result = night.run_night(s, run_date, names, force=force, lock_wait_s=wait, progress=progress)
    except DateLocked as e:  # exit 3: another run holds the date; try again later (--wait)
        console.print(f"[yellow]{escape(str(e))}[/yellow]")
        raise typer.Exit(3) from None
    except Exception as e:  # the night did not finish: alert, then the usual one-line error (`main`)
        from nightshift import alerts

        alerts.on_error(s, run_date, e)
        raise
    print_result(result.as_dict())
    if result.status == "failed":
        raise typer.Exit(1)


def print_result(result: dict) -> None:
    """The night's jobs as a table, then where its report and the index of nights are."""
    t = Table("job", "status", "seconds", "model in use", "error",
              title=f"night of {result['run_date']}: {result['status']}")
    for job, j in result["jobs"].items():
        color = {"success": "green", "reused": "green", "failed": "red"}.get(j["status"], "yellow")
        t.add_row(job, f"[{color}]{j['status']}[/{color}]", f"{j['seconds']:.1f}", _models_in_use(j), escape(j["error"] or ""))
    console.print(t)
    console.print(f"report: [bold]{result['report']}[/bold]")
    if result.get("log") and any(j["status"] == "failed" for j in result["jobs"].values()):
        console.print(f"tracebacks: [bold]{result['log']}[/bold]")
    console.print(f"all nights: [bold]{Path(result['report']).parents[1] / 'index.html'}[/bold]")


def _models_in_use(job: dict) -> str:
    """Each selected model's winner, with a flag when the learned model lost to a baseline."""
    lines = []
    for sel in (job.get("selections") or {}).values():
        flag = " [yellow]⚑ learned model lost to a baseline[/yellow]" if sel["learned_lost"] else ""
        lines.append(f"{escape(sel['published'])}{flag}")
    return "\n".join(lines)


@app.command()
def status(
    limit: Annotated[int, typer.Option(help="How many dates to show")] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON (for scripts)")] = False,
) -> None:
    """Print, per date and job, what ran, when, how it ended (with why), and rows in/out."""
    import json

    from nightshift import runs

    s = read_settings()
    records = runs.all_records(s)[:limit]
    if as_json:
        print(json.dumps([{"run_date": r["run_date"], **(runs.last_attempt(r) or {})} for r in records], indent=1))
        return
    if not records:
        console.print("nothing has run yet: try `make run`")
        return
    attempts = [(rec["run_date"], a) for rec in records if (a := runs.last_attempt(rec)) is not None]
    if console.is_terminal and console.width >= 120:
        console.print(_status_table(attempts))
        return
    # A pipe (cron mail, CI logs) or a narrow terminal: whole lines, never a cut cell.
    for day, a in attempts:
        read = sum(v["read"] for v in a.get("tables", {}).values())
        quarantined = sum(v["quarantined"] for v in a.get("tables", {}).values())
        print(f"{day}  {runs.attempt_status(a)}  ({a.get('trigger', '')}; started {a['started']}, "
              f"ended {a.get('ended') or '-'}; rows in {read:,}, quarantined {quarantined:,})")
        for job, j in a.get("jobs", {}).items():
            print(f"    {job}: {j['status']}" + (f" ({j['error']})" if j.get("error") else ""))
        if a.get("log") and runs.attempt_status(a) != "success":
            print(f"    log: {a['log']}")
        for table, t in a.get("tables", {}).items():  # skipped folders, rejected files: said, not silent
            for note in [t["problem"]] * bool(t.get("problem")) + t.get("notes", []):
                print(f"    table {table}: {note}")


def _status_table(attempts: list[tuple[str, dict]]) -> Table:
    from nightshift import runs

    t = Table("date", "status", "started", "ended", "trigger", "jobs", "rows in / quarantined")
    for day, a in attempts:
        st = runs.attempt_status(a)
        color = {"success": "green", "failed": "red"}.get(st, "yellow")
        read = sum(v["read"] for v in a.get("tables", {}).values())
        quarantined = sum(v["quarantined"] for v in a.get("tables", {}).values())
        t.add_row(day, f"[{color}]{st}[/{color}]", a["started"], a.get("ended") or "-",
                  a.get("trigger", ""), escape(_jobs_line(a)), f"{read:,} / {quarantined:,}")
    return t


def _jobs_line(attempt: dict) -> str:
    """`loans: success; energy: skipped (table energy: no data for ...)`."""
    return "; ".join(f"{job}: {j['status']}" + (f" ({j['error']})" if j.get("error") else "")
                     for job, j in attempt.get("jobs", {}).items())


# Errors whose cause is on the user's side of the keyboard (a file, a setting, another process):
# one line that says what is wrong and what to do, exit code 2, never a traceback.
DISK = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def main() -> None:
    """Entry point that turns expected errors into one line and exit code 2."""
    from nightshift.jobs import UnknownJob
    from nightshift.night import NoCompleteDate
    from nightshift.registry import RegistryError
    from nightshift.sources import SourceError
    from nightshift.warehouse import WarehouseBroken, WarehouseBusy

    malloc_arenas.limit()  # before any thread starts: a backfill or `serve` runs many nights in one process
    try:
        # Not standalone: Click's usage errors come here, to be said in one line like every other error.
        code = app(standalone_mode=False)
    except typer.TyperException as e:  # Click's errors (a usage error has the command it is about)
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx else "nightshift"
        if not e.format_message().strip():  # `nightshift` alone: the help was shown, nothing more to say
            sys.exit(e.exit_code)
        console.print(f"[red]{escape(where)}: {escape(e.format_message())}[/red] (see `{escape(where)} --help`)",
                      soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Abort:  # end of input at a prompt
        console.print("aborted")
        sys.exit(1)
    except SettingsError as e:
        console.print(f"[red]settings error:[/red] {escape(str(e))}")
        sys.exit(2)
    except (WarehouseBroken, WarehouseBusy, RegistryError, SourceError, UnknownJob, NoCompleteDate) as e:
        console.print(f"[red]{escape(str(e))}[/red]")
        sys.exit(2)
    except OSError as e:
        if e.errno not in DISK:
            raise
        console.print(f"[red]cannot write {escape(str(e.filename or ''))}: {escape(e.strerror or str(e))}; "
                      "free disk space or fix the folder's permissions, then run again[/red]")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)  # typer.Exit(n) comes back as n


def _mount() -> None:
    # Sub-commands live beside what they own; they import their heavy parts only when run.
    from nightshift.backfill import backfill_command
    from nightshift.privacy_cli import app as privacy_app
    from nightshift.registry_cli import app as models_app
    from nightshift.repair_cli import app as repair_app
    from nightshift.repair_cli import forget_command
    from nightshift.serve_cli import serve_command
    from nightshift.sources_cli import app as sources_app

    app.command(name="backfill")(backfill_command)
    app.command(name="serve")(serve_command)
    app.command(name="forget")(forget_command)
    app.add_typer(privacy_app, name="privacy")
    app.add_typer(models_app, name="models")
    app.add_typer(sources_app, name="sources")
    app.add_typer(repair_app, name="repair")


_mount()
