"""Broken state and bad arguments as an operator meets them: one line that says what is wrong and
what to do, a non-zero exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from nightshift import demo
from nightshift.settings import load_settings

D = date(2026, 3, 1)


def _nightshift(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed command, as a user runs it, in a terminal of 200 columns."""
    return subprocess.run([str(Path(sys.executable).with_name("nightshift")), *args], capture_output=True, text=True,
                          env={**os.environ, "NIGHTSHIFT_HOME": str(home), "COLUMNS": "200", **(env or {})},
                          timeout=300)


def _one_line_error(result: subprocess.CompletedProcess, code: int, needle: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    assert "Traceback" not in out, out
    assert needle in out, out


@pytest.fixture
def demo_home(tmp_path: Path) -> Path:
    settings = load_settings(home=tmp_path)
    demo.generate(settings.landing_dir, end=D, size="tiny", seed=3)
    return tmp_path


@pytest.mark.slow  # runs real nights
@pytest.mark.parametrize("content", [b"", b"x" * 5000], ids=["empty", "truncated"])
def test_a_broken_warehouse_names_the_repair_and_the_repair_rebuilds_it(demo_home, content):
    warehouse = demo_home / "data" / "warehouse.duckdb"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    warehouse.write_bytes(content)
    _one_line_error(_nightshift(demo_home, "run", "--date", str(D), "--jobs", "inventory"), 2,
                    "nightshift repair warehouse")
    repaired = _nightshift(demo_home, "repair", "warehouse")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "inventory:" in repaired.stdout and list(warehouse.parent.glob("warehouse.duckdb.broken-*"))
    ran = _nightshift(demo_home, "run", "--date", str(D), "--jobs", "inventory")
    assert ran.returncode == 0, ran.stdout + ran.stderr


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["run", "--date", "2030-01-01", "--jobs", "inventory"], {}, "no data for 2030-01-01 yet"),
    (["run", "--date", "2026/03/01"], {}, "is not a date"),
    (["run", "--jobs", "nosuchjob"], {}, "unknown job 'nosuchjob'"),
    (["run", "--date", str(D)], {"NIGHTSHIFT_JOBS": '["nosuchjob"]'}, "unknown job 'nosuchjob'"),
])
def test_bad_arguments_are_one_line_and_exit_2(demo_home, args, env, needle):
    _one_line_error(_nightshift(demo_home, *args, env=env), 2, needle)


def test_a_bad_date_on_an_empty_home_is_refused_before_demo_data_is_made(tmp_path):
    _one_line_error(_nightshift(tmp_path, "run", "--date", "nope"), 2, "is not a date")
    assert not (tmp_path / "data" / "landing").exists()


def test_an_unknown_variable_is_named(demo_home):
    result = _nightshift(demo_home, "status", env={"NIGHTSHIFT_SEEED": "3"})
    assert "NIGHTSHIFT_SEEED is not a setting" in result.stderr


@pytest.mark.slow  # runs real nights
def test_forget_removes_a_night_so_it_runs_again(demo_home):
    assert _nightshift(demo_home, "run", "--date", str(D), "--jobs", "inventory").returncode == 0
    forgot = _nightshift(demo_home, "forget", "--date", str(D))
    assert forgot.returncode == 0 and "forgot 2026-03-01" in forgot.stdout
    assert not (demo_home / "reports" / str(D)).exists()
    assert str(D) not in (demo_home / "reports" / "index.html").read_text()
    _one_line_error(_nightshift(demo_home, "forget", "--date", str(D)), 1, "nothing to forget")


@pytest.mark.parametrize(("args", "needle"), [
    (["privacy", "--as-of", "2026/01/01"], "is not a date"),
    (["demo", "--size", "huge"], "use tiny, small, medium or large"),
    (["models", "list", "foo"], "unknown job 'foo'"),
])
def test_bad_arguments_of_the_other_commands_are_one_line_and_exit_2(tmp_path, args, needle):
    _one_line_error(_nightshift(tmp_path, *args), 2, needle)


@pytest.mark.parametrize("code", [28, 30, 13], ids=["disk full", "read-only", "permission"])
def test_a_full_disk_or_read_only_reports_is_one_line_and_exit_2(monkeypatch, capsys, code):
    """What the user sees when writing a report fails for a reason of theirs (publishing itself keeps the
    previous build: tests/flows/test_faults.py::test_disk_full_while_publishing_keeps_the_previous_report)."""
    from nightshift import cli

    def full(*args, **kwargs):
        raise OSError(code, os.strerror(code), "/srv/nightshift/reports/2026-03-01")

    monkeypatch.setattr(cli, "app", full)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out = capsys.readouterr().out
    assert exit_.value.code == 2 and "Traceback" not in out
    assert "cannot write /srv/nightshift/reports/2026-03-01" in out and "then run again" in out


@pytest.mark.slow  # runs real nights
def test_a_folder_that_is_no_date_is_reported_by_status_and_the_night_runs(demo_home):
    (demo_home / "data" / "landing" / "inventory" / "date=2026-13-45").mkdir()
    ran = _nightshift(demo_home, "run", "--date", str(D), "--jobs", "inventory")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status = _nightshift(demo_home, "status")
    assert "table inventory: skipped the folder" in status.stdout and "date=2026-13-45" in status.stdout
