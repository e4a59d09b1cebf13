"""The model registry's records, read back: the audit history of every decision, the metadata of a
stored version, `keep()`, the champion pointer file, and the errors people see when a folder is damaged.

`test_registry.py` covers the happy paths (save, promote, rollback, fallback); these tests pin what
the history and metadata say, since the CLI (`nightshift models list`) and people auditing a
promotion read them, and the edge cases of saving (re-runs, temp folders, lost pointers).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import types
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

import nightshift.registry as registry
from nightshift.modeling import FnFormat
from nightshift.registry import POINTER, ModelLoadError, ModelRegistry, RegistryError


def _save(model: dict, d: Path) -> None:
    (d / "model.json").write_text(json.dumps(model))


def _load(d: Path) -> dict:
    return json.loads((d / "model.json").read_text())


FMT = FnFormat("json-test", _save, _load)
WINDOW = (date(2025, 1, 1), date(2026, 1, 1))


def _store(reg: ModelRegistry, weight: float, day: int = 1, fmt: FnFormat = FMT, **kw) -> str:
    args = {"data_hash": f"h{weight}", "features": ["a", "b"], "params": {"depth": 3}, "metrics": {"auc": 0.8}} | kw
    return reg.save({"w": weight}, fmt, run_date=date(2026, 3, day), training_window=WINDOW, **args).version


def _recent(stamp: str) -> bool:
    """An ISO timestamp in UTC, written within the last minute."""
    at = datetime.fromisoformat(stamp)
    return at.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - at) < timedelta(minutes=1)


def _pointer_file(reg: ModelRegistry) -> dict:
    return json.loads((reg.root / POINTER).read_text())


# -- the history of decisions ----------------------------------------------------------------------
def test_a_challenge_is_recorded_with_everything_it_was_decided_on(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans", margin=0.01)
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    d = reg.decide(v2, metric="auc", challenger_value=0.83, champion_value=0.8, holdout={"rows": 120})
    assert (d.promoted, d.champion, d.challenger, d.previous) == (True, v2, v2, v1)
    assert (d.metric, d.challenger_value, d.champion_value, d.margin) == ("auc", 0.83, 0.8, 0.01)
    entry = reg.history()[-1]
    assert _recent(entry.pop("at"))
    assert entry == {"action": "challenge", "challenger": v2, "champion": v1, "metric": "auc",
                     "challenger_value": 0.83, "champion_value": 0.8, "margin": 0.01, "promoted": True,
                     "reason": d.reason, "holdout": {"rows": 120}}
    assert d.reason == (f"challenger {v2} auc 0.8300 vs champion {v1} 0.8000: beats it by the margin 0.01 (+0.0300)")
    # without a holdout description the entry still has one (empty), so readers need no special case
    v3 = _store(reg, 3.0, 3)
    reg.decide(v3, metric="auc", challenger_value=0.7, champion_value=0.83)
    assert reg.history()[-1]["holdout"] == {}


@pytest.mark.parametrize(("challenger", "champion", "hib", "promoted", "tail"), [
    (0.5, 0.3, True, True, "beats it by the margin 0 (+0.2000)"),
    (0.5, 0.5, True, False, "does not beat it by the margin 0 (+0.0000)"),  # a tie is no improvement
    (0.5, 0.7, True, False, "does not beat it by the margin 0 (-0.2000)"),
    (0.5, 0.7, False, True, "beats it by the margin 0 (+0.2000)"),  # lower is better: 0.5 improves on 0.7
])
def test_the_reason_says_by_how_much_the_challenger_beats_the_champion(tmp_path: Path, challenger: float,
                                                                        champion: float, hib: bool, promoted: bool,
                                                                        tail: str) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    d = reg.decide(v2, metric="loss", challenger_value=challenger, champion_value=champion, higher_is_better=hib)
    assert d.promoted is promoted and d.reason.endswith(f": {tail}")
    assert d.champion == (v2 if promoted else v1) == reg.champion()


def test_the_default_margin_is_zero(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    assert reg.margin == 0.0
    assert reg.decide(v2, metric="auc", challenger_value=0.81, champion_value=0.8).promoted


def test_the_champion_challenging_itself_changes_nothing(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    reg.promote(v2)
    d = reg.decide(v2, metric="auc", challenger_value=0.9, champion_value=None)
    assert not d.promoted and d.champion == v2 and d.reason == f"{v2} is already the champion"
    assert reg.history()[-1]["promoted"] is False
    assert reg.rollback() == v1  # v2 was not stacked a second time: one rollback reaches v1


def test_a_champion_that_cannot_be_evaluated_is_replaced(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans", margin=0.5)
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    d = reg.decide(v2, metric="auc", challenger_value=0.6, champion_value=math.nan)
    assert d.promoted and reg.champion() == v2
    assert d.reason == f"the champion {v1} could not be evaluated on the holdout"


def test_a_challenger_whose_metric_is_not_a_number_is_not_promoted(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    d = reg.decide(v2, metric="auc", challenger_value=math.nan, champion_value=0.8)
    assert not d.promoted and reg.champion() == v1 and d.champion == v1
    assert d.reason == "the challenger's auc is not a number"
    assert reg.history()[-1]["promoted"] is False


def test_keep_records_that_the_champion_stays(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans", margin=0.02)
    v1, v2, v3, v4 = (_store(reg, float(w), w) for w in (1, 2, 3, 4))
    for v in (v1, v2, v3):
        reg.promote(v)
    d = reg.keep(v4, metric="auc", reason="only 3 holdout rows")
    assert (d.promoted, d.champion, d.challenger, d.previous, d.metric) == (False, v3, v4, v3, "auc")
    assert math.isnan(d.challenger_value) and d.champion_value is None
    assert (d.margin, d.reason) == (0.02, "only 3 holdout rows")
    assert reg.champion() == v3 and _pointer_file(reg)["stack"] == [v1, v2, v3]
    entry = reg.history()[-1]
    assert _recent(entry.pop("at"))
    assert entry == {"action": "challenge", "challenger": v4, "champion": v3, "metric": "auc", "promoted": False,
                     "reason": "only 3 holdout rows"}


def test_keep_without_a_champion_promotes_nothing(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1 = _store(reg, 1.0)
    d = reg.keep(v1, metric="auc", reason="no holdout")
    assert not d.promoted and d.champion == d.previous == v1  # the version in use is tonight's
    assert reg.champion() is None and reg.history()[-1]["champion"] == v1


def test_keep_of_an_unknown_version_is_refused_and_records_nothing(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    _store(reg, 1.0)
    with pytest.raises(RegistryError, match="no model version 'v0009-20260301'"):
        reg.keep("v0009-20260301", metric="auc", reason="x")
    assert reg.history() == []


def test_promotions_and_rollbacks_are_recorded(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    reg.promote(v2, reason="better on last week")
    reg.rollback()
    history = reg.history()
    assert all(_recent(h.pop("at")) for h in history)
    assert history == [{"action": "promote", "version": v1, "reason": "promoted by hand"},
                       {"action": "promote", "version": v2, "reason": "better on last week"},
                       {"action": "rollback", "from": v2, "to": v1}]


# -- the pointer file ------------------------------------------------------------------------------
def test_the_pointer_file_names_the_job_and_its_champion(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    assert _pointer_file(reg) == {"job": "loans", "stack": [], "history": [], "champion": None}
    reg.promote(v1)
    reg.promote(v2)
    assert _pointer_file(reg)["champion"] == v2
    reg.rollback()
    assert _pointer_file(reg)["champion"] == v1
    # a pointer restored by hand after it was lost is a complete one again
    (reg.root / POINTER).unlink()
    reg.promote(v2)
    assert {k: v for k, v in _pointer_file(reg).items() if k != "history"} == {
        "job": "loans", "stack": [v2], "champion": v2}


def test_a_pointer_without_stack_or_history_reads_as_empty(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1 = _store(reg, 1.0)
    (reg.root / POINTER).write_text(json.dumps({"job": "loans"}))  # written by hand, or by an old version
    assert reg.champion() is None and reg.history() == []
    reg.promote(v1)
    assert reg.champion() == v1 and [h["action"] for h in reg.history()] == ["promote"]


def test_a_pointer_that_is_not_json_is_a_clear_error(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    _store(reg, 1.0)
    (reg.root / POINTER).write_text("{not json")
    with pytest.raises(RegistryError, match=r"champion\.json is not valid JSON .*restore it or delete it"):
        reg.champion()


def test_a_bad_job_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not a job name: 'Loans-2'"):
        ModelRegistry(tmp_path, "Loans-2")


# -- saving: metadata and re-runs ------------------------------------------------------------------
def test_the_metadata_records_the_run(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    mv = reg.save({"w": 1}, FMT, run_date=date(2026, 3, 1), training_window=WINDOW, data_hash="abc",
                  features=("a", "b"), params={"n": np.int64(3), "lr": np.float32(0.5), "dir": Path("/x/y")},
                  metrics={"auc": np.float32(0.75)}, holdout={"rows": 10}, extra={"candidate": "xgb"})
    meta = reg.get(mv.version).metadata
    assert _recent(meta.pop("created_at"))
    assert meta.pop("libraries") == registry.library_versions()
    assert set(meta.pop("files")) == {"model.json"}
    assert len(meta.pop("fingerprint")) == 64
    assert meta == {"job": "loans", "version": "v0001-20260301", "run_date": "2026-03-01", "format": "json-test",
                    "training_window": {"start": "2025-01-01", "end": "2026-01-01"}, "data_hash": "abc",
                    "features": ["a", "b"], "params": {"n": 3, "lr": 0.5, "dir": "/x/y"}, "metrics": {"auc": 0.75},
                    "holdout": {"rows": 10}, "extra": {"candidate": "xgb"}}
    assert mv.metadata == reg.get(mv.version).metadata  # what save returns is what is stored
    plain = reg.get(_store(reg, 2.0, 2)).metadata
    assert plain["holdout"] == {} and "extra" not in plain


def test_library_versions_name_python_and_the_installed_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_LIBRARIES", ("numpy", "no-such-library-nightshift"))
    assert registry.library_versions() == {"python": platform.python_version(),
                                           "numpy": importlib.metadata.version("numpy")}


def test_a_rerun_is_reused_only_when_nothing_that_shapes_the_model_changed(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    first = _store(reg, 1.0, params={"depth": 3, "eta": 0.1})
    assert _store(reg, 1.0, params={"eta": 0.1, "depth": 3}) == first  # the same params in another order
    other = [_store(reg, 1.0, data_hash="other"), _store(reg, 1.0, features=["a"]),
             _store(reg, 1.0, params={"depth": 4, "eta": 0.1}), _store(reg, 1.0, fmt=FnFormat("other", _save, _load))]
    assert len({first, *other}) == 5 and reg.versions() == sorted([first, *other])


def test_a_rerun_after_a_corrupt_version_of_the_same_date_stores_a_new_one(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    first = _store(reg, 1.0)
    (reg.root / first / "metadata.json").write_text("{broken")
    second = _store(reg, 1.0)
    assert second != first and reg.load(second, FMT).model == {"w": 1.0}


def test_artifact_files_are_fsynced_before_the_version_appears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    _store(ModelRegistry(tmp_path, "loans"), 1.0)
    assert any("/.tmp-" in p and p.endswith("/model.json") for p in synced)


def test_artifacts_in_subfolders_are_checksummed(tmp_path: Path) -> None:
    def save(model: dict, d: Path) -> None:  # like a TensorFlow SavedModel: files in folders
        (d / "variables").mkdir()
        (d / "variables" / "weights.json").write_text(json.dumps(model))

    fmt = FnFormat("nested", save, lambda d: json.loads((d / "variables" / "weights.json").read_text()))
    reg = ModelRegistry(tmp_path, "loans")
    version = _store(reg, 1.0, fmt=fmt)
    assert set(reg.get(version).metadata["files"]) == {"variables/weights.json"}
    assert reg.load(version, fmt).model == {"w": 1.0}


def test_saving_after_a_lost_pointer_does_not_create_an_empty_one(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    reg.promote(_store(reg, 1.0))
    (reg.root / POINTER).unlink()
    _store(reg, 2.0, 2)
    assert not (reg.root / POINTER).exists()
    with pytest.raises(RegistryError, match="pointer .* is missing"):
        reg.champion()


def test_an_error_after_the_rename_is_reported_as_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path) -> None:
        raise OSError("fsync of the folder failed")

    monkeypatch.setattr(registry, "fsync_dir", fail)
    with pytest.raises(OSError, match="fsync of the folder failed"):
        _store(ModelRegistry(tmp_path, "loans"), 1.0)


def test_temp_folders_older_than_an_hour_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    reg.root.mkdir(parents=True)
    now = 2_000_000_000.0
    for name, age in ((".tmp-crashed", 3601), (".tmp-hour", 3600), (".tmp-writing", 10)):
        (reg.root / name).mkdir()
        os.utime(reg.root / name, (now - age, now - age))
    (reg.root / ".tmp-dangling").symlink_to(tmp_path / "gone")  # cannot even be stat-ed: left alone
    monkeypatch.setattr(registry, "time", types.SimpleNamespace(time=lambda: now))
    _store(reg, 1.0)
    assert sorted(p.name for p in reg.root.glob(".tmp-*")) == [".tmp-dangling", ".tmp-hour", ".tmp-writing"]


def test_a_temp_folder_with_metadata_is_not_a_version(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1 = _store(reg, 1.0)
    (reg.root / ".tmp-abc").mkdir()
    (reg.root / ".tmp-abc" / "metadata.json").write_text("{}")  # a save that crashed just before its rename
    assert reg.versions() == [v1]


# -- damaged versions: what the errors say ---------------------------------------------------------
def test_unknown_versions_list_the_known_ones(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    with pytest.raises(RegistryError, match=r"no model version 'v0001-20260301' \(known: none\)"):
        reg.get("v0001-20260301")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    with pytest.raises(RegistryError, match=rf"\(known: {v1}, {v2}\)"):
        reg.get("v0009-20260301")


def test_corrupt_metadata_is_reported_and_listed(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    (reg.root / v1 / "metadata.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match=rf"{v1}/metadata\.json is corrupt \("):
        reg.get(v1)
    listed = reg.list()
    assert [(m.version, m.path) for m in listed] == [(v1, reg.root / v1), (v2, reg.root / v2)]
    assert list(listed[0].metadata) == ["error"] and "metadata.json is corrupt" in listed[0].metadata["error"]
    assert listed[1].metadata == reg.get(v2).metadata


def test_verification_names_the_missing_and_the_changed_files(tmp_path: Path) -> None:
    def save(model: dict, d: Path) -> None:
        for name in ("a.json", "b.json", "c.json"):
            (d / name).write_text(json.dumps(model))

    fmt = FnFormat("three", save, lambda d: json.loads((d / "a.json").read_text()))
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2, v3 = (_store(reg, float(w), w, fmt=fmt) for w in (1, 2, 3))
    for name in ("a.json", "b.json"):
        (reg.root / v1 / name).unlink()
        (reg.root / v2 / name).write_text("changed")
    with pytest.raises(ModelLoadError, match=rf"artifact files missing from \S+{v1}: a\.json, b\.json$"):
        reg.load(v1, fmt)
    with pytest.raises(ModelLoadError, match=r"do not match their checksums \(corrupt\): a\.json, b\.json$"):
        reg.load(v2, fmt)
    meta = json.loads((reg.root / v3 / "metadata.json").read_text())
    (reg.root / v3 / "metadata.json").write_text(json.dumps(meta | {"files": {}}))
    with pytest.raises(ModelLoadError, match=rf"{v3}/metadata\.json lists no artifact files"):
        reg.load(v3, fmt)


def test_a_loaded_model_carries_its_metadata_and_a_failed_load_names_the_error(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1 = _store(reg, 1.0)
    assert reg.load(v1, FMT).metadata == reg.get(v1).metadata

    def broken(d: Path) -> None:
        raise ValueError("bad bytes")

    with pytest.raises(ModelLoadError, match=rf"model loans/{v1} failed to load: ValueError: bad bytes"):
        reg.load(v1, broken)


def test_the_fallback_warning_names_the_champion_and_every_problem(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2, v3 = (_store(reg, float(w), w) for w in (1, 2, 3))
    for v in (v1, v2, v3):
        reg.promote(v)
    for v in (v2, v3):
        (reg.root / v / "model.json").write_text("garbage")
    with pytest.warns(RuntimeWarning) as caught:
        loaded = reg.load_champion(FMT)
    assert loaded.version == v1
    (warning,) = caught
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampoline adds frames: see tests/mutation/README.md
        assert warning.filename == __file__  # stacklevel: the warning points at the caller, not the registry
    msg = str(warning.message)
    assert loaded.warnings == [msg]
    assert msg.startswith(f"champion {v3} of 'loans' could not be loaded (model loans/{v3} cannot be used: ")
    assert f"(corrupt): model.json; model loans/{v2} cannot be used: " in msg
    assert msg.endswith(f"using the previous champion {v1}. Retrain, or `nightshift models rollback loans`")
    (reg.root / v1 / "model.json").write_text("garbage")
    with pytest.raises(ModelLoadError, match=rf"could be loaded: model loans/{v3} .*model\.json; model loans/{v2} "):
        reg.load_champion(FMT)
