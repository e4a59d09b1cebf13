"""The planted bugs of issue 16, one at a time in a copy of the code: does `make test` or `make test-slow` fail?

Each bug is a small exact text replacement in one file. If the old text is no longer there exactly as
expected (a refactor moved it), the script stops with "planted bug N no longer applies" instead of
reporting a bug as caught that was never planted.

For each bug, on a fresh copy of `src/` and `sql/` (sandbox.py checks the copy is what gets imported):
1. fast: `pytest -q -x` (the fast suite, as `make test`), the test files most likely to catch it first and
   then, unless they already did, the rest of the fast suite;
2. slow: `pytest -q -x -m slow` over the bug's related test paths (as `make test-slow`, restricted).
   Skipped when the fast suite caught the bug, unless --both.

    python tests/mutation/planted.py                 # every bug
    python tests/mutation/planted.py --bugs 4 5      # some
    python tests/mutation/planted.py --check         # only check that every bug still applies
    python tests/mutation/planted.py --quick         # fast stage: only the related test paths
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sandbox  # noqa: E402  (a sibling script, not a package)

_SWAP = """\
    tmp_link = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.link")
    os.symlink(os.path.relpath(build, link.parent), tmp_link)
    os.replace(tmp_link, link)
    fsync_dir(link.parent)
    if old is not None and old != build.resolve() and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
"""
_UNLINK_THEN_SYMLINK = """\
    link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(build, link.parent), link)
    fsync_dir(link.parent)
    if old is not None and old != build.resolve() and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
"""
_DELETE_BEFORE_SWAP = """\
    if old is not None and old != build.resolve() and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    tmp_link = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.link")
    os.symlink(os.path.relpath(build, link.parent), tmp_link)
    os.replace(tmp_link, link)
    fsync_dir(link.parent)
