"""Counting readable cells: a cell is unreadable when suppressed or not above its margin of error; the CLI
prints the count per release of a night (how the groupings in docs/PRIVACY.md were chosen)."""

from __future__ import annotations

from datetime import date

import polars as pl
from typer.testing import CliRunner

from nightshift.privacy import Count, PrivacyLayer, Release, readability
from nightshift.privacy.store import Store
from nightshift.privacy_cli import app
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)


def test_a_cell_reads_only_when_its_value_is_above_its_margin():
    table = pl.DataFrame({"g": ["a", "b", "c", "d"], "n": [100, 10, 0, -50], "n_moe": [20, 10, 20, 20],
                          "m": [0.5, None, 0.2, 0.3], "m_moe": [0.1, None, 0.3, 0.1], "m_note": [None, "x", None, None]})
    assert readability.count_cells(table) == (8, 4)  # n: b (equal), c; m: b (suppressed), c
    assert readability.count_cells(pl.DataFrame({"region": ["north"], "units": [40]})) == (0, 0)  # key selection


def test_the_cli_counts_the_cells_of_a_nights_releases(tmp_path):
    s = Settings(home=tmp_path, privacy_budgets={"users": Budget(epsilon=10.0)})
    frame = pl.DataFrame({"user_id": list(range(500)), "g": ["big"] * 490 + ["small"] * 10})
    with Warehouse(s.warehouse_path) as wh:
        PrivacyLayer(wh, s, "job", RUN).release(
            Release("by_g", "users", "user_id", {"g": ["big", "small"]}, [Count("n")], epsilon=1.0), frame)
    rows = readability.night(Store.for_home(s.data_dir, s.reports_dir), RUN)
    assert rows.select("job", "release", "cells").row(0) == ("job", "by_g", 2)
    assert rows["unreadable"][0] in (0, 1)  # "small" (10 people, ± 3) reads unless the noise is unlucky
    out = CliRunner().invoke(app, ["readable", "--date", str(RUN), "--home", str(tmp_path)]).output
    assert "by_g" in out and "all" in out
