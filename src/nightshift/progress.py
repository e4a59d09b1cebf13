"""The night as it happens, in the terminal: one line per finished stage and job with the time since
the start; on a terminal a spinner shows what is running, in a pipe (cron mail, CI logs) plain lines."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape


@contextmanager
def night_progress(console: Console) -> Iterator[Callable[[str], None]]:
    """A `progress(line)` callback for `run_night`, live on a terminal, plain otherwise."""
    start = time.monotonic()

    def stamp(line: str) -> str:
        return f"[{time.monotonic() - start:6.1f} s] {line}"

    if not console.is_terminal:
        yield lambda line: console.print(stamp(line), markup=False, highlight=False, soft_wrap=True)
        return
    with console.status("starting ...") as status:
        def show(line: str) -> None:
            console.print(f"[dim]{escape(stamp(line))}[/dim]")
            status.update(f"{escape(line)} …")
        yield show
