"""Run a tiny demo night with two checkouts of nightshift and compare every Parquet output.

A refactor must keep behaviour: `python tests/flows/same_outputs.py BASE_REV` checks out BASE_REV
beside this checkout (a git worktree), runs the same night with each (same venv, same seed, same
data) and compares the Parquet tables of the two reports, exactly for integers and text and to
`--rtol` for floats (multi-threaded training sums in another order from run to run). Prints a
table and exits 1 on any difference. Used by CI (`.ci/run`) for the house refactor's base.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

ROOT = Path(__file__).resolve().parents[2]
RUN_DATE = "2026-03-01"
IGNORED = {"run_date_generated", "generated_at", "run_id"}  # per-run stamps, not results


def night(checkout: Path, home: Path, jobs: str) -> Path:
    """Demo data and one night with the code of `checkout`; the published report folder."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NIGHTSHIFT_HOME": str(home), "PYTHONPATH": f"{checkout / 'src'}:{checkout}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    cli = [sys.executable, "-c", "from nightshift.cli import main; main()"]
    for args in (["demo", "--size", "tiny", "--end", RUN_DATE, "--seed", "7"],
                 ["run", "--date", RUN_DATE, "--jobs", jobs]):
        done = subprocess.run([*cli, *args], env=env, cwd=home, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{checkout}: nightshift {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                     f"{done.stderr[-3000:]}")
    return home / "reports" / RUN_DATE


def tables(report: Path) -> dict[str, pl.DataFrame]:
    """Every Parquet table of a report, by its path inside the report."""
    return {str(p.relative_to(report)): pl.read_parquet(p) for p in sorted(report.rglob("*.parquet"))}


def compare(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame], rtol: float) -> list[str]:
    """What differs between two reports' tables (empty: the same)."""
    problems = [f"only in base: {n}" for n in sorted(set(a) - set(b))]
    problems += [f"only in this checkout: {n}" for n in sorted(set(b) - set(a))]
    for name in sorted(set(a) & set(b)):
        left, right = (f.drop([c for c in f.columns if c in IGNORED]) for f in (a[name], b[name]))
        try:
            assert_frame_equal(left, right, check_exact=False, rel_tol=rtol, abs_tol=rtol)
        except AssertionError as e:
            problems.append(f"{name}: {str(e).splitlines()[0]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the git revision to compare with (e.g. the commit before a refactor)")
    parser.add_argument("--jobs", default="behavior,sales,loans,inventory,energy")
    parser.add_argument("--rtol", type=float, default=1e-6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="same-outputs-") as tmp:
        work = Path(tmp)
        base = work / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.base], check=True)
        try:
            a = tables(night(base, work / "home-base", args.jobs))
            b = tables(night(ROOT, work / "home-head", args.jobs))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
            shutil.rmtree(base, ignore_errors=True)
    problems = compare(a, b, args.rtol)
    print(f"{len(a)} Parquet tables in the base report, {len(b)} in this checkout's")
    for name, frame in b.items():
        print(f"  {name}: {frame.height} rows" + ("  DIFFERS" if any(p.startswith(name) for p in problems) else ""))
    for p in problems:
        print("DIFF", p)
    print("same outputs" if not problems and a else "outputs differ")
    return 0 if a and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
