"""Run the test suite against a changed copy of the code, never against the working tree itself.

Used by sql_mutants.py and planted.py. A copy holds `src/` and `sql/`; the tests stay where they are
(the repository's `tests/`) and import the copy through PYTHONPATH, which comes before the editable
install's path entry. `launch` checks that before it hands over to pytest, because a run that quietly
imported the unchanged package would report every mutant as surviving (or every bug as missed).

    python tests/mutation/sandbox.py launch --copy /tmp/x -- -q -x tests/unit
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
ME = Path(__file__).resolve()


def python() -> str:
    """The project's interpreter (the venv's when there is one)."""
    return str(PYTHON if PYTHON.exists() else Path(sys.executable))


def make_copy(dest: Path, repo: Path = REPO) -> Path:
    """Copy `src/` and `sql/` of `repo` into `dest` (bytecode left behind) and return `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("src", "sql"):
        shutil.rmtree(dest / part, ignore_errors=True)
        shutil.copytree(repo / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@dataclass
class Outcome:
    """How one pytest run against a copy ended."""

    returncode: int | None  # None: killed at the time limit
    seconds: float
    tail: str

    @property
    def verdict(self) -> str:
        """killed / survived / timeout / no tests / error (pytest's own exit codes, see `pytest --help`)."""
        if self.returncode is None:
            return "timeout"
        return {0: "survived", 1: "killed", 5: "no tests"}.get(self.returncode, "error")


def run_pytest(copy: Path, pytest_args: list[str], *, timeout_s: float, repo: Path = REPO,
               launcher: list[str] | None = None) -> Outcome:
    """Run pytest in `repo` (its tests) importing the package from `copy`; keep the output's tail.

    `launcher` replaces `sandbox.py launch` (it gets `--copy <copy> -- <pytest args>` the same way).
    """
    env = dict(os.environ, PYTHONPATH=str(copy / "src"), PYTHONDONTWRITEBYTECODE="1")
    cmd = [python(), *(launcher or [str(ME), "launch"]), "--copy", str(copy), "--", "--rootdir", str(repo),
           *pytest_args]
    start = time.monotonic()
    # A new session, so a timeout can stop the whole tree (tests start nightshift processes of their own).
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        code = None
    return Outcome(code, time.monotonic() - start, out[-4000:])


def check_import(copy: Path) -> None:
    """Fail unless `nightshift` and its SQL directory come from `copy`."""
    import nightshift
    from nightshift import warehouse

    package = Path(nightshift.__file__).resolve()
    if copy.resolve() / "src" not in package.parents or warehouse.SQL_DIR != copy.resolve() / "sql":
        sys.exit(f"sandbox: imported {package} (SQL from {warehouse.SQL_DIR}), not the copy in {copy}; "
                 "is PYTHONPATH set and does the copy hold src/ and sql/?")


def launch(copy: Path, pytest_args: list[str]) -> int:
    """In this process: check the import, then run pytest (exit code 99 when the check fails)."""
    try:
        check_import(copy)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 99
    import pytest

    return int(pytest.main(pytest_args))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("launch", help="check the copy is imported, then run pytest with the remaining arguments")
    run.add_argument("--copy", type=Path, required=True)
    run.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    return launch(args.copy, rest)


if __name__ == "__main__":
    sys.exit(main())
