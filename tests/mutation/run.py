"""`make mutants`: mutmut over the core modules, our SQL mutants, and one score table for both.

1. `mutmut run` (configured in pyproject.toml, [tool.mutmut]) mutates the core modules into mutants/src
   and runs, per mutant, the fast tests that called the mutated function in its stats run. PYTHONPATH
   puts mutants/src first, so the processes that tests start (the CLI, publishers) run the mutant too.
2. sql_mutants.py mutates the marts' as-of filters and the privacy bounding SQL.
3. The table: one row per Python module and per SQL file, killed / total, survivors and untested, read
   from mutmut's meta files (mutants/**/*.py.meta) and sql_mutants.py's results. Survivors with their
   diffs go to mutants/report/survivors.txt (Python) and mutants/report/sql-survivors.txt (SQL).

    python tests/mutation/run.py                               # everything (hours: see README.md)
    python tests/mutation/run.py --modules contracts publish   # some modules, no SQL
    python tests/mutation/run.py --modules registry.decide privacy.spec.plan sql:privacy/*
    python tests/mutation/run.py --table                       # only print the table of the last runs

A module is `contracts`, `privacy` (the package), `privacy.spec`, or a function in one: `registry.decide`,
`contracts._column_rules`. `sql` selects every SQL mutant, `sql:<glob>` some (globs over paths under sql/).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sandbox  # noqa: E402  (a sibling script, not a package)

CORE = ["contracts", "ingest", "sources", "publish", "privacy", "registry", "selection", "state", "warehouse", "night"]
KILLED = {"killed", "timeout", "caught by type check"}


def mutant_globs(modules: list[str]) -> list[str]:
    """mutmut names are `nightshift.<module>.x_<function>__mutmut_<n>` (methods: `xǁ<Class>ǁ<method>`)."""
    globs = []
    for module in modules:
        parts = module.split(".")
        if (sandbox.REPO / "src/nightshift" / "/".join(parts)).is_dir() or Path(
                sandbox.REPO / "src/nightshift" / ("/".join(parts) + ".py")).exists():
            globs.append(f"nightshift.{module}.*")
        else:  # the last part names a function or method; the glob must also match mutmut's name of the
            # function itself (no __mutmut_ suffix), or mutmut's clean run falls back to every test
            globs.append(f"nightshift.{'.'.join(parts[:-1])}.x*{parts[-1]}*")
    return globs


def run_mutmut(repo: Path, globs: list[str], children: int, log: Path) -> int:
    """`mutmut run` for these mutant globs; its own progress output goes to `log`."""
    (repo / "mutants" / "src").mkdir(parents=True, exist_ok=True)  # before start-up caches the path entry
    env = dict(os.environ, PYTHONPATH=f"{repo / 'mutants' / 'src'}:{repo / 'mutants'}")
    mutmut = Path(sandbox.python()).with_name("mutmut")
    cmd = [str(mutmut), "run", "--max-children", str(children), *globs]
    print("$", " ".join(cmd), f"  (progress in {log})", flush=True)
    with log.open("w") as fh:
        return subprocess.run(cmd, cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode


def python_rows(repo: Path, globs: list[str]) -> tuple[list[dict], list[tuple[str, str]]]:
    """Per module: counts by mutmut status, plus (mutant name, status) of every mutant not killed."""
    from mutmut.stats import status_by_exit_code

    rows, not_killed = [], []
    for meta in sorted((repo / "mutants" / "src").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        keys = {k: v for k, v in data["exit_code_by_key"].items()
                if not globs or any(fnmatch.fnmatch(k, g) for g in globs)}
        if not keys:
            continue
        statuses = Counter(status_by_exit_code[v] for v in keys.values())
        module = str(meta.relative_to(repo / "mutants")).removesuffix(".meta")
        rows.append({"module": module, "total": len(keys), "killed": sum(statuses[s] for s in KILLED),
                     "survived": statuses["survived"], "no_tests": statuses["no tests"],
                     "not_checked": statuses["not checked"],
                     "other": len(keys) - sum(statuses[s] for s in (*KILLED, "survived", "no tests", "not checked"))})
        not_killed += [(k, status_by_exit_code[v]) for k, v in keys.items()
                       if status_by_exit_code[v] in ("survived", "no tests", "suspicious", "segfault")]
    return rows, not_killed


def write_survivors(repo: Path, not_killed: list[tuple[str, str]], path: Path) -> None:
    """Each surviving (or untested) mutant with its diff, as `mutmut show` prints it."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(repo)  # mutmut reads its config and mutants/ from the working directory
    try:
        with path.open("w") as fh:
            for name, status in sorted(not_killed, key=lambda x: (x[1], x[0])):
                fh.write(f"# {name}: {status}\n{get_diff_for_mutant(name)}\n\n")
    finally:
        os.chdir(cwd)


