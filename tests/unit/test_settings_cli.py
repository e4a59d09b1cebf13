"""Settings are validated before anything runs; the CLI answers --help and plans backfills."""

from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from nightshift.cli import app
from nightshift.settings import SettingsError, load_settings

runner = CliRunner()


def test_env_beats_file(home, monkeypatch):
    (home / "nightshift.toml").write_text("seed = 11\nservice_level = 0.9\n")
    monkeypatch.setenv("NIGHTSHIFT_SEED", "12")
    s = load_settings()
    assert (s.seed, s.service_level, s.home) == (12, 0.9, home.resolve())
    assert s.warehouse_path == home.resolve() / "data" / "warehouse.duckdb"


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[sources.orders]\npath = "x.csv"\n', "unknown table 'orders'"),
        ('[sources.sales]\npath = "../../etc/passwd"\n', "outside the home"),
        ('[sources.sales]\npath = "x.duckdb"\nquery = "select 1; drop table sales"\n', "one SELECT"),
        ('[sources.sales]\npath = "x.duckdb"\ntable = "sales; drop"\n', "plain identifier"),
        ('[sources.sales]\npath = "x.csv"\n[sources.sales.columns]\nqty = "quantity"\n', "names no column of sales"),
        ("jobs = ['sales; rm -rf /']\n", "not a job name"),
        ("service_level = 2\n", "service_level"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(home, toml, message):
    (home / "nightshift.toml").write_text(toml)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_bad_settings_stop_the_cli_before_anything_runs(home):
    (home / "nightshift.toml").write_text('[sources.orders]\npath = "x.csv"\n')
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2 and "unknown table" in result.output
    assert not (home / "data").exists()


@pytest.mark.parametrize("command", ["demo", "run", "backfill", "status", "privacy", "models"])
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_backfill_dry_run_prints_the_plan_and_runs_nothing(home):
    from nightshift import runs

    runs.save_attempt(load_settings(), date(2026, 1, 2),
                      {"run_id": "a", "started": "x", "ended": "y", "status": "success", "jobs": {"sales": {}}})
    runs.save_attempt(load_settings(), date(2026, 1, 3),
                      {"run_id": "b", "started": "x", "ended": None, "jobs": {}})
    result = runner.invoke(app, ["backfill", "--start", "2026-01-01", "--end", "2026-01-03", "--dry-run"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = {ln.split("│")[1].strip(): ln for ln in result.output.splitlines() if ln.count("│") >= 3}
    assert "never ran" in lines["2026-01-01"] and "run" in lines["2026-01-01"]
    assert "skip" in lines["2026-01-02"] and "already succeeded" in lines["2026-01-02"]
    assert "interrupted" in lines["2026-01-03"]
    assert "nothing was run" in result.output
    assert not (home / "reports").exists()


def test_backfill_rejects_a_reversed_range(home):
    result = runner.invoke(app, ["backfill", "--start", "2026-01-05", "--end", "2026-01-01"])
    assert result.exit_code == 2 and "before it starts" in result.output


def test_demo_writes_daily_drops(home):
    result = runner.invoke(app, ["demo", "--size", "tiny", "--end", "2026-03-01"])
    assert result.exit_code == 0, result.output
    days = sorted(p.name for p in (home / "data" / "landing" / "sales").iterdir())
    assert days[-1] == "date=2026-03-01" and len(days) >= 300
