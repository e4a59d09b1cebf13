"""A backfill (one process for the whole range, pools kept, models trained on a cadence) publishes
for each date exactly what nightly runs of the same dates in order publish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from same_outputs import compare, tables  # noqa: E402

MONDAY = date(2026, 3, 2)
DAYS = [MONDAY, MONDAY + timedelta(days=1)]  # Monday trains, Tuesday scores


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NIGHTSHIFT_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", "from nightshift.cli import main; main()", *args],
                          env=env, cwd=home, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow  # four real nights
def test_a_backfill_publishes_what_nightly_runs_in_order_publish(tmp_path: Path) -> None:
    backfill, nightly = tmp_path / "backfill", tmp_path / "nightly"
    for home in (backfill, nightly):
        home.mkdir()
        _cli(home, "demo", "--size", "tiny", "--end", str(DAYS[-1]), "--seed", "7")
    plan = _cli(backfill, "backfill", "--start", str(DAYS[0]), "--end", str(DAYS[-1]), "--dry-run").stdout
    assert "run, trains" in plan and "run, scores" in plan and "estimated" in plan
    _cli(backfill, "backfill", "--start", str(DAYS[0]), "--end", str(DAYS[-1]))
    for day in DAYS:
        _cli(nightly, "run", "--date", str(day))
    for day in DAYS:
        a, b = (tables(home / "reports" / str(day)) for home in (nightly, backfill))
        assert a.keys() == b.keys() and len(a) > 5
        # DP releases draw fresh noise on every run (noise that repeats would leak): their shape must agree
        noisy = {name for name in a if name.startswith("shareable/")}
        assert {n: a[n].shape for n in noisy} == {n: b[n].shape for n in noisy}
        problems = compare({n: f for n, f in a.items() if n not in noisy}, {n: f for n, f in b.items() if n not in noisy},
                           rtol=1e-9)
        assert problems == [], (day, problems)
        jobs = json.loads((backfill / "reports" / str(day) / "manifest.json").read_text())["jobs"]
        assert jobs["sales"]["summary"]["trained"] is (day == MONDAY)
    for job in ("behavior", "sales", "loans", "inventory", "energy"):  # each trained on Monday only
        assert sorted(p.name for p in (backfill / "models" / job / "state" / "trained").iterdir()) == [
            f"{MONDAY}.json"], job