"""
_MIN = "low = (col <= c.min) if c.min_exclusive else (col < c.min)"
_SENSITIVITY = "needed[sum_key(m)] = k * max(abs(lo), abs(hi))"
_PROMOTE = "promoted = improvement > self.margin"

# Paths tried first (fast stage) and the slow tests that belong to each area; missing paths are skipped,
# so tests that land later are picked up by their folder.
PIT_FAST = ["tests/contracts/test_point_in_time.py", "tests/properties"]
PUBLISH = ["tests/flows/test_swap_reader.py", "tests/flows/test_kill.py", "tests/properties"]


@dataclass(frozen=True)
class Bug:
    """One planted bug: in `file`, each `old` text (found exactly `count` times) becomes `new`."""

    id: int
    title: str
    file: str
    replacements: tuple[tuple[str, str, int], ...]
    fast_first: tuple[str, ...]
    slow: tuple[str, ...]
    expected: str = field(default="", compare=False)  # the "caught?" before the work on it

    def apply(self, repo: Path) -> str:
        """The bugged text of `file`; exits if the code no longer reads as the bug expects."""
        text = (repo / self.file).read_text()
        for old, new, count in self.replacements:
            found = text.count(old)
            if found != count:
                sys.exit(f"planted bug {self.id} no longer applies: {self.file} has {found} occurrence(s) of "
                         f"{old.strip()!r}, expected {count} ({self.title}); update tests/mutation/planted.py")
            text = text.replace(old, new)
        return text


BUGS = [
    Bug(1, "loans features: drop _partition <= $run_date (late labels leak into training)",
        "sql/marts/loans/features.sql",
        (("from loans_asof($run_date)", "from (select * from loans where application_date <= $run_date)", 1),
         ("from loan_outcomes_asof($run_date) o",
          "from (select * from loan_outcomes where observed_date <= $run_date) o", 1)),
        (*PIT_FAST, "tests/jobs/loans"), ("tests/model/test_loans_model.py", "tests/contracts"), "no"),
    Bug(2, "inventory features: drop _partition <= $run_date", "sql/marts/inventory/features.sql",
        (("from inventory_asof($run_date)", "from (select * from inventory where date <= $run_date)", 1),
         ("from sales_asof($run_date)", "from (select * from sales where date <= $run_date)", 1)),
        (*PIT_FAST, "tests/jobs/inventory"), ("tests/model/test_inventory_model.py", "tests/contracts"),
        "no"),
    Bug(3, "sales series: drop _partition <= $run_date", "sql/marts/sales/series.sql",
        (("from sales_asof($run_date)", "from (select * from sales where date <= $run_date)", 1),),
        (*PIT_FAST, "tests/jobs/sales"), ("tests/model/test_sales_model.py", "tests/contracts"),
        "yes"),
    Bug(4, "publish.py: unlink then symlink instead of one rename", "src/nightshift/publish.py",
        ((_SWAP, _UNLINK_THEN_SYMLINK, 1),), tuple(PUBLISH), ("tests/flows",), "no"),
    Bug(5, "publish.py: delete the old build before the swap", "src/nightshift/publish.py",
        ((_SWAP, _DELETE_BEFORE_SWAP, 1),), tuple(PUBLISH), ("tests/flows",), "no"),
    Bug(6, "privacy spec.py: sensitivity k*abs(hi) instead of k*max(abs(lo), abs(hi))",
        "src/nightshift/privacy/spec.py", ((_SENSITIVITY, "needed[sum_key(m)] = k * abs(hi)", 1),),
        ("tests/properties", "tests/unit/test_privacy.py"), ("tests/unit", "tests/properties"), "no"),
    Bug(7, "privacy spec.py: sensitivity ignores K", "src/nightshift/privacy/spec.py",
        ((_SENSITIVITY, "needed[sum_key(m)] = max(abs(lo), abs(hi))", 1),),
        ("tests/properties", "tests/unit/test_privacy.py"), ("tests/unit", "tests/properties"), "yes"),
    Bug(8, "contracts: inclusive minimum never enforced", "src/nightshift/contracts.py",
        ((_MIN, "low = (col <= c.min) if c.min_exclusive else pl.lit(False)", 1),),
        ("tests/properties", "tests/contracts"), ("tests/contracts", "tests/properties"), "yes"),
    Bug(9, "contracts: col < min -> col <= min (legitimate zeros rejected)", "src/nightshift/contracts.py",
        ((_MIN, "low = (col <= c.min) if c.min_exclusive else (col <= c.min)", 1),),
        ("tests/properties", "tests/contracts"), ("tests/contracts", "tests/properties"), "only indirectly"),
    Bug(10, "registry: champion margin ignored", "src/nightshift/registry.py",
        ((_PROMOTE, "promoted = improvement > 0", 1),),
        ("tests/properties", "tests/unit/test_registry.py"), ("tests/model", "tests/properties"), "yes"),
    Bug(11, "registry: > -> >= at the margin", "src/nightshift/registry.py",
        ((_PROMOTE, "promoted = improvement >= self.margin", 1),),
        ("tests/properties", "tests/unit/test_registry.py"), ("tests/model", "tests/properties"), "no"),
    # Since the as-of filter is written once (warehouse.asof_macros), one more bug drops it everywhere.
    Bug(12, "warehouse.asof_macros: the as-of macros drop _partition <= run_date",
        "src/nightshift/warehouse.py", (("select * from {t.name} where _partition <= run_date",
                                         "select * from {t.name} where true", 1),),
        (*PIT_FAST,), ("tests/contracts",), "(new)"),
]


def _existing(repo: Path, paths: tuple[str, ...]) -> list[str]:
    return [p for p in dict.fromkeys(paths) if (repo / p).exists()]


def _caught(outcome: sandbox.Outcome) -> str:
    """The verdict, with the test that failed first (pytest's short summary line) when it was caught."""
    if outcome.verdict == "error":
        print(outcome.tail, file=sys.stderr)
        sys.exit(f"planted: pytest could not run ({outcome.returncode}); see the output above")
    verdict = {"killed": "caught", "timeout": "caught (timeout)", "survived": "not caught",
               "no tests": "no tests"}[outcome.verdict]
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", outcome.tail, re.MULTILINE)
    return f"{verdict} by {failed[0]}" if failed else verdict


def fast_stage(bug: Bug, copy: Path, repo: Path, *, quick: bool, timeout_s: float) -> tuple[str, str]:
    """(verdict, which tests) for the fast suite: the related files first, then the rest."""
    first = _existing(repo, bug.fast_first)
    base = ["-q", "-x", "-p", "no:randomly"]
    if first:
        outcome = sandbox.run_pytest(copy, [*base, *first], timeout_s=timeout_s, repo=repo)
        if outcome.verdict in ("killed", "timeout") or quick:
            return _caught(outcome), " ".join(first)
    ignore = [f"--ignore={p}" for p in first]
    outcome = sandbox.run_pytest(copy, [*base, *ignore, "tests"], timeout_s=timeout_s, repo=repo)
    return _caught(outcome), "fast suite"


def slow_stage(bug: Bug, copy: Path, repo: Path, *, timeout_s: float) -> tuple[str, str]:
    paths = _existing(repo, bug.slow)
    if not paths:
        return "no slow tests", ""
    args = ["-q", "-x", "-p", "no:randomly", "-m", "slow", *paths]
    outcome = sandbox.run_pytest(copy, args, timeout_s=timeout_s, repo=repo)
    if outcome.verdict in ("killed", "timeout"):  # the slow tests had no baseline run: do it now
        clean = sandbox.run_pytest(copy.with_name("clean"), args, timeout_s=timeout_s, repo=repo)
        if clean.verdict != "survived":
            return f"fails without the bug too ({clean.verdict})", " ".join(paths)
    return _caught(outcome), " ".join(paths)


def baseline(repo: Path, dest: Path, bugs: list[Bug], *, quick: bool, timeout_s: float) -> None:
    """The same tests without any bug must pass, or a "caught" below would mean nothing."""
    copy = sandbox.make_copy(dest, repo)
    paths = _existing(repo, tuple(p for bug in bugs for p in bug.fast_first)) if quick else ["tests"]
    outcome = sandbox.run_pytest(copy, ["-q", "-p", "no:randomly", *paths], timeout_s=timeout_s, repo=repo)
    if outcome.verdict != "survived":
        print(outcome.tail, file=sys.stderr)
        sys.exit(f"planted: the tests fail without any planted bug ({outcome.verdict}): {' '.join(paths)}")
    print(f"baseline: {' '.join(paths)} pass without a planted bug ({outcome.seconds:.0f}s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=sandbox.REPO)
    parser.add_argument("--bugs", type=int, nargs="*", default=[], help="bug numbers (default: all)")
    parser.add_argument("--check", action="store_true", help="only check that every bug still applies")
    parser.add_argument("--quick", action="store_true", help="fast stage: only the bug's related test paths")
    parser.add_argument("--both", action="store_true", help="run the slow stage even when the fast one caught it")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run")
    args = parser.parse_args()
    repo = args.repo.resolve()
    bugs = [b for b in BUGS if not args.bugs or b.id in args.bugs]
    for bug in bugs:
        bug.apply(repo)  # all of them first: a stale bug fails before any test runs
    if args.check:
        print(f"all {len(bugs)} planted bugs apply")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        baseline(repo, Path(tmp) / "clean", bugs, quick=args.quick, timeout_s=args.timeout)
        for bug in bugs:
            start = time.monotonic()
            copy = sandbox.make_copy(Path(tmp) / f"bug{bug.id}", repo)
            (copy / bug.file).write_text(bug.apply(repo))
            fast, fast_tests = fast_stage(bug, copy, repo, quick=args.quick, timeout_s=args.timeout)
            if fast.startswith("caught") and not args.both:
                slow, slow_tests = "not run", ""
            else:
                slow, slow_tests = slow_stage(bug, copy, repo, timeout_s=args.timeout)
            rows.append((bug, fast, fast_tests, slow, slow_tests, time.monotonic() - start))
            print(f"bug {bug.id:2} ({time.monotonic() - start:4.0f}s) {bug.title}\n    fast: {fast}\n    slow: {slow}",
                  flush=True)
    print("\n| # | planted bug | issue said | fast (`make test`) | slow (`make test-slow`, related files) |")
    print("|---|---|---|---|---|")
    for bug, fast, fast_tests, slow, slow_tests, _ in rows:
        print(f"| {bug.id} | {bug.title} | {bug.expected} | {fast} (ran {fast_tests}) | {slow}"
              + (f" ({slow_tests})" if slow_tests else "") + " |")
    missed = [bug.id for bug, fast, _, slow, _, _ in rows if not fast.startswith("caught")
              and not slow.startswith("caught")]
    print(f"\nnot caught by any test: {missed or 'none'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
