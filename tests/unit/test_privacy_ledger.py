"""The budget ledger: idempotent releases, refusal at exhaustion, charge before reveal, races, restarts."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nightshift.privacy import BudgetExceeded, Count, PrivacyLayer, Release, Sum
from nightshift.privacy import ledger as ledger_mod
from nightshift.privacy.layer import PrivacyLayer as _Layer
from nightshift.privacy.store import Store
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)
CHANNELS = ["search", "social", "email"]


def settings(home: Path, eps: float = 1.0) -> Settings:
    return Settings(home=home, privacy_budgets={"users": Budget(epsilon=eps), "households": Budget(epsilon=eps)})


def frame(seed: int, n: int = 400) -> pl.DataFrame:
    rng = np.random.default_rng(seed)  # the data only
    return pl.DataFrame({"user_id": rng.integers(0, 150, n), "channel": rng.choice(CHANNELS, n),
                         "cents": rng.integers(0, 5_000, n)})


def rel(eps: float, name: str = "by_channel", dataset: str = "users") -> Release:
    return Release(name, dataset, "user_id", keys={"channel": CHANNELS},
                   measures=[Count("n"), Sum("rev", "cents", 0, 5_000)], max_rows_per_unit=3, epsilon=eps)


def charges(wh: Warehouse) -> pl.DataFrame:
    return ledger_mod.ledger_rows(wh.cursor)


@pytest.fixture
def wh(tmp_path):
    with Warehouse(settings(tmp_path).warehouse_path) as w:
        yield w


def test_same_input_reuses_the_stored_release_and_spends_nothing(wh, tmp_path):
    s = settings(tmp_path)
    first = PrivacyLayer(wh, s, "behavior", RUN).release(rel(0.3), frame(1))
    again = PrivacyLayer(wh, s, "behavior", RUN).release(rel(0.3), frame(1).sample(fraction=1.0, shuffle=True, seed=5))
    assert (first.epsilon, first.reused) == (0.3, False)
    assert (again.epsilon, again.reused, again.release_id) == (0.0, True, first.release_id)  # row order is irrelevant
    assert again.table.equals(first.table)  # the stored noisy numbers, not fresh noise
    changed = PrivacyLayer(wh, s, "behavior", RUN).release(rel(0.3), frame(2))
    next_day = PrivacyLayer(wh, s, "behavior", RUN + timedelta(days=1)).release(rel(0.3), frame(1))
    assert changed.release_id != first.release_id and changed.epsilon == 0.3 and not changed.reused
    assert next_day.release_id not in (first.release_id, changed.release_id) and next_day.epsilon == 0.3
    assert charges(wh)["epsilon"].sum() == pytest.approx(0.9) and charges(wh).height == 3


def test_refusal_at_exhaustion_keeps_the_last_good_numbers(wh, tmp_path):
    layer = PrivacyLayer(wh, settings(tmp_path), "behavior", RUN)
    layer.release(rel(0.4), frame(1))
    good = layer.release(rel(0.4), frame(2))
    refused = layer.release(rel(0.4), frame(3))
    assert good.refused is None and refused.refused is not None
    for text in ("'users'", "2025-03-02..2026-03-01", "ε=0.8", "budget ε=1", "needs ε=0.4", "lower this release's epsilon",
                 "privacy_budgets.users.epsilon"):
        assert text in refused.refused, text
    assert refused.stale and refused.epsilon == 0 and refused.release_id == good.release_id
    assert refused.table.equals(good.table)
    assert charges(wh)["epsilon"].sum() == pytest.approx(0.8)
    with pytest.raises(BudgetExceeded) as e:
        layer.release(rel(0.4), frame(4), strict=True)
    assert (e.value.dataset, e.value.spent, e.value.budget) == ("users", pytest.approx(0.8), 1.0)
    # Another dataset has its own budget; a release that still fits is charged.
    assert PrivacyLayer(wh, settings(tmp_path), "energy", RUN).release(rel(0.9, dataset="households"), frame(3)).epsilon == 0.9
    assert layer.release(rel(0.2, name="small"), frame(3)).epsilon == 0.2


def test_budget_window_slides_and_covers_backfills(wh, tmp_path):
    s = settings(tmp_path)
    PrivacyLayer(wh, s, "behavior", RUN).release(rel(1.0), frame(1))
    assert PrivacyLayer(wh, s, "behavior", RUN + timedelta(days=364)).release(rel(0.1), frame(2)).refused
    assert PrivacyLayer(wh, s, "behavior", RUN - timedelta(days=100)).release(rel(0.1), frame(2)).refused  # backfill
    later = PrivacyLayer(wh, s, "behavior", RUN + timedelta(days=365)).release(rel(0.5), frame(2))
    assert later.refused is None and later.epsilon == 0.5


def test_charge_is_committed_before_values_are_returned(wh, tmp_path, monkeypatch):
    s = settings(tmp_path)
    seen = {}
    real_reveal = _Layer._reveal

    def spying_reveal(self, release, stored, charged):
        # Through a fresh Store, as a second process would see it: the charge and values are on disk.
        other = Store.for_home(s.data_dir, s.reports_dir)
        charged = [e.data for e in other.verify() if e.data["kind"] == "charge"]
        seen["ledger"] = [(d["release_id"], d["epsilon"]) for d in charged]
        seen["stored"] = ledger_mod.find(other, stored.release_id).table
        return real_reveal(self, release, stored, charged)

    monkeypatch.setattr(_Layer, "_reveal", spying_reveal)
    res = PrivacyLayer(wh, s, "behavior", RUN).release(rel(0.3), frame(1))
    assert seen["ledger"] == [(res.release_id, 0.3)] and seen["stored"].equals(res.table)


def test_a_crash_never_reveals_uncharged_values(wh, tmp_path, monkeypatch):
    s = settings(tmp_path)
    real_append = Store.append

    def full_disk(self, entries, records):
        if any(r["kind"] == "charge" for r in records):
            raise OSError("disk full")
        return real_append(self, entries, records)

    monkeypatch.setattr(Store, "append", full_disk)  # fails while charging
    with pytest.raises(OSError, match="disk full"):
        PrivacyLayer(wh, s, "behavior", RUN).release(rel(0.3), frame(1))
    monkeypatch.undo()
    assert charges(wh).height == 0  # nothing charged, nothing returned

    def crash_after_commit(self, *a):
        raise RuntimeError("killed")

    monkeypatch.setattr(_Layer, "_reveal", crash_after_commit)
    with pytest.raises(RuntimeError, match="killed"):
        PrivacyLayer(wh, s, "behavior", RUN).release(rel(0.3), frame(1))
    monkeypatch.undo()
    assert charges(wh)["epsilon"].to_list() == [0.3]  # charged although the caller never saw values
    res = PrivacyLayer(wh, s, "behavior", RUN).release(rel(0.3), frame(1))
    assert res.reused and res.epsilon == 0  # the rerun serves what was charged; no fresh noise


def test_threads_with_their_own_warehouses_cannot_both_spend_the_last_budget(tmp_path, monkeypatch):
    # As in a night: each job thread opens its own Warehouse (here even its own file). The early check
    # is off and a sleep sits between the budget check and the append, so only the ledger's lock
    # stands between three charges of 0.6 and a budget of 1.0.
    monkeypatch.setattr(_Layer, "_check_budget", lambda self, charge: None)
    real_check = ledger_mod.check

    def slow_check(entries, charge):
        limit = real_check(entries, charge)
        time.sleep(0.3)
        return limit

    monkeypatch.setattr(ledger_mod, "check", slow_check)
    s, barrier, results = settings(tmp_path), threading.Barrier(3), []

    def run(seed: int) -> None:
        with Warehouse(tmp_path / f"w{seed}.duckdb") as own:
            layer = PrivacyLayer(own, s, "behavior", RUN)
            barrier.wait()
            results.append(layer.release(rel(0.6), frame(seed)))

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.epsilon for r in results) == [0.0, 0.0, 0.6]
    assert sum(r.refused is not None for r in results) == 2
    assert ledger_mod.ledger_rows(Store.for_home(s.data_dir, s.reports_dir))["epsilon"].sum() == pytest.approx(0.6)


def _race_worker(home: str, seed: int, barrier, out) -> None:
    s = settings(Path(home))
    shared, own = frame(0), frame(seed)
    # Its own warehouse file: nothing but the ledger's file lock orders the two processes.
    with Warehouse(Path(home) / f"w{seed}.duckdb") as wh:
        layer = PrivacyLayer(wh, s, "behavior", RUN)
        barrier.wait()
        a = layer.release(rel(0.2, name="shared"), shared)
        b = layer.release(rel(0.6, name="own"), own)
    out.put((a.epsilon, a.reused, b.epsilon, b.refused is not None))


def test_two_processes_racing_cannot_double_spend(tmp_path):
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(str(tmp_path), seed, barrier, out)) for seed in (1, 2)]
    for p in procs:
        p.start()
    got = sorted(out.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    # The same release made by both: charged once, served again once. The last budget: spent once.
    assert sorted((g[0], g[1]) for g in got) == [(0.0, True), (0.2, False)]
    assert sorted((g[2], g[3]) for g in got) == [(0.0, True), (0.6, False)]
    s = settings(tmp_path)
    rows = ledger_mod.ledger_rows(Store.for_home(s.data_dir, s.reports_dir))
    assert rows["epsilon"].sum() == pytest.approx(0.8) and rows.height == 2


def test_budget_survives_a_restart(tmp_path):
    s = settings(tmp_path)
    with Warehouse(s.warehouse_path) as wh:
        first = PrivacyLayer(wh, s, "behavior", RUN).release(rel(0.7), frame(1))
    with Warehouse(s.warehouse_path) as wh:  # a new process would open it just like this
        layer = PrivacyLayer(wh, s, "behavior", RUN)
        assert layer.budget_left("users")["spent"] == pytest.approx(0.7)
        again = layer.release(rel(0.7), frame(1))
        assert again.reused and again.table.equals(first.table)
        assert layer.release(rel(0.7), frame(2)).refused
