"""The model registry: atomic versions, champion/challenger, rollback, corrupt-artifact fallback."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nightshift.modeling import FnFormat
from nightshift.registry import ModelLoadError, ModelRegistry, RegistryError
from nightshift.registry_cli import app


def _save(model: dict, d: Path) -> None:
    (d / "model.json").write_text(json.dumps(model))


def _load(d: Path) -> dict:
    return json.loads((d / "model.json").read_text())


FMT = FnFormat("json-test", _save, _load)


def _store(reg: ModelRegistry, weight: float, day: int = 1, auc: float = 0.8) -> str:
    return reg.save({"w": weight}, FMT, run_date=date(2026, 3, day), training_window=(date(2025, 1, 1), date(2026, 1, 1)),
                    data_hash=f"h{weight}", features=["a", "b"], params={"depth": 3}, metrics={"auc": auc}).version


def test_save_writes_version_with_metadata(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans", margin=0.01)
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, day=2)
    assert (v1, v2) == ("v0001-20260301", "v0002-20260302")
    meta = reg.get(v2).metadata
    assert meta["features"] == ["a", "b"] and meta["metrics"] == {"auc": 0.8}
    assert meta["training_window"] == {"start": "2025-01-01", "end": "2026-01-01"}
    assert "xgboost" in meta["libraries"] and "model.json" in meta["files"]
    assert not list((tmp_path / "loans").glob(".tmp-*"))  # no temp folder left behind
    assert _store(reg, 2.0, day=2) == v2  # an identical re-run of the same date reuses its version
    assert reg.versions() == [v1, v2]


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")

    def broken(model: object, d: Path) -> None:
        (d / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError):
        reg.save({}, FnFormat("broken", broken, _load), run_date=date(2026, 3, 1),
                 training_window=(date(2026, 1, 1), date(2026, 2, 1)), data_hash="h", features=[], params={}, metrics={})
    assert reg.versions() == [] and not list((tmp_path / "loans").glob(".tmp-*"))


def test_promotes_only_when_better_by_margin(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans", margin=0.01)
    v1, v2, v3 = _store(reg, 1.0), _store(reg, 2.0, 2), _store(reg, 3.0, 3)
    first = reg.decide(v1, metric="auc", challenger_value=0.80, champion_value=None)
    assert first.promoted and "no champion" in first.reason and reg.champion() == v1
    small = reg.decide(v2, metric="auc", challenger_value=0.805, champion_value=0.80)
    assert not small.promoted and reg.champion() == v1 and "does not beat" in small.reason
    assert small.champion == v1
    big = reg.decide(v3, metric="auc", challenger_value=0.83, champion_value=0.80)
    assert big.promoted and reg.champion() == v3 and big.previous == v1
    # lower-is-better metrics: a higher log loss never wins
    v4 = _store(reg, 4.0, 4)
    assert not reg.decide(v4, metric="log_loss", challenger_value=0.5, champion_value=0.3,
                          higher_is_better=False).promoted
    assert [h["promoted"] for h in reg.history()] == [True, False, True, False]


def test_rollback_restores_previous_champion(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans", margin=0.0)
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    reg.promote(v2)
    assert reg.champion() == v2
    assert reg.rollback() == v1 and reg.champion() == v1
    assert reg.load_champion(FMT).model == {"w": 1.0}
    with pytest.raises(RegistryError, match="no previous champion"):
        reg.rollback()
    with pytest.raises(RegistryError, match="no model version"):
        reg.promote("v0099-20260301")


@pytest.mark.parametrize("damage", ["corrupt", "missing_file", "missing_dir", "bad_loader"])
def test_broken_champion_falls_back_with_warning(tmp_path: Path, damage: str) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2)
    reg.promote(v1)
    reg.promote(v2)
    art = tmp_path / "loans" / v2
    loader = FMT
    if damage == "corrupt":
        (art / "model.json").write_text('{"w": 9')
    elif damage == "missing_file":
        (art / "model.json").unlink()
    elif damage == "missing_dir":
        import shutil

        shutil.rmtree(art)
    else:
        def loader(d: Path) -> dict:  # noqa: F811 - a loader that fails only on v2
            if d.name == v2:
                raise ValueError("unreadable")
            return _load(d)

    with pytest.warns(RuntimeWarning, match="previous champion"):
        loaded = reg.load_champion(loader)
    model, version = loaded
    assert version == v1 and model == {"w": 1.0} and loaded.warnings
    with pytest.raises(ModelLoadError, match=v2):
        reg.load(v2, loader)


def test_no_loadable_champion_is_a_clear_error(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, "loans")
    with pytest.raises(ModelLoadError, match="no champion"):
        reg.load_champion(FMT)
    v1 = _store(reg, 1.0)
    reg.promote(v1)
    (tmp_path / "loans" / v1 / "model.json").write_text("garbage")
    with pytest.raises(ModelLoadError, match="checksums"):
        reg.load_champion(FMT)
    with pytest.raises(ModelLoadError, match="refusing to promote"):
        reg.promote(v1)


def test_cli_list_promote_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path))
    reg = ModelRegistry(tmp_path / "models", "loans")
    v1, v2 = _store(reg, 1.0), _store(reg, 2.0, 2, auc=0.9)
    runner = CliRunner()
    assert runner.invoke(app, ["promote", "loans", v1]).exit_code == 0
    assert runner.invoke(app, ["promote", "loans", v2]).exit_code == 0
    out = runner.invoke(app, ["list", "loans"])
    assert out.exit_code == 0 and v2 in out.output and "0.9000" in out.output
    assert runner.invoke(app, ["rollback", "loans"]).exit_code == 0 and reg.champion() == v1
    bad = runner.invoke(app, ["promote", "loans", "v0042-20260101"])
    assert bad.exit_code == 1 and "no model version" in bad.output


def test_a_lost_champion_pointer_is_refused_not_replaced_by_a_silent_promotion(tmp_path):
    from nightshift.registry import POINTER

    reg = ModelRegistry(tmp_path, "loans")
    first = _store(reg, 1.0)
    assert reg.champion() is None  # a first version and no champion yet: not "lost"
    reg.promote(first)
    (reg.root / POINTER).unlink()
    with pytest.raises(RegistryError, match="champion pointer .* is missing .*`nightshift models promote loans"):
        reg.champion()
    reg.promote(first)  # the documented fix
    assert reg.champion() == first
