"""Real nights of the demo: a date's inventory orders do not depend on whether the night before ran."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

D = date(2026, 3, 1)


def _night(home: Path, day: date) -> dict:
    """Run the inventory job for `day` in `home`; its manifest entry."""
    from nightshift.night import run_night
    from nightshift.settings import load_settings

    result = run_night(load_settings(home=home), day, ["inventory"])
    assert result.status == "success", result
    return json.loads((home / "reports" / day.isoformat() / "manifest.json").read_text())["jobs"]["inventory"]


def _outputs(home: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    folder = home / "reports" / D.isoformat() / "inventory"
    return pl.read_parquet(folder / "policy.parquet"), pl.read_parquet(folder / "orders.parquet")


@pytest.mark.slow  # runs real nights
def test_orders_are_the_same_with_and_without_the_night_before(tmp_path: Path) -> None:
    from nightshift import demo

    after, fresh = tmp_path / "after", tmp_path / "fresh"
    demo.generate(after / "data" / "landing", end=D, size="tiny", seed=7)
    shutil.copytree(after / "data" / "landing", fresh / "data" / "landing")
    _night(after, D - timedelta(days=1))
    # The champion is the declared dependence (the manifest says so): the fresh home starts from the
    # one the night before left, and from nothing else of that night.
    shutil.copytree(after / "models" / "inventory", fresh / "models" / "inventory",
                    ignore=shutil.ignore_patterns("state"))
    entry = _night(after, D)
    entry_fresh = _night(fresh, D)
    assert entry["models"] == entry_fresh["models"]
    assert "inventory_demand champion" in entry["extra"]["depends_on_earlier_nights"]
    policy, orders = _outputs(after)
    policy_fresh, orders_fresh = _outputs(fresh)
    assert policy["inbound"].sum() > 0  # the replayed lists of the nights before D are in transit
    assert_frame_equal(policy, policy_fresh)
    assert_frame_equal(orders, orders_fresh)
