"""Every expected error of the command line is one line that says what is wrong, and exit code 2.

The cases of issue #23 (bad dates, sizes and job names, a value after a plain flag) plus Click's own
usage errors (an unknown command or option, a value of the wrong type), run through `cli.main` as the
installed `nightshift` command does; tests/flows/test_broken_state.py runs some of them as a subprocess.
"""

from __future__ import annotations

import sys

import pytest

from nightshift import cli


@pytest.mark.parametrize(("args", "needle"), [
    (["privacy", "--as-of", "2026/01/01"], "is not a date"),
    (["demo", "--size", "huge"], "use tiny, small, medium or large"),
    (["models", "list", "foo"], "unknown job 'foo'"),
    (["run", "--date", "2026/03/01"], "is not a date"),
    (["run", "--jobs", "nosuchjob"], "unknown job 'nosuchjob'"),
    (["backfill", "--start", "2026-01-01", "--end", "2026-01-02", "--dry-run", "true"],
     "nightshift backfill: Got unexpected extra argument"),
    (["status", "--limit", "many"], "nightshift status: Invalid value for '--limit'"),
    (["nosuch"], "nightshift: No such command 'nosuch'"),
    (["run", "--bogus"], "nightshift run: No such option: --bogus"),
])
def test_a_bad_argument_is_one_line_and_exit_2(home, monkeypatch, capsys, args, needle):
    monkeypatch.setattr(sys, "argv", ["nightshift", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    assert exit_.value.code == 2, lines
    assert len(lines) == 1 and needle in lines[0], lines


def test_a_command_that_ends_well_exits_0(home, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["nightshift", "status"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 0 and "nothing has run yet" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["run"], ["backfill"], ["status"], ["privacy"], ["demo"]])
def test_help_shows_flags_as_plain_flags(monkeypatch, capsys, command):
    """`--force`, `--json`, `--help` take no value, and the help says so (no `<bool>` beside them)."""
    monkeypatch.setattr(sys, "argv", ["nightshift", *command, "--help"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--help" in out
    assert "<bool>" not in out, out
