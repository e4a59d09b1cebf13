"""Budget changes: the ledger's budget is in force; settings may lower it, only `raise-budget` raises it."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nightshift.privacy import BudgetExceeded, BudgetRaiseRefused, Count, PrivacyLayer, Release
from nightshift.privacy.store import Store
from nightshift.privacy_cli import app
from nightshift.settings import Budget, Settings
from nightshift.warehouse import Warehouse

RUN = date(2026, 3, 1)


def settings(home: Path, eps: float, window_days: int = 365) -> Settings:
    return Settings(home=home, privacy_budgets={"users": Budget(epsilon=eps, window_days=window_days)})


def rel(eps: float, name: str) -> Release:
    return Release(name, "users", "user_id", keys={"g": ["a", "b"]}, measures=[Count("n")], epsilon=eps)


def release(s: Settings, eps: float, name: str, day: date = RUN, *, strict: bool = False):
    rng = np.random.default_rng(len(name))  # the data only
    frame = pl.DataFrame({"user_id": rng.integers(0, 50, 100), "g": rng.choice(["a", "b"], 100)})
    with Warehouse(s.warehouse_path) as wh:
        return PrivacyLayer(wh, s, "behavior", day).release(rel(eps, name), frame, strict=strict)


def budgets(home: Path) -> list[dict]:
    s = settings(home, 1.0)
    return [e.data for e in Store.for_home(s.data_dir, s.reports_dir).verify() if e.data["kind"] == "budget"]


def users_row(output: str) -> list[str]:
    """The `users` row of `nightshift privacy`'s table: dataset, unit, window start, budget, spent, left, n."""
    line = next(x for x in output.splitlines() if x.startswith("│ users"))
    return [c.strip() for c in line.strip("│").split("│")]


def cli(home: Path, *args: str, budget: str = '{"users": {"epsilon": 40.0}}', monkeypatch=None):
    monkeypatch.setenv("NIGHTSHIFT_PRIVACY_BUDGETS", budget)
    return CliRunner().invoke(app, [*args, "--home", str(home)])


@pytest.mark.parametrize(("eps", "window"), [(1000.0, 365), (40.0, 1), (45.0, 400)],
                         ids=["larger-epsilon", "shorter-window", "both-ways"])
def test_a_raise_in_the_settings_is_refused_and_spends_nothing(tmp_path, eps, window):
    assert release(settings(tmp_path, 40.0), 10.0, "first").epsilon == 10.0
    raised = settings(tmp_path, eps, window)
    res = release(raised, 14.35, "second")
    assert res.refused and res.epsilon == 0
    assert f"nightshift privacy raise-budget users --epsilon {eps:g} --window-days {window}" in res.refused
    with pytest.raises(BudgetRaiseRefused):
        release(raised, 14.35, "second", strict=True)
    assert [(b["epsilon"], b["window_days"]) for b in budgets(tmp_path)] == [(40.0, 365)]


def test_a_lowering_is_allowed_and_recorded(tmp_path):
    release(settings(tmp_path, 40.0), 10.0, "first")
    lower = settings(tmp_path, 12.0, 400)
    assert release(lower, 2.0, "fits").epsilon == 2.0
    with pytest.raises(BudgetExceeded):
        release(lower, 0.5, "over", strict=True)
    assert [(b["epsilon"], b["window_days"], b["by"]) for b in budgets(tmp_path)] == [
        (40.0, 365, "settings"), (12.0, 400, "settings")]
    back = release(settings(tmp_path, 40.0), 1.0, "back")  # back up to 40: a raise again
    assert back.refused and "raise-budget" in back.refused


def test_raise_budget_records_who_and_why_then_the_raise_applies(tmp_path, monkeypatch):
    release(settings(tmp_path, 40.0), 39.0, "first")
    raised = '{"users": {"epsilon": 60.0}}'
    out = cli(tmp_path, "--as-of", RUN.isoformat(), budget=raised, monkeypatch=monkeypatch)
    assert out.exit_code == 0 and users_row(out.output)[3:6] == ["40", "39", "1"]  # 40 is in force
    assert "raise-budget users" in out.output
    out = cli(tmp_path, "raise-budget", "users", "--epsilon", "70", "--why", "x", budget=raised,
              monkeypatch=monkeypatch)
    assert out.exit_code != 0 and "the settings ask for ε 60" in out.output  # must match the settings
    out = cli(tmp_path, "raise-budget", "users", "--epsilon", "60", "--why", "board approval 2026-02",
              "--by", "dpo", budget=raised, monkeypatch=monkeypatch)
    assert out.exit_code == 0, out.output
    assert "was ε 40 per 365 days" in out.output
    last = budgets(tmp_path)[-1]
    assert (last["epsilon"], last["by"], last["why"]) == (60.0, "dpo", "board approval 2026-02")
    assert release(settings(tmp_path, 60.0), 20.0, "second").epsilon == 20.0
    out = cli(tmp_path, "--as-of", RUN.isoformat(), budget=raised, monkeypatch=monkeypatch)
    assert users_row(out.output)[3:] == ["60", "59", "1", "2"] and "raise-budget" not in out.output


def test_spent_never_shows_more_than_the_budget_after_a_refused_window_change(tmp_path, monkeypatch):
    # The audit: a 1-day window would have let 40 ε be spent in one night beside a year's 15.3.
    release(settings(tmp_path, 40.0), 15.3, "year", RUN - timedelta(days=30))
    assert release(settings(tmp_path, 40.0, 1), 40.0, "tonight").refused
    out = cli(tmp_path, "--as-of", RUN.isoformat(), monkeypatch=monkeypatch)
    assert users_row(out.output)[3:] == ["40", "15.3", "24.7", "1"]
