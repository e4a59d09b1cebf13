"""SQL mutants of our own: the marts' as-of filters and the privacy bounding SQL (mutmut only mutates Python).

Mutants are found by regular expressions, so a new mart is covered without editing this file:

- as-of filters in `sql/marts/**/*.sql` and `sql/macros/*.sql`: every `where|and <col> <= $run_date`
  (`_partition` included) is dropped (replaced by `true`) and made strict (`<`); every
  `where|and <ts> < $run_date::date + interval 1 day` is dropped and moved back a day (`< $run_date::date`);
- `sql/privacy/bound_*.sql`: the per-unit limit `rn <= $k` (dropped, `< $k`, `<= $k + 1`), the clipping
  `least(greatest(v, $lower[i]), $upper[i])` (no lower clip, no upper clip, none, either bound widened by
  one) and `select distinct` of the (unit, cell) pairs (dropped).

Each mutant is applied to a fresh copy of `src/` and `sql/` (the package finds its SQL at
`parents[2]/'sql'`), and the fast tests run against the copy with PYTHONPATH (sandbox.py checks that the
copy is what gets imported). Only the test files that read the mutated file run, `-x`: which files those
are is recorded once by running the fast suite with an audit hook on `open` (cached in
`mutants/report/sql-usage.json` until tests, src or sql change). A macro counts as read by the test files
of every mart that calls it.

    python tests/mutation/sql_mutants.py            # all SQL mutants, table + survivors
    python tests/mutation/sql_mutants.py --list     # only list the mutants
    python tests/mutation/sql_mutants.py --files 'marts/loans_*'
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import hashlib
import json
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sandbox  # noqa: E402  (a sibling script, not a package)

# A column compared with the run date and nothing after it (`$run_date::date + 7` is a horizon, not an as-of).
AS_OF_LE = re.compile(r"\b(?:where|and)\s+(?P<pred>(?P<col>[A-Za-z_][\w.]*)\s*<=\s*\$?run_date\b(?!\s*(?:::|[-+*/])))",
                      re.IGNORECASE)
AS_OF_TS = re.compile(r"\b(?:where|and)\s+(?P<pred>(?P<col>[A-Za-z_][\w.]*)\s*<\s*(?P<d>\$?run_date)::date\s*\+\s*"
                      r"interval\s+1\s+day)", re.IGNORECASE)
K_LIMIT = re.compile(r"\b(?P<pred>rn\s*<=\s*\$k)\b")
CLIP = re.compile(r"least\(greatest\((?P<v>\w+),\s*(?P<lo>\$lower\[\w+\])\),\s*(?P<hi>\$upper\[\w+\])\)")
DISTINCT = re.compile(r"\bselect\s+distinct\s+", re.IGNORECASE)
MACRO = re.compile(r"create\s+or\s+replace\s+macro\s+(\w+)", re.IGNORECASE)

AS_OF_GLOBS = ("marts/*.sql", "marts/**/*.sql", "macros/*.sql")
BOUNDING_GLOBS = ("privacy/bound_*.sql",)
REPORT_DIR = "mutants/report"


@dataclass(frozen=True)
class SqlMutant:
    """One change to one SQL file: text[start:end] becomes `new`."""

    file: str  # relative to sql/, e.g. marts/loans_features.sql
    start: int
    end: int
    new: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line}:{self.kind}"

    @property
    def line(self) -> int:
        return _line_of(self.file, self.start)

    def apply(self, text: str) -> str:
        return text[:self.start] + self.new + text[self.end:]

    def diff(self, sql_dir: Path) -> str:
        text = (sql_dir / self.file).read_text()
        return "".join(difflib.unified_diff(text.splitlines(True), self.apply(text).splitlines(True),
                                            f"sql/{self.file}", f"sql/{self.file} (mutant)", n=1))


_LINE_STARTS: dict[str, list[int]] = {}


def _line_of(file: str, offset: int) -> int:
    starts = _LINE_STARTS[file]
    return sum(1 for s in starts if s <= offset)


def _files(sql_dir: Path, globs: tuple[str, ...]) -> list[str]:
    return sorted({str(p.relative_to(sql_dir)) for g in globs for p in sql_dir.glob(g)})


def _code_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every stretch outside `--` comments: a predicate in a comment is not a mutant."""
    spans, pos = [], 0
    for m in re.finditer(r"--[^\n]*", text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    return spans


def _in_code(text: str, start: int) -> bool:
    return any(a <= start < b for a, b in _code_spans(text))


def as_of_mutants(file: str, text: str) -> list[SqlMutant]:
    found = []
    for m in AS_OF_LE.finditer(text):
        if not _in_code(text, m.start("pred")):
            continue
        a, b = m.span("pred")
        strict = m.group("pred").replace("<=", "<", 1)
        found += [SqlMutant(file, a, b, "true", f"drop {m.group('col')} <= run_date"),
                  SqlMutant(file, a, b, strict, f"{m.group('col')} < run_date")]
    for m in AS_OF_TS.finditer(text):
        if not _in_code(text, m.start("pred")):
            continue
        a, b = m.span("pred")
        found += [SqlMutant(file, a, b, "true", f"drop {m.group('col')} < run_date + 1 day"),
                  SqlMutant(file, a, b, f"{m.group('col')} < {m.group('d')}::date",
                            f"{m.group('col')} < run_date (day D left out)")]
    return found


def bounding_mutants(file: str, text: str) -> list[SqlMutant]:
    found = []
    for m in K_LIMIT.finditer(text):
        a, b = m.span("pred")
        found += [SqlMutant(file, a, b, "true", "drop rn <= K"),
                  SqlMutant(file, a, b, "rn < $k", "rn < K"),
                  SqlMutant(file, a, b, "rn <= $k + 1", "rn <= K + 1")]
    for m in CLIP.finditer(text):
        a, b = m.span()
        v, lo, hi = m.group("v"), m.group("lo"), m.group("hi")
        found += [SqlMutant(file, a, b, f"least({v}, {hi})", "no lower clip"),
                  SqlMutant(file, a, b, f"greatest({v}, {lo})", "no upper clip"),
                  SqlMutant(file, a, b, v, "no clipping"),
                  SqlMutant(file, a, b, f"least(greatest({v}, {lo} - 1), {hi})", "lower bound - 1"),
                  SqlMutant(file, a, b, f"least(greatest({v}, {lo}), {hi} + 1)", "upper bound + 1")]
    for m in DISTINCT.finditer(text):
        if _in_code(text, m.start()):
            found.append(SqlMutant(file, m.start(), m.end(), "select ", "drop distinct"))
    return found


def find_mutants(sql_dir: Path) -> list[SqlMutant]:
    """Every SQL mutant of this tree, in file order."""
    found: list[SqlMutant] = []
    for kind, globs in (("as_of", AS_OF_GLOBS), ("bounding", BOUNDING_GLOBS)):
        for file in _files(sql_dir, globs):
            text = (sql_dir / file).read_text()
            _LINE_STARTS[file] = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
            found += as_of_mutants(file, text) if kind == "as_of" else bounding_mutants(file, text)
    return sorted(found, key=lambda m: (m.file, m.start))


# -- which test files read which SQL file ---------------------------------------------------------------

def fingerprint(repo: Path) -> str:
    """A hash of everything the usage map depends on: the tests, the package and the SQL."""
    digest = hashlib.sha256()
    for pattern in ("tests/**/*.py", "src/**/*.py", "sql/**/*.sql"):
        for path in sorted(repo.glob(pattern)):
            if "__pycache__" not in path.parts and "mutation" not in path.parts:
                digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def record_usage(copy: Path, out: Path, pytest_args: list[str]) -> int:
    """In this process: run pytest against `copy` and write {sql file: {test file: seconds}} to `out`."""
    sandbox.check_import(copy)
    import pytest

    sql_dir = (copy / "sql").resolve()
    current: list[str] = [""]
    reads: dict[str, set[str]] = {}
    seconds: dict[str, float] = {}

    def hook(event: str, args: tuple) -> None:
        # Every open() of a file under the copy's sql/ while a test (or its fixtures) runs.
        if event == "open" and current[0] and isinstance(args[0], str | Path):
            path = str(args[0])
            # Macros are read by every new Warehouse, whatever the test does: see test_files_for instead.
            if path.startswith(str(sql_dir)) and path.endswith(".sql") and "/macros/" not in path:
                reads.setdefault(path[len(str(sql_dir)) + 1:], set()).add(current[0])

    class Recorder:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_protocol(self, item, nextitem):  # noqa: ANN001 (pytest hook)
            current[0] = item.nodeid.split("::")[0]
            yield
            current[0] = ""

        def pytest_runtest_logreport(self, report):  # noqa: ANN001 (pytest hook)
            test_file = report.nodeid.split("::")[0]
            seconds[test_file] = seconds.get(test_file, 0.0) + report.duration

    sys.addaudithook(hook)
    code = int(pytest.main(pytest_args, plugins=[Recorder()]))
    usage = {sql: {f: round(seconds.get(f, 0.0), 2) for f in sorted(files)} for sql, files in sorted(reads.items())}
    out.write_text(json.dumps({"exit_code": code, "usage": usage, "seconds": seconds}, indent=1))
    return code


def usage_map(repo: Path, report_dir: Path, *, timeout_s: float, stale_ok: bool = False) -> dict[str, dict[str, float]]:
    """{sql file: {test file: seconds}} for the fast suite of `repo`, from the cache when still valid."""
    cache = report_dir / "sql-usage.json"
    key = fingerprint(repo)
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("fingerprint") == key:
            return data["usage"]
        if stale_ok:
            print(f"warning: {cache} was recorded for other tests or code; used anyway (--stale-usage-ok)")
            return data["usage"]
    print("recording which test files read which SQL file (one run of the fast suite)...", flush=True)
    with tempfile.TemporaryDirectory(prefix="sqlusage-") as tmp:
        copy = sandbox.make_copy(Path(tmp) / "tree", repo)
        raw = Path(tmp) / "usage.json"
        outcome = sandbox.run_pytest(copy, ["-q", "-p", "no:randomly", "tests"], timeout_s=timeout_s, repo=repo,
                                     launcher=[str(Path(__file__).resolve()), "_record", "--out", str(raw)])
        if not raw.exists() or outcome.returncode not in (0, 1):
            sys.exit(f"sql_mutants: recording the usage failed ({outcome.verdict}):\n{outcome.tail}")
        if outcome.returncode == 1:
            print("warning: the fast suite has failing tests on the unmutated tree; their files still count",
                  flush=True)
        data = json.loads(raw.read_text())
    report_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"fingerprint": key, "usage": data["usage"]}, indent=1))
    print(f"    done in {outcome.seconds:.0f}s", flush=True)
    return data["usage"]


