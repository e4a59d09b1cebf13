"""Two backfills of disjoint ranges and the nightly run, started together, all finish: writers take
turns at the warehouse (each waits, saying for whom) instead of failing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from nightshift import demo, runs
from nightshift.settings import load_settings

pytestmark = pytest.mark.slow
D = date(2026, 3, 1)


def test_disjoint_backfills_and_the_nightly_run_all_succeed(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    demo.generate(settings.landing_dir, end=D, size="tiny", seed=6)
    command = str(Path(sys.executable).with_name("nightshift"))
    env = {**os.environ, "NIGHTSHIFT_HOME": str(tmp_path)}
    started = [subprocess.Popen([command, *args, "--jobs", "inventory"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for args in (
        ["backfill", "--start", "2026-02-25", "--end", "2026-02-26"],
        ["backfill", "--start", "2026-02-27", "--end", "2026-02-28"],
        ["run", "--date", str(D)],
    )]
    outputs = [p.communicate(timeout=900)[0] for p in started]
    assert [p.returncode for p in started] == [0, 0, 0], outputs
    done = {r["run_date"]: runs.attempt_status(runs.last_attempt(r)) for r in runs.all_records(settings)}
    assert done == {f"2026-02-{d}": "success" for d in (25, 26, 27, 28)} | {str(D): "success"}
