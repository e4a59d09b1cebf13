"""Keys of a release come only from a declared public list or a DP key selection (δ in the ledger);
a key read from the data is refused; values outside the list are counted as "other"."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from nightshift.privacy import Count, KeySelection, PrivacyLayer, Release, keys
from nightshift.privacy.store import Store
from nightshift.settings import Budget, Settings, SettingsError, load_settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)
SELECTION = KeySelection("region_keys", "users", "user_id", "region", "loan_regions", epsilon=1.0, delta=1e-6)


def _settings(home: Path, public: dict[str, list[str]]) -> Settings:
    return Settings(home=home, privacy_budgets={"users": Budget(epsilon=10.0)}, privacy_public_keys=public)


def _frame() -> pl.DataFrame:
    """400 users in north, 300 in south, and one user alone in a rare region."""
    regions = ["north"] * 400 + ["south"] * 300 + ["atlantis"]
    return pl.DataFrame({"user_id": list(range(len(regions))), "region": regions})


def _charges(s: Settings) -> list[dict]:
    return [e.data for e in Store.for_home(s.data_dir, s.reports_dir).verify() if e.data["kind"] == "charge"]


def test_the_threshold_is_opendps_smallest_for_the_declared_delta():
    at = keys.threshold(SELECTION)
    eps, delta = keys.privacy_loss(SELECTION, at)
    assert eps == pytest.approx(SELECTION.epsilon) and delta <= SELECTION.delta
    assert keys.privacy_loss(SELECTION, at - 1)[1] > SELECTION.delta


def test_key_selection_keeps_common_values_drops_a_lone_one_and_records_delta(tmp_path):
    s = _settings(tmp_path, {})
    with Warehouse(s.warehouse_path) as wh:
        layer = PrivacyLayer(wh, s, "loans", RUN)
        chosen = layer.public_keys(SELECTION, _frame())
        again = PrivacyLayer(wh, s, "loans", RUN).public_keys(SELECTION, _frame())
    assert chosen[:-1] == ["north", "south"] and chosen[-1] == keys.OTHER  # atlantis: one user, never named
    assert again == chosen  # the stored selection is re-served: no fresh noise
    (charge,) = _charges(s)  # ... and no second charge
    assert charge["release"] == "region_keys" and 0 < charge["delta"] <= SELECTION.delta
    assert charge["epsilon"] == pytest.approx(SELECTION.epsilon)
    assert charge["meta"]["threshold"] == keys.threshold(SELECTION)
    assert layer.section()["delta_spent"] == pytest.approx(charge["delta"])


def test_a_selection_made_every_week_is_served_again_in_between_and_the_cli_shows_its_delta(tmp_path):
    from datetime import timedelta

    from typer.testing import CliRunner

    from nightshift.privacy_cli import app

    s = _settings(tmp_path, {})
    with Warehouse(s.warehouse_path) as wh:
        first = PrivacyLayer(wh, s, "loans", RUN).public_keys(SELECTION, _frame(), every=7)
        later = PrivacyLayer(wh, s, "loans", RUN + timedelta(days=6))
        grown = pl.concat([_frame(), pl.DataFrame({"user_id": list(range(1000, 1400)), "region": ["east"] * 400})])
        assert later.public_keys(SELECTION, grown, every=7) == first  # the stored selection: no new noise
        assert later.section()["epsilon_spent"] == 0 and len(_charges(s)) == 1
        week = PrivacyLayer(wh, s, "loans", RUN + timedelta(days=7))
        assert "east" in week.public_keys(SELECTION, grown, every=7)  # a week on: selected again (charged)
    assert len(_charges(s)) == 2
    out = CliRunner().invoke(app, ["--home", str(tmp_path), "--as-of", str(RUN), "--releases"]).output
    assert f"users: δ {sum(c['delta'] for c in _charges(s)):.2g} spent" in out  # both in the fullest window


def test_a_declared_list_is_used_as_is_free_and_other_values_fold_into_other(tmp_path):
    s = _settings(tmp_path, {"loan_regions": ["north", "east"]})
    with Warehouse(s.warehouse_path) as wh:
        layer = PrivacyLayer(wh, s, "loans", RUN)
        regions = layer.public_keys(SELECTION, _frame())
        folded = keys.fold_other(_frame(), "region", regions)
        res = layer.release(Release("by_region", "users", "user_id", {"region": regions}, [Count("users")],
                                    epsilon=1.0, public_lists={"region": "loan_regions"}), folded)
    assert regions == ["north", "east", "other"]
    assert set(folded["region"]) == {"north", "other"}
    assert res.table["region"].to_list() == ["north", "east", "other"]  # east: declared, released though empty
    assert [c["release"] for c in _charges(s)] == ["by_region"]  # a declared list costs nothing


def test_a_planted_data_derived_key_is_refused(tmp_path):
    s = _settings(tmp_path, {"loan_regions": ["north", "east"]})
    frame = _frame()
    with Warehouse(s.warehouse_path) as wh:
        layer = PrivacyLayer(wh, s, "loans", RUN)
        regions = layer.public_keys(SELECTION, frame)
        from_data = sorted(set(frame["region"]))  # the bug: keys read from the people's rows
        planted = Release("by_region", "users", "user_id", {"region": [*regions, *from_data]}, [Count("users")],
                          epsilon=1.0, public_lists={"region": "loan_regions"})
        with pytest.raises(ValueError, match="not in the public list 'loan_regions'"):
            layer.release(planted, frame)
        unlisted = Release("by_region", "users", "user_id", {"region": from_data}, [Count("users")],
                           epsilon=1.0, public_lists={"region": "campaigns"})
        with pytest.raises(ValueError, match="no keys were taken from it"):
            layer.release(unlisted, frame)
    assert _charges(s) == []


def test_settings_declare_the_demo_lists_and_refuse_unknown_or_bad_ones(tmp_path, monkeypatch):
    s = load_settings(home=tmp_path)
    assert s.privacy_public_keys["loan_regions"] == ["north", "south", "east", "west", "central"]
    assert len(s.privacy_public_keys["campaigns"]) == 10
    for bad in ('{"regions": ["a"]}', '{"campaigns": ["a", "a"]}', '{"campaigns": ["other"]}'):
        monkeypatch.setenv("NIGHTSHIFT_PRIVACY_PUBLIC_KEYS", bad)
        with pytest.raises(SettingsError, match="privacy_public_keys"):
            load_settings(home=tmp_path)
