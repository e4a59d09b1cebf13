"""kill -9 at random points: nobody ever sees a partial report, Parquet file, model or record,
and a rerun after each kill finishes the work with the outputs of an uninterrupted run.

The fast test kills a process that publishes night after night with the real publishing code;
the slow one kills `nightshift run` itself (and its Prefect server) at several points of a real night.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest

D = date(2026, 3, 1)


def assert_nothing_partial(home: Path) -> None:
    """What a reader can open is complete: report links, their files, Parquet, models, run records."""
    reports = home / "reports"
    for link in reports.glob("????-??-??"):
        assert link.is_symlink(), f"{link} is not a link to a complete build"
        build = link.resolve()
        assert build.parent.name == ".builds" and build.is_dir()
        manifest = json.loads((build / "manifest.json").read_text())
        assert manifest["run_date"] == link.name
        for job, j in manifest["jobs"].items():
            for out in j.get("outputs", []):
                assert (build / out).exists(), f"{link.name}/{out} of {job} is listed but missing"
        assert not [p for p in build.rglob("*") if p.name.endswith((".tmp", ".link"))]
        for page in build.glob("*.html"):
            assert page.read_text().rstrip().endswith("</html>"), f"{page} is cut short"
        for pq in build.rglob("*.parquet"):
            pl.read_parquet(pq)  # raises on a truncated file
    if (reports / "index.html").exists():
        assert (reports / "index.html").read_text().rstrip().endswith("</html>")
    for job_dir in (home / "models").glob("*"):
        pointer = job_dir / "champion.json"
        if pointer.exists():
            champ = json.loads(pointer.read_text())["champion"]
            assert champ is None or (job_dir / champ / "metadata.json").is_file()
        for version in job_dir.glob("v*"):
            json.loads((version / "metadata.json").read_text())  # every visible version is complete
    for f in (home / "data" / "quarantine").rglob("*.parquet"):
        pl.read_parquet(f)
    for f in (home / "data" / "state" / "runs").glob("*.json"):
        json.loads(f.read_text())


PUBLISHER = textwrap.dedent("""
    import sys, json
    from pathlib import Path
    import polars as pl
    from nightshift import publish
    reports, n = Path(sys.argv[1]), 0
    while True:
        n += 1
        build = publish.new_build_dir(reports, "2026-03-01")
        (build / "loans").mkdir()
        frame = pl.DataFrame({"i": list(range(20_000)), "night": [n] * 20_000})
        frame.write_parquet(build / "loans" / "scores.parquet")
        (build / "loans.html").write_text("<html>" + "x" * 200_000 + "</html>")
        publish.write_json_atomic({"run_date": "2026-03-01", "n": n, "jobs": {"loans": {
            "outputs": ["loans/scores.parquet", "loans.html"]}}}, build / "manifest.json")
        publish.swap_in(build, reports / "2026-03-01")
        publish.write_text_atomic("<html>night %d</html>" % n, reports / "index.html")
        publish.write_parquet_atomic(frame, reports.parent / "data" / "quarantine" / "t" / "rows.parquet")
        if n == 1:
            print("published", flush=True)
