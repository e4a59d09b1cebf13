"""The ledger file: kept when the warehouse goes, and failing closed when it is missing, cut or edited."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nightshift.privacy import Count, LedgerBroken, PrivacyLayer, Release, Sum, ledger
from nightshift.privacy.store import GENESIS, Store, sha256
from nightshift.privacy_cli import app
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)
CHANNELS = ["search", "social", "email"]


def settings(home: Path, eps: float = 10.0) -> Settings:
    return Settings(home=home, privacy_budgets={"users": Budget(epsilon=eps)})


def frame(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)  # the data only
    return pl.DataFrame({"user_id": rng.integers(0, 100, 300), "channel": rng.choice(CHANNELS, 300),
                         "cents": rng.integers(0, 5_000, 300)})


def rel(name: str = "by_channel", eps: float = 0.5) -> Release:
    return Release(name, "users", "user_id", keys={"channel": CHANNELS},
                   measures=[Count("n"), Sum("rev", "cents", 0, 5_000)], max_rows_per_unit=2, epsilon=eps)


def release(home: Path, seed: int, name: str = "by_channel", s: Settings | None = None):
    s = s or settings(home)
    with Warehouse(s.warehouse_path) as wh:
        return PrivacyLayer(wh, s, "behavior", RUN).release(rel(name), frame(seed))


@pytest.fixture
def charged(tmp_path) -> Path:
    """A home with three charged releases."""
    for seed, name in ((1, "a"), (2, "b"), (3, "c")):
        release(tmp_path, seed, name)
    return tmp_path


def store(home: Path) -> Store:
    s = settings(home)
    return Store.for_home(s.data_dir, s.reports_dir)


def lines(home: Path) -> list[bytes]:
    return store(home).ledger_path.read_bytes().splitlines(keepends=True)


def write_lines(home: Path, new: list[bytes]) -> None:
    store(home).ledger_path.write_bytes(b"".join(new))


def verify(home: Path):
    # wide, so a long temporary path cannot wrap the message being matched
    return CliRunner().invoke(app, ["verify", "--home", str(home)], env={"COLUMNS": "400"})


def test_entries_are_chained_and_the_anchor_holds_the_head(charged):
    entries = store(charged).verify()
    kinds = [e.data["kind"] for e in entries]
    assert kinds == ["budget", "charge", "charge", "charge"]  # the first release records the budget in force
    raw = lines(charged)
    assert [e.data["prev"] for e in entries] == [GENESIS] + [sha256(line.rstrip(b"\n")) for line in raw[:-1]]
    anchor = json.loads(store(charged).anchor_path.read_text())
    assert anchor["entries"] == 4 and anchor["head"] == entries[-1].hash
    assert store(charged).anchor_path.parent == charged / "reports"  # another folder than the ledger
    assert verify(charged).exit_code == 0


def test_moving_the_warehouse_away_keeps_the_ledger_and_serves_the_same_release(tmp_path):
    s = settings(tmp_path)
    first = release(tmp_path, 1, s=s)
    s.warehouse_path.rename(tmp_path / "moved.duckdb")  # as if deleted, then rebuilt from landing
    again = release(tmp_path, 1, s=s)
    assert (again.reused, again.epsilon, again.release_id) == (True, 0.0, first.release_id)
    assert again.table.equals(first.table)  # the stored noisy numbers, not a second noisy copy
    assert ledger.ledger_rows(store(tmp_path))["epsilon"].to_list() == [0.5]


@pytest.mark.parametrize("damage", ["edit_middle", "edit_last", "drop_middle", "drop_last", "reorder"])
def test_an_edited_or_shortened_ledger_fails_closed(charged, damage):
    raw = lines(charged)
    if damage.startswith("edit"):
        i = 1 if damage == "edit_middle" else len(raw) - 1
        raw[i] = raw[i].replace(b'"epsilon":0.5', b'"epsilon":0.05')
    elif damage == "drop_middle":
        del raw[2]
    elif damage == "drop_last":
        del raw[-1]
    else:
        raw[1], raw[2] = raw[2], raw[1]
    write_lines(charged, raw)
    with pytest.raises(LedgerBroken, match="cannot be trusted") as e:
        release(charged, 4, "d")
    assert "Restore the folder" in str(e.value) and "nightshift privacy verify" in str(e.value)
    with Warehouse(settings(charged).warehouse_path) as wh:  # the jobs' readers fail closed as well
        with pytest.raises(LedgerBroken):
            ledger.nightly(wh.cursor, "behavior", "a", RUN, RUN)
    out = verify(charged)
    assert out.exit_code == 1 and "cannot be trusted" in out.output


def test_a_cut_last_line_names_the_fix_only_a_crashed_append_may_use(charged):
    raw = lines(charged)
    write_lines(charged, [*raw, b'{"kind":"charge","epsilon":0.'])  # a charge interrupted mid-write
    size = sum(len(line) for line in raw)
    with pytest.raises(LedgerBroken, match=f"truncate -s {size} "):
        store(charged).entries()
    write_lines(charged, raw)  # what that truncate does: the anchor still matches, the ledger verifies
    assert len(store(charged).verify()) == 4
    write_lines(charged, [*raw[:-1], raw[-1][:40]])  # the last whole entry cut: the anchor says 4
    with pytest.raises(LedgerBroken, match="incomplete entry"):
        store(charged).entries()
    write_lines(charged, raw[:-1])
    with pytest.raises(LedgerBroken, match="has 3 entries but the anchor records 4"):
        store(charged).entries()


@pytest.mark.parametrize("loss", ["ledger_file", "whole_folder"])
def test_a_missing_ledger_fails_closed_while_the_anchor_remembers(charged, loss):
    backup = charged / "backup"
    shutil.copytree(store(charged).folder, backup)
    if loss == "ledger_file":
        store(charged).ledger_path.unlink()
    else:
        shutil.rmtree(store(charged).folder)
    with pytest.raises(LedgerBroken, match="the ledger is missing but the anchor records 4"):
        release(charged, 1, "a")  # would otherwise draw fresh noise for a release already made
    shutil.rmtree(store(charged).folder, ignore_errors=True)
    shutil.copytree(backup, store(charged).folder)  # the restore the message asks for
    assert verify(charged).exit_code == 0
    assert release(charged, 1, "a").reused


def test_a_missing_or_altered_stored_release_fails_closed(charged):
    first = store(charged).verify()[1]
    path = store(charged).folder / first.data["file"]
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other bytes
    assert verify(charged).exit_code == 1
    with pytest.raises(LedgerBroken, match="does not match its hash"):
        ledger.find(store(charged), first.data["release_id"])
    path.unlink()
    with pytest.raises(LedgerBroken, match="is missing"):
        release(charged, 4, "d")


def test_a_lost_anchor_is_written_again_by_the_next_charge(charged):
    # The anchor only witnesses the ledger; the chain itself still verifies without it.
    store(charged).anchor_path.unlink()
    assert len(store(charged).verify()) == 4
    release(charged, 4, "d")
    assert json.loads(store(charged).anchor_path.read_text())["entries"] == 5


def test_the_old_warehouse_ledger_is_adopted_not_forgotten(tmp_path):
    # A home upgraded from the in-warehouse ledger: its charges and stored values must carry over.
    s = settings(tmp_path, eps=1.0)
    first = release(tmp_path, 1, s=s)  # made with the file ledger, then moved back as if it were old
    table = ledger.find(store(tmp_path), first.release_id).table
    shutil.rmtree(store(tmp_path).folder)
    store(tmp_path).anchor_path.unlink()
    with Warehouse(s.warehouse_path) as wh:
        wh.execute("create table _privacy_ledger (release_id varchar, job varchar, release_name varchar, "
                   "run_date date, dataset varchar, privacy_unit varchar, window_days integer, epsilon double, "
                   "budget double, charged_at timestamp default current_timestamp)")
        wh.execute("create table _privacy_releases (release_id varchar, input_hash varchar, meta json, payload blob)")
        wh.execute("insert into _privacy_ledger values ($1, 'behavior', 'by_channel', $2, 'users', 'user_id', 365, "
                   "0.75, 1.0, now())", [first.release_id, RUN])
        meta = json.dumps({"queries": first.queries, "suppressed": []})
        wh.execute("insert into _privacy_releases values ($1, 'h', $2, $3)",
                   [first.release_id, meta, table.write_ipc(None).getvalue()])
    again = release(tmp_path, 1, s=s)
    assert (again.reused, again.epsilon) == (True, 0.0) and again.table.equals(first.table)
    assert release(tmp_path, 2, "other", s=s).refused  # 0.75 of 1.0 was spent before the upgrade
    assert [e.data["kind"] for e in store(tmp_path).verify()] == ["budget", "charge"]
