"""Shared fixtures: a tiny demo night loaded into a warehouse, built once per test session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

DEMO_END = date(2026, 3, 1)


@dataclass
class DemoNight:
    """A home with tiny demo data for DEMO_END, loaded into its warehouse."""

    settings: object
    warehouse: object
    run_date: date
    truth_dir: Path
    loads: dict


@pytest.fixture(scope="session")
def demo_night(tmp_path_factory: pytest.TempPathFactory) -> DemoNight:
    """Tiny demo data (seed 7) up to DEMO_END, ingested; shared by every test that only reads it."""
    from nightshift import demo, ingest
    from nightshift.settings import load_settings
    from nightshift.warehouse import Warehouse

    home = tmp_path_factory.mktemp("demo_home")
    settings = load_settings(home=home, seed=7, demo_size="tiny")
    demo.generate(settings.landing_dir, end=DEMO_END, size="tiny", seed=7, truth_dir=settings.data_dir / "demo_truth")
    wh = Warehouse(settings.warehouse_path)
    loads = ingest.ingest(settings, wh, DEMO_END)
    yield DemoNight(settings, wh, DEMO_END, settings.data_dir / "demo_truth", loads)
    wh.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty nightshift home for one test, also set as NIGHTSHIFT_HOME."""
    monkeypatch.setenv("NIGHTSHIFT_HOME", str(tmp_path))
    return tmp_path
