"""Past one machine: a small night on a LocalCluster with two worker processes gives the same outputs.

Ingest and jobs run in the cluster's worker processes (`night.ingest_step` / `job_step`,
which open the warehouse by path), and the same night runs locally in this process; every
Parquet output of the jobs must be equal. The per-series forecasts and XGBoost also run through
the cluster and must agree with local runs.
"""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

pytestmark = pytest.mark.slow

JOBS = ["loans", "inventory"]
TABLES = ["loans", "loan_outcomes", "sales", "inventory"]


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _home(demo_night, root):
    from nightshift.settings import load_settings

    shutil.copytree(demo_night.settings.landing_dir, root / "data" / "landing")
    return load_settings(home=root, seed=7)


def _outputs(build) -> dict[str, pl.DataFrame]:
    """The jobs' tables. The shareable tier's copies are left out: its DP releases are noisy by design,
    drawn afresh in each home (each has its own ledger), and its other tables are the jobs' own."""
    return {str(p.relative_to(build)): pl.read_parquet(p) for p in sorted(build.rglob("*.parquet"))
            if p.relative_to(build).parts[0] != "shareable"}


def test_night_on_cluster_matches_local(demo_night, client, tmp_path):
    from nightshift import ingest, night
    from nightshift.warehouse import Warehouse

    d = demo_night.run_date
    local, remote = _home(demo_night, tmp_path / "local"), _home(demo_night, tmp_path / "remote")
    with Warehouse(local.warehouse_path) as wh:
        local_loads = ingest.ingest(local, wh, d, TABLES)
        local_out = {j: night.run_job(local, wh, d, j, tmp_path / "build-local", local_loads) for j in JOBS}

    remote_loads = client.submit(night.ingest_step, remote, d, TABLES, pure=False).result()
    futures = {j: client.submit(night.job_step, remote, d, j, tmp_path / "build-remote", remote_loads,
                                pure=False) for j in JOBS}
    remote_out = {j: f.result() for j, f in futures.items()}
    ran_on = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(ran_on) == 2  # two worker processes, neither of them this one

    assert {t: x.rows_loaded for t, x in remote_loads.items()} == {t: x.rows_loaded for t, x in local_loads.items()}
    for j in JOBS:
        assert remote_out[j].status == local_out[j].status == "success", remote_out[j].error
        assert remote_out[j].input_hash == local_out[j].input_hash
    a, b = _outputs(tmp_path / "build-local"), _outputs(tmp_path / "build-remote")
    assert a and list(a) == list(b)
    for name in a:  # the booster went through xgboost.dask on one worker: the very model trained here
        assert_frame_equal(a[name], b[name], check_exact=False, rel_tol=1e-9)
    from nightshift.registry import ModelRegistry

    def champion_extra(settings, job) -> dict:
        reg = ModelRegistry(settings.models_dir, job)
        return reg.get(reg.champion()).metadata["extra"]

    # A baseline can win the bake-off (it trains in the job's process, not on Dask); the XGBoost
    # champions must say where they trained, and at least one job's champion is XGBoost here.
    boosted = [j for j in JOBS if not champion_extra(local, j).get("baseline")]
    assert boosted
    for j in boosted:
        assert champion_extra(remote, j)["trained_with"].startswith("xgboost.dask")
        assert champion_extra(local, j)["trained_with"] == "xgboost, in this process"


def test_series_forecasts_on_cluster_match_local(client):
    from nightshift.jobs.sales.parallel import DaskMapper, SerialMapper
    from nightshift.jobs.sales.sarima import Spec
    from nightshift.jobs.sales.task import SeriesTask, run_task

    rng = np.random.default_rng(3)
    tasks = []
    for i in range(4):
        t = np.arange(200)
        y = rng.poisson(20 + 5 * np.sin(2 * np.pi * t / 7) + i).astype(float)
        x = (rng.random(200) < 0.1).astype(float)
        tasks.append(SeriesTask(f"s/{i}", y, x, np.zeros(14), 14, 180, spec=Spec((1, 1, 1), (0, 1, 1, 7), True)))
    with SerialMapper() as serial:
        here = serial.map(run_task, tasks)
    with DaskMapper(client) as cluster:
        there = cluster.map(run_task, tasks)
    assert [r.key for r in there] == [r.key for r in here]
    for a, b in zip(here, there, strict=True):
        assert a.kind == b.kind
        np.testing.assert_allclose(a.forecast.mean, b.forecast.mean, rtol=1e-6)


def test_xgboost_dask_learns_like_local(client):
    from sklearn.metrics import roc_auc_score

    from nightshift.modeling.distributed import train_xgb

    rng = np.random.default_rng(5)
    x = rng.normal(size=(4000, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=4000) > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1}
    local = train_xgb(params, x[:3000], y[:3000], rounds=30)
    dist = train_xgb(params, x[:3000], y[:3000], rounds=30, client=client, rows_per_worker=1000)
    import xgboost as xgb

    test = xgb.DMatrix(x[3000:])
    auc_local, auc_dist = roc_auc_score(y[3000:], local.predict(test)), roc_auc_score(y[3000:], dist.predict(test))
    assert auc_dist > 0.85 and abs(auc_dist - auc_local) < 0.02
