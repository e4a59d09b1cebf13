"""The sales benchmark times nightshift's night, the cold pool, the naive loop and the peer, and reports every figure.

No timing asserts: figures only, plus the accuracy checks that make the comparison fair.
"""

from __future__ import annotations

from datetime import date

import pytest


@pytest.mark.slow
def test_bench_sales_reports_every_side_on_the_same_series():
    from nightshift.bench.sales import bench_sales

    out = bench_sales("tiny", workers=2, max_series=3, end=date(2026, 3, 31), log=lambda *_: None, peer_series=2)
    assert out["series"] == 3 and out["workers"] == 2
    for side in ("naive", "parallel", "nightly"):
        assert out[f"{side}_seconds"] > 0 and out[f"{side}_series_per_s"] > 0, side
    assert out["speedup"] > 0 and out["speedup_parallel_same_work"] > 0
    assert out["mase_rel_diff_parallel"] < 1e-3  # the cold pool does the naive loop's very fits
    # the night reuses last night's orders (selected yesterday: nothing is re-selected tonight)
    assert out["reselected_tonight"] == 0
    assert out["mase_naive"] > 0 and out["mase_nightly"] > 0 and isinstance(out["meets_target"], bool)
    assert out["mase_nightly_by_method"]["model"] == out["mase_nightly"]
    assert {"sarima", "ets", "theta", "combination", "seasonal_naive", "mean"} <= out["mase_nightly_by_method"].keys()
    peer = out["peer"]  # statsforecast is in the bench extra, which the tests install
    assert peer["series"] == 2 and peer["series_per_s"] > 0 and peer["job_series_per_s"] > 0
    assert all(peer[f"mase_{m}"] > 0 for m in ("AutoARIMA", "AutoETS", "AutoTheta")) and peer["mase_job"] > 0
    assert peer["mase_job_by_method"]["model"] == peer["mase_job"]
