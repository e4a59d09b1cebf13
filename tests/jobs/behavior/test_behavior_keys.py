"""Behavior's release keys are public: campaigns from the declared catalogue (a campaign outside it is
counted as "other", never named) or a DP key selection; segments are not DP keys at all."""

from __future__ import annotations

from datetime import date

import polars as pl

from nightshift.jobs.behavior import channels, segments
from nightshift.privacy import PrivacyLayer, keys
from nightshift.privacy.store import Store
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)


def _campaign_frame() -> pl.DataFrame:
    ids = ["cmp_01"] * 300 + ["cmp_02"] * 200 + ["cmp_planted"] * 5
    return pl.DataFrame({"user_id": list(range(len(ids))), "campaign_id": ids,
                         "impressions": [4] * len(ids), "clicks": [1] * len(ids)})


def _run(settings: Settings) -> tuple[list[str], pl.DataFrame]:
    eps = channels.epsilons(settings)
    with Warehouse(settings.warehouse_path) as wh:
        layer = PrivacyLayer(wh, settings, "behavior", RUN)
        campaigns = layer.public_keys(channels.campaign_selection(eps), _campaign_frame())
        decl = channels.declarations(eps, RUN, campaigns)
        res = layer.release(decl["campaign_window"], keys.fold_other(_campaign_frame(), "campaign_id", campaigns))
    return campaigns, res.table


def test_campaigns_come_from_the_declared_catalogue_and_a_planted_one_is_other(tmp_path):
    s = Settings(home=tmp_path)  # the defaults declare the demo's catalogue
    campaigns, table = _run(s)
    assert campaigns == [*s.privacy_public_keys["campaigns"], "other"]
    assert table["campaign_id"].to_list() == campaigns and "cmp_planted" not in table["campaign_id"].to_list()


def test_undeclared_campaigns_are_selected_with_dp_and_its_delta_is_in_the_ledger(tmp_path):
    s = Settings(home=tmp_path, privacy_budgets={"users": Budget(epsilon=500.0)}, privacy_public_keys={})
    campaigns, table = _run(s)
    assert campaigns == ["cmp_01", "cmp_02", "other"]  # the planted campaign has 5 users: below the threshold
    charges = [e.data for e in Store.for_home(s.data_dir, s.reports_dir).verify() if e.data["kind"] == "charge"]
    assert [c["release"] for c in charges] == ["campaign_keys", "campaign_window"]
    assert 0 < charges[0]["delta"] <= channels.campaign_selection(channels.epsilons(s)).delta


def test_segments_are_not_released_they_are_team_only():
    decl = channels.declarations(channels.epsilons(Settings()), RUN, ["cmp_01", "other"])
    assert not any("segment" in name for name in decl)
    assert not any("segment" in name for name in channels.WINDOW_SHARES)
    assert abs(sum(channels.DAY_SHARES.values()) + sum(channels.WINDOW_SHARES.values()) - 1) < 1e-9
    labels = segments.Segmentation(pl.DataFrame({"user_id": [1, 2, 3], "segment": [0, 0, 1]}), {}, 2, {}, 0)
    users = pl.DataFrame({"user_id": [1, 2, 3], "recency_days": [1.0, 3.0, 5.0], "sessions": [2, 4, 6],
                          "purchases": [0, 1, 2], "revenue_cents": [0, 100, 200],
                          **{s: [1.0, 0.0, 0.0] for s in segments.SHARES}})
    profiles = segments.profiles(labels, users)
    assert profiles["users"].to_list() == [2, 1] and profiles["recency_days"].to_list() == [2.0, 5.0]
