"""The shareable tier: what may leave the team, in `reports/<D>/shareable/`.

A night's reports are in two tiers. The *team* pages (`reports/<D>/*.html`) may hold exact figures:
the team owns the raw data. The *shareable* tier holds only

- differential-privacy releases, byte for byte the noisy tables stored in the privacy ledger
  (`kind: dp`, with their release id),
- declared post-processing of such a release (`kind: dp-post`: a function of the stored noisy table
  only, e.g. the loans model's AUC and calibration from its DP band x outcome histogram), and
- outputs about things that are not people (`kind: non-person`: sales forecasts, inventory orders),
  as each job declares in its registration (`Job.shareable`).

`shareable/manifest.json` says where every file came from, so a leak check can trace each number
(`tests/privacy/leak_check.py`). Person-level rows are never here, nor in the team pages: they are
owner-only exports (`exports/<D>/`).
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from nightshift import publish, reporting

FOLDER = "shareable"
PREVIEW_ROWS = 200  # rows of a table shown on the page; the Parquet file has them all
# DP releases whose post-processing is published too: release name -> the module whose POST_PROCESSING
# maps an output name to a function of the release's stored noisy table (and of nothing else).
POST_PROCESSED = {"loans_model_quality": "nightshift.jobs.loans.quality"}


def post_processing(release: str) -> dict[str, Callable[[pl.DataFrame], pl.DataFrame]]:
    """The declared post-processing of a release (empty for most)."""
    module = POST_PROCESSED.get(release)
    return importlib.import_module(module).POST_PROCESSING if module else {}


def collect(build: Path, job: str, releases: list[Any], non_person: tuple[str, ...]) -> list[dict[str, Any]]:
    """Put one job's shareable tables into `build/shareable/<job>/`; what each is and where it came from."""
    folder = build / FOLDER / job
    entries = []
    for r in releases:
        if r.table is None:
            continue
        name = f"{r.name}.parquet"
        publish.write_parquet_atomic(r.table, folder / name)
        entries.append({"file": f"{job}/{name}", "kind": "dp", "release": r.name, "release_id": r.release_id,
                        "dataset": r.dataset, "as_of": str(r.run_date), "stale": r.stale})
        for output, derive in post_processing(r.name).items():
            derived = f"{r.name}_{output}.parquet"
            publish.write_parquet_atomic(derive(r.table), folder / derived)
            entries.append({"file": f"{job}/{derived}", "kind": "dp-post", "release": r.name, "output": output,
                            "release_id": r.release_id, "dataset": r.dataset, "as_of": str(r.run_date),
                            "stale": r.stale})
    for output in non_person:
        source = build / job / f"{output}.parquet"
        if source.exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / source.name)
            entries.append({"file": f"{job}/{source.name}", "kind": "non-person", "output": output})
    return entries


def write_page(build: Path, run_date: Any, shareable: dict[str, list[dict[str, Any]]]) -> None:
    """The shareable tier's manifest and its one page: every shareable table of the night."""
    root = build / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    publish.write_json_atomic({"run_date": str(run_date), "files": shareable}, root / "manifest.json")
    sections = [{"job": job, "tables": [_table(root, e) for e in entries]} for job, entries in shareable.items()]
    reporting.write_page(root / "index.html", "shareable.html.j2", run_date=run_date, sections=sections,
                         tier="shareable", root="../..", assets="../../assets")


def _table(root: Path, entry: dict[str, Any]) -> dict[str, Any]:
    frame = pl.read_parquet(root / entry["file"])
    return {**entry, "columns": frame.columns, "rows": frame.head(PREVIEW_ROWS).rows(), "height": frame.height}


def carry(current: Path, build: Path, job: str) -> None:
    """Copy a job's shareable tables from the published night into a new build (reused or kept jobs)."""
    if (current / FOLDER / job).is_dir():
        shutil.copytree(current / FOLDER / job, build / FOLDER / job, dirs_exist_ok=True)