""")


def test_kill_during_publishing_never_shows_a_partial_night(tmp_path: Path) -> None:
    rng = random.Random(9)
    reports = tmp_path / "reports"
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(reports)], stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdout.readline().strip() == "published"
        time.sleep(rng.uniform(0.01, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert_nothing_partial(tmp_path)
        n = json.loads((reports / D.isoformat() / "manifest.json").read_text())["n"]
        got = pl.read_parquet(reports / D.isoformat() / "loans" / "scores.parquet")
        assert got.height == 20_000 and set(got["night"]) == {n}  # the files of one night, never a mix
    from nightshift import publish

    publish.sweep_orphans(reports, D.isoformat())
    assert [b.resolve() for b in (reports / ".builds").iterdir()] == [(reports / D.isoformat()).resolve()]
    assert not list(reports.glob(".*.link"))


# -- the real thing ---------------------------------------------------------------------------------
def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHIFT_", "PREFECT_"))}
    return {**env, "NIGHTSHIFT_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def _nightshift() -> str:
    return str(Path(sys.executable).with_name("nightshift"))


def _run(home: Path, kill_when=None, delay: float = 0.0, timeout: float = 900) -> tuple[int | None, float]:
    """`nightshift run` for D in its own process group; SIGKILLed `delay` s after `kill_when(home)` holds.

    Returns the exit code (None when killed) and the seconds it ran. Output goes to `<home>.log`.
    """
    t0, started = time.monotonic(), time.time() - 0.01
    log = home.with_suffix(".log").open("a")
    p = subprocess.Popen([_nightshift(), "run", "--date", D.isoformat(), "--jobs", "loans"], env=_env(home),
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    killed = False
    try:
        while p.poll() is None:
            if time.monotonic() - t0 > timeout:
                raise TimeoutError("nightshift run took too long")
            if kill_when is not None and kill_when(home, started):
                time.sleep(delay)
                killed = p.poll() is None
                break
            time.sleep(0.05)
        if kill_when is None:
            p.wait()
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the run and its ephemeral Prefect server: no goodbyes
        except ProcessLookupError:
            pass
        p.wait()
        log.close()
    return (None if killed else p.returncode), time.monotonic() - t0


def _new(paths, since: float) -> bool:
    """Some path written by this attempt (not left by an earlier one)."""
    return any(p.exists() and p.lstat().st_mtime >= since for p in paths)


def _build(h: Path, name: str = "") -> list[Path]:
    return [b / name for b in (h / "reports" / ".builds").glob(f"{D}.*")]


# Points of a night, found by what this attempt has written so far, so the machine's speed does
# not matter; a delay after some of them lands inside the phase that follows.
KILL_POINTS = [
    ("while Prefect starts", lambda h, t: True, 2.0),
    ("just after the attempt is recorded", lambda h, t: _new([h / "data" / "state" / "runs" / f"{D}.json"], t), 0.0),
    ("during ingest", lambda h, t: _new(_build(h), t), 1.0),
    ("during the job", lambda h, t: _new(_build(h), t), 6.0),
    ("while the model is stored", lambda h, t: _new((h / "models" / "loans").glob(".tmp-*"), t), 0.0),
    ("after the model is registered", lambda h, t: _new([h / "models" / "loans" / "champion.json"], t), 0.1),
    ("after the job page, before publishing", lambda h, t: _new(_build(h, "loans.html"), t), 0.0),
    ("while publishing", lambda h, t: _new(_build(h, "manifest.json"), t), 0.0),
    ("after the swap, before the record", lambda h, t: _new([h / "reports" / D.isoformat()], t), 0.0),
]


def _outputs(home: Path) -> tuple[dict, dict[str, pl.DataFrame]]:
    build = (home / "reports" / D.isoformat()).resolve()
    manifest = json.loads((build / "manifest.json").read_text())
    statuses = {j: ("success" if v["status"] == "reused" else v["status"]) for j, v in manifest["jobs"].items()}
    inputs = {t: (v["rows_read"], v["rows_loaded"], v["rows_quarantined"]) for t, v in manifest["inputs"].items()}
    # The jobs' tables and person-level exports; not the shareable tier's DP copies, which are noisy
    # by design and drawn afresh in each home (each home has its own privacy ledger).
    frames = {str(p.relative_to(build)): pl.read_parquet(p) for p in sorted(build.rglob("*.parquet"))
              if p.relative_to(build).parts[0] != "shareable"}
    exports = home / "exports" / D.isoformat()
    frames |= {str(p.relative_to(home)): pl.read_parquet(p) for p in sorted(exports.rglob("*.parquet"))}
    return {"status": manifest["status"], "jobs": statuses, "inputs": inputs}, frames


@pytest.mark.slow
def test_kill_nightshift_run_at_many_points_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    from nightshift import demo

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    demo.generate(clean / "data" / "landing", end=D, size="tiny", seed=7)
    shutil.copytree(clean / "data" / "landing", killed / "data" / "landing")
    rc, _ = _run(clean)
    assert rc == 0, clean.with_suffix(".log").read_text()[-3000:]
    expected, expected_frames = _outputs(clean)
    assert expected["jobs"] == {"loans": "success"} and expected_frames

    rng = random.Random(3)
    for what, when, delay in KILL_POINTS:
        rc, _ = _run(killed, when, delay * rng.uniform(0.5, 1.5))
        assert_nothing_partial(killed)
        print(f"{what}: {'killed' if rc is None else f'finished first (rc {rc})'}")
    rc, _ = _run(killed)
    log = killed.with_suffix(".log").read_text()
    assert rc == 0, log[-3000:]
    assert_nothing_partial(killed)
    got, frames = _outputs(killed)
    assert got == expected
    assert frames.keys() == expected_frames.keys()
    for name, frame in expected_frames.items():
        assert frames[name].equals(frame), f"{name} differs from the uninterrupted run"
    records = json.loads((killed / "data" / "state" / "runs" / f"{D}.json").read_text())["attempts"]
    assert records[-1]["status"] == "success" and len(records) >= 2  # the killed attempts are on record


def test_sweep_clears_what_a_kill_inside_swap_in_leaves(tmp_path: Path) -> None:
    from nightshift import publish

    reports = tmp_path / "reports"
    first = publish.new_build_dir(reports, "2026-03-01")
    publish.swap_in(first, reports / "2026-03-01")
    second = publish.new_build_dir(reports, "2026-03-01")
    os.symlink(os.path.relpath(second, reports), reports / ".2026-03-01.deadbeef.link")  # killed before the rename
    assert publish.sweep_orphans(reports, "2026-03-01") == 1
    assert not second.exists() and not list(reports.glob(".*.link"))
    assert (reports / "2026-03-01").resolve() == first.resolve()


@pytest.mark.slow
def test_no_child_outlives_a_kill_of_the_run_process_alone(tmp_path):
    """`kill -9` of only the main process (not its group): the sales pool's workers and the forkserver
    are ended by the run's watchdog within seconds."""
    import psutil

    from nightshift import demo
    from nightshift.settings import load_settings

    demo.generate(load_settings(home=tmp_path).landing_dir, end=D, size="tiny", seed=2)
    env = {**os.environ, "NIGHTSHIFT_HOME": str(tmp_path)}
    main = subprocess.Popen([str(Path(sys.executable).with_name("nightshift")), "run", "--date", str(D),
                             "--jobs", "sales", "--force"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = psutil.Process(main.pid)
    deadline = time.monotonic() + 240
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and main.poll() is None:
        children = run.children(recursive=True)
        workers = [p for p in children if "nightshift.lifeline" not in " ".join(p.cmdline())]
        if len(workers) >= 2:  # the forkserver and a pool worker
            break
        time.sleep(0.2)
    assert len(workers) >= 2, "the sales job never started its process pool"
    main.kill()
    main.wait()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
