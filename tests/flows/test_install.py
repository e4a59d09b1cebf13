"""The package is whole: `pip install .` into a clean venv outside the checkout, then
`nightshift demo --size tiny && nightshift run` in an empty folder, works (SQL and templates are
package data; the home is the current folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _uv() -> str:
    uv = shutil.which("uv") or str(ROOT / ".bin" / "uv-env" / "bin" / "uv")
    assert Path(uv).exists(), "uv is installed by `make setup` (the Makefile's UV); run the tests through make"
    return uv


def test_an_installed_package_runs_a_night_in_an_empty_folder(tmp_path: Path) -> None:
    venv, home = tmp_path / "venv", tmp_path / "empty"
    home.mkdir()
    uv = _uv()
    subprocess.run([uv, "venv", "-q", "--python", "python3", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([uv, "pip", "sync", "-q", "--python", python, str(ROOT / "requirements.lock")], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--no-deps", "--python", python, str(ROOT)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHIFT_", "PYTHONPATH", "PREFECT_"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    nightshift = str(venv / "bin" / "nightshift")
    for args in (["demo", "--size", "tiny"], ["run"]):
        done = subprocess.run([nightshift, *args], cwd=home, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"nightshift {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    nights = sorted(p for p in (home / "reports").glob("????-??-??"))
    assert len(nights) == 1
    manifest = json.loads((nights[0] / "manifest.json").read_text())
    assert {j: v["status"] for j, v in manifest["jobs"].items()} == dict.fromkeys(
        ("behavior", "sales", "loans", "inventory", "energy"), "success")
    assert (home / "data" / "warehouse.duckdb").is_file() and (home / "reports" / "index.html").is_file()
    installed = subprocess.run([python, "-c", "import nightshift; print(nightshift.__file__)"], env=env,
                               capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in installed  # the installed copy ran, not this checkout