def test_files_for(file: str, usage: dict[str, dict[str, float]], sql_dir: Path) -> dict[str, float]:
    """The test files that read `file`; for a macro, those of every mart (or macro) that calls it."""
    if file in usage or not file.startswith("macros/"):  # macros are in `usage` only with --tests
        return dict(usage.get(file, {}))
    names = MACRO.findall((sql_dir / file).read_text())
    callers: dict[str, float] = {}
    for other in _files(sql_dir, ("marts/*.sql", "marts/**/*.sql", "macros/*.sql")):
        text = (sql_dir / other).read_text()
        if other != file and any(re.search(rf"\b{n}\s*\(", text) and n not in MACRO.findall(text) for n in names):
            callers.update(test_files_for(other, usage, sql_dir))
    return callers


# -- running the mutants --------------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    file: str
    kind: str
    verdict: str
    seconds: float
    tests: list[str]
    diff: str


def run_mutants(mutants: list[SqlMutant], repo: Path, usage: dict[str, dict[str, float]],
                *, min_timeout_s: float) -> list[Result]:
    results = []
    sql_dir = repo / "sql"
    with tempfile.TemporaryDirectory(prefix="sqlmut-") as tmp:
        copy = sandbox.make_copy(Path(tmp) / "tree", repo)
        for i, mutant in enumerate(mutants, 1):
            files = test_files_for(mutant.file, usage, sql_dir)
            tests = sorted(files, key=lambda f: files[f])  # quickest first: -x stops at the first failure
            target = copy / "sql" / mutant.file
            original = (sql_dir / mutant.file).read_text()
            if not tests:
                outcome = sandbox.Outcome(5, 0.0, "no test file reads this SQL")
            else:
                target.write_text(mutant.apply(original))
                try:
                    timeout = max(min_timeout_s, 5 * sum(files.values()) + 60)
                    outcome = sandbox.run_pytest(copy, ["-q", "-x", "-p", "no:randomly", *tests], timeout_s=timeout,
                                                 repo=repo)
                finally:
                    target.write_text(original)
            if outcome.verdict == "error":
                print(outcome.tail, file=sys.stderr)
            result = Result(mutant.name, mutant.file, mutant.kind, outcome.verdict, round(outcome.seconds, 1),
                            tests, mutant.diff(sql_dir))
            print(f"[{i}/{len(mutants)}] {result.verdict:8} {result.seconds:6.1f}s  {mutant.name}", flush=True)
            results.append(result)
    return results


