"""The benchmark harness end to end on a sliver of tiny demo data: one rep, every field present.

No timing assertions (timings on shared machines say nothing about correctness); what must hold
is that both sides really did the same work (equal row counts and sums) and that the report has
every stage with both sides' figures and the ratio.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest

KEEP_DAYS = {"users": 10_000, "events": 40, "sales": 75, "loans": 10_000, "loan_outcomes": 10_000}


@pytest.fixture(scope="module")
def sliver(demo_night, tmp_path_factory):
    """The shared tiny demo's drops, cut to a few weeks so one rep of each side stays short."""
    from nightshift.bench.data import BenchData

    root = tmp_path_factory.mktemp("bench") / "tiny"
    src = demo_night.settings.landing_dir
    for table, days in KEEP_DAYS.items():
        for d in sorted((src / table).glob("date=*")):
            if d.name[5:] > (demo_night.run_date - timedelta(days=days)).isoformat():
                shutil.copytree(d, root / "data" / "landing" / table / d.name)
    return BenchData(root, "tiny", 7, demo_night.run_date)


@pytest.mark.slow  # two child processes ingest and train: ~1 min of CPU on 2 shared cores
def test_harness_writes_every_stage_and_ratio(sliver, tmp_path):
    from nightshift.bench import harness, workload

    result, path = harness.run("tiny", 1, tmp_path / "bench", tmp_path / "reports" / "bench", data=sliver,
                               work=workload.Workload(max_series=2, rounds=5, workers=1), rerun_jobs=[], extras_for=(),
                               bandwidth_mib=16, log=lambda *_: None)
    saved = json.loads(path.read_text())
    assert path.parent == tmp_path / "reports" / "bench"
    assert list(saved["stages"]) == [*workload.STAGES, "end_to_end"]
    for stage, row in saved["stages"].items():
        for side in ("nightshift", "pandas"):
            assert row[side]["seconds"]["min"] <= row[side]["seconds"]["median"] <= row[side]["seconds"]["max"]
            assert row[side]["peak_mib"] > 0, (stage, side)
        assert row["ratio_b_over_a"] > 0
    # both sides did the same work: same rows loaded, same aggregates, same series forecast
    assert saved["agreement"]["same_counts"], saved["agreement"]["per_check"]
    assert saved["agreement"]["nightshift"]["impression_rows"] > 0
    assert saved["bandwidth"]["load"]["bytes"] > 0 and saved["machine"]["memory_bandwidth"]["copy_gb_s"] > 0
    assert result["reps_raw"]["pandas"][0]["checks"]["series"] == 2
    # the night starts from earlier nights' warehouse: it loads only the new day's drops
    assert result["reps_raw"]["nightshift"][0]["checks"]["partitions_loaded"]["events"] == 1
    # and it brings the behavior job's kept event history forward with that day, as a real night does
    assert result["reps_raw"]["nightshift"][0]["checks"]["kept"] == "advanced"
    assert saved["cold_start"]["kept_history_seconds"] > 0
    cold = saved["cold_start"]
    assert cold["nightshift_seconds"] > 0 and cold["nightshift_peak_mib"] > 0 and cold["ratio_b_over_a"] > 0
    # pandas' side of the cold start is its load stage run right before and right after it
    before, after = cold["pandas_load_each"]
    assert before > 0 and after > 0 and min(before, after) <= cold["pandas_load_seconds"] <= max(before, after)
    assert 0 < cold["pandas_bare_read_seconds"] < cold["pandas_load_seconds"] and cold["bare_read_ratio"] > 0
    assert 0 < cold["rows_loaded"]["events"] < saved["agreement"]["nightshift"]["rows_loaded"]["events"]


def test_stage_peak_sees_an_allocation():
    # In a fresh process: the test session's own children (a Prefect server, pool workers) would add
    # their memory to the process tree's peak and hide the allocation.
    import subprocess
    import sys

    code = """
import numpy as np
from nightshift.bench.memory import StagePeak
with StagePeak() as base:
    pass
with StagePeak() as peak:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del block
print(base.peak_mib, peak.peak_mib)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    base_mib, peak_mib = map(float, out.split())
    assert peak_mib >= base_mib + 48  # freed before the end: only a peak measure sees it


def _rep(side: str, seconds: float, checks: dict) -> dict:
    from nightshift.bench import workload

    stages = {s: {"seconds": seconds * (i + 1), "peak_mib": 100.0 + i} for i, s in enumerate(workload.STAGES)}
    return {"side": side, "stages": stages, "end_to_end": {"seconds": seconds * 21, "peak_mib": 105.0},
            "checks": checks}


def test_summaries_have_every_stage_ratio_and_agreement(capsys):
    """The summary, agreement and printed table from rep records (fast: no child processes)."""
    from nightshift.bench import harness, workload
    from nightshift.bench.__main__ import print_tables

    same = {"rows_loaded": {"events": 10}, "user_day_rows": 3, "visits": 4, "units": 5.0}
    reps = {"nightshift": [_rep("nightshift", 1.0, same), _rep("nightshift", 3.0, same)],
            "pandas": [_rep("pandas", 4.0, same), _rep("pandas", 4.0, {**same, "visits": 5})]}
    table = harness.stage_table(reps)
    assert list(table) == [*workload.STAGES, "end_to_end"]
    assert table["load"]["nightshift"]["seconds"] == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert table["load"]["ratio_b_over_a"] == 2.0 and table["end_to_end"]["ratio_b_over_a"] == 2.0
    assert table["write"]["pandas"]["peak_mib"] == 105.0
    assert harness.agreement(reps)["same_counts"]  # compares the first rep of each side
    reps["pandas"][0]["checks"] = {**same, "visits": 5}
    assert not harness.agreement(reps)["per_check"]["visits"]
    bw = {"copy_gb_s": 10.0, "copy_gb_s_best": 11.0, "array_mib": 16}
    band = harness.bandwidth_figures(table, None, {"parquet_bytes": 2_000_000_000, "aggregate_bytes": 4_000_000_000}, bw)
    assert band["load"]["nightshift"]["gb_s"] == 1.0 and band["load"]["nightshift"]["of_copy_bandwidth"] == 0.1
    result = {"scale": "tiny", "reps": 2, "machine": {"cpus": 2, "load_avg_1m": 1.0, "memory_bandwidth": bw},
              "stages": table, "bandwidth": band, "agreement": harness.agreement(reps), "memory_method": "test",
              "cold_start": {"nightshift_seconds": 8.0, "nightshift_peak_mib": 300.0, "pandas_load_seconds": 4.0,
                             "pandas_load_each": [3.5, 4.5], "pandas_bare_read_seconds": 3.0,
                             "bare_read_ratio": 0.375,
                             "ratio_b_over_a": 0.5, "rows_loaded": {"events": 1000}, "kept_history_seconds": 3.0,
                             "kept_history_peak_mib": 200.0},
              "rerun": {"jobs": ["loans"], "cold_seconds": 10.0, "rerun_seconds": 0.5, "rerun_fraction": 0.05,
                        "rerun_status": {"loans": "reused"}}}
    print_tables(result)
    out = " ".join(capsys.readouterr().out.split())  # Rich wraps the long lines
    assert "2.00×" in out and "5.0%" in out and "reused" in out
    assert "Cold start" in out and "0.50×" in out and "3.50 / 4.50 s" in out and "3.00 s = 0.38×" in out
    assert "kept event history" in out and "3.00 s" in out