def sql_rows(report_dir: Path) -> list[dict]:
    results_file = report_dir / "sql-results.json"
    if not results_file.exists():
        return []
    import sql_mutants

    results = [sql_mutants.Result(**r) for r in json.loads(results_file.read_text())]
    return sql_mutants.summarize(results)


def print_table(rows: list[dict]) -> str:
    """Score = killed / checked: mutants not checked yet (a stopped run) count neither way."""
    lines = ["| module | killed / checked | score | survived | no tests | other | not checked |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        checked = r["total"] - r.get("not_checked", 0)
        score = f"{100 * r['killed'] / checked:.0f}%" if checked else "-"
        lines.append(f"| {r['module']} | {r['killed']} / {checked} | {score} | {r['survived']} | {r['no_tests']} | "
                     f"{r['other']} | {r.get('not_checked', 0)} |")
    table = "\n".join(lines)
    print(table)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="*", default=[], help="default: " + " ".join(CORE) + " sql")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--table", action="store_true", help="no runs: only the table of what mutants/ holds")
    parser.add_argument("--repo", type=Path, default=sandbox.REPO)
    args = parser.parse_args()
    repo = args.repo.resolve()
    modules = [m for item in args.modules for m in item.split(",") if m] or [*CORE, "sql"]
    python_modules = [m for m in modules if not m.startswith("sql")]
    sql_globs = [m.partition(":")[2] for m in modules if m.startswith("sql")]
    report_dir = repo / "mutants" / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    globs = mutant_globs(python_modules)
    timings = {}
    if not args.table and python_modules:
        start = time.monotonic()
        code = run_mutmut(repo, globs, args.children, report_dir / "mutmut-run.log")
        timings["mutmut"] = time.monotonic() - start
        if code:
            print(f"mutmut run failed (exit {code}); the end of {report_dir / 'mutmut-run.log'}:")
            print((report_dir / "mutmut-run.log").read_text()[-3000:])
            return code
    if not args.table and any(m.startswith("sql") for m in modules):
        start = time.monotonic()
        cmd = [sandbox.python(), str(Path(__file__).with_name("sql_mutants.py")), "--repo", str(repo)]
        code = subprocess.run([*cmd, *(["--files", *sql_globs] if any(sql_globs) else [])]).returncode
        timings["sql"] = time.monotonic() - start
        if code:
            return code
    rows, not_killed = python_rows(repo, globs if python_modules else ["-"])
    survivors = report_dir / "survivors.txt"
    write_survivors(repo, not_killed, survivors)
    rows += sql_rows(report_dir) if sql_globs or args.table else []
    if python_modules:
        print("mutmut mutants:", " ".join(globs))
    table = print_table(rows)
    (report_dir / "score.md").write_text(table + "\n")
    print(f"\nsurvivors with diffs: {survivors} (Python), {report_dir / 'sql-survivors.txt'} (SQL)")
    print("a mutant by name: .venv/bin/mutmut show <name>;  timings: "
          + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
