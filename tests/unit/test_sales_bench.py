"""The sales benchmark does the same fits on both sides and reports every figure (no timing asserts)."""

from __future__ import annotations

from datetime import date

import pytest


@pytest.mark.slow
def test_bench_sales_reports_both_sides_on_the_same_fits():
    from nightshift.jobs.sales_bench import bench_sales

    out = bench_sales("tiny", workers=2, max_series=3, end=date(2026, 3, 31), log=lambda *_: None)
    assert out["series"] == 3 and out["workers"] == 2
    for key in ("naive_seconds", "parallel_seconds", "naive_series_per_s", "parallel_series_per_s", "speedup",
                "parallel_startup_seconds"):
        assert out[key] > 0, key
    assert out["mase_rel_diff"] < 1e-3  # same fits, same answers, whatever the BLAS threads
    assert out["mase_naive_loop"] > 0 and isinstance(out["meets_target"], bool)