def summarize(results: list[Result]) -> list[dict]:
    """One row per SQL file: killed (timeouts count as killed), total, survivors, untested, errors."""
    rows: dict[str, dict] = {}
    for r in results:
        row = rows.setdefault(r.file, {"module": f"sql/{r.file}", "killed": 0, "total": 0, "survived": 0,
                                       "no_tests": 0, "other": 0, "not_checked": 0})
        row["total"] += 1
        key = {"killed": "killed", "timeout": "killed", "survived": "survived", "no tests": "no_tests"}
        row[key.get(r.verdict, "other")] += 1
    return list(rows.values())


def write_report(results: list[Result], report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "sql-results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
    survivors = report_dir / "sql-survivors.txt"
    with survivors.open("w") as fh:
        for r in results:
            if r.verdict not in ("killed", "timeout"):
                fh.write(f"# {r.name}: {r.verdict} (tests run: {' '.join(r.tests) or 'none'})\n{r.diff}\n")
    return survivors


def main() -> int:
    if sys.argv[1:2] == ["_record"]:  # re-entered through sandbox.run_pytest by usage_map
        args = sys.argv[2:]
        out, copy, rest = Path(args[args.index("--out") + 1]), Path(args[args.index("--copy") + 1]), args[
            args.index("--") + 1:]
        return record_usage(copy, out, rest)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=sandbox.REPO, help="tree whose src/, sql/ and tests/ to use")
    parser.add_argument("--files", nargs="*", default=[], help="globs over paths relative to sql/")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--report-dir", type=Path, default=None, help=f"default <repo>/{REPORT_DIR}")
    parser.add_argument("--min-timeout", type=float, default=300, help="seconds per mutant at least")
    parser.add_argument("--tests", nargs="*", default=[],
                        help="run these test paths for every mutant instead of the recorded test files")
    parser.add_argument("--stale-usage-ok", action="store_true",
                        help="use the recorded test files even if tests, src or sql changed since")
    args = parser.parse_args()
    repo = args.repo.resolve()
    report_dir = args.report_dir or repo / REPORT_DIR
    mutants = find_mutants(repo / "sql")
    if args.files:
        mutants = [m for m in mutants if any(fnmatch.fnmatch(m.file, g) for g in args.files)]
    if args.list:
        for m in mutants:
            print(m.name)
        print(f"{len(mutants)} SQL mutants")
        return 0
    start = time.monotonic()
    if args.tests:
        usage = {m.file: {t: 0.0 for t in args.tests} for m in mutants}
    else:
        usage = usage_map(repo, report_dir, timeout_s=3600, stale_ok=args.stale_usage_ok)
    results = run_mutants(mutants, repo, usage, min_timeout_s=args.min_timeout)
    survivors = write_report(results, report_dir)
    for row in summarize(results):
        print(f"{row['module']:45} {row['killed']:3}/{row['total']:<3} survived {row['survived']}"
              f"  no tests {row['no_tests']}  errors {row['other']}")
    print(f"SQL mutants: {time.monotonic() - start:.0f}s; survivors and their diffs: {survivors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
