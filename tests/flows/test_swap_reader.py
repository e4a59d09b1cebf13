"""The atomic swap under a reader: while nights for D are published again and again (and publishers are
killed at random moments), a process reading `reports/<D>/` never sees a missing file, a half-written file,
or a manifest that disagrees with the pages.

`test_kill` inspects the folder after each kill; this test watches it *during* the swaps, which is where
publishing the link in two steps (unlink, then symlink) or removing the old build before the link has
moved shows: both leave moments, some only microseconds long, in which `reports/<D>/<file>` cannot be
opened. The reader alternates whole passes over the night with bursts of quick opens of its run page,
which look the link up every few microseconds, so even the shortest gap is seen within a few swaps.

The reader opens `reports/<D>/<file>` paths, as people and tools do, never a resolved build folder. A
pass may legitimately straddle a swap: a file opened through the link just as the link moves on can
belong to the build being removed. So a failed open is a violation only when the link had not moved,
or when the file was there both in the build the pass began with and in the one the link names now
(then the link itself was missing or named something incomplete in between). Half-written files are
violations in every pass; files of two builds are violations only in a pass the link did not move in.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path
from typing import IO

D = date(2026, 3, 1)
JOBS = ("loans", "sales", "inventory")
WRITERS, NIGHTS_PER_WRITER = 3, 25  # 75 swaps: enough to catch a two-step swap with overwhelming odds

# A night for D as the nightly flow publishes it (`night.publish_night`: manifest, run page, swap,
# index of nights), over and over. The jobs' work is stood in for by one Parquet file and one page
# per job, each carrying the run id, so a reader can tell which build a file came from.
WRITER = textwrap.dedent("""
    import sys
    from datetime import date
    from pathlib import Path

    import polars as pl

    from nightshift import night, publish
    from nightshift.settings import load_settings

    settings = load_settings(home=Path(sys.argv[1]))
    run_date, jobs, first = date.fromisoformat(sys.argv[2]), sys.argv[3].split(","), True
    name = run_date.isoformat()
    print("ready", flush=True)
    sys.stdin.readline()  # imported while the previous publisher works; then one at a time, as under the lock
    while True:
        publish.sweep_orphans(settings.reports_dir, name)  # as the flow does before each night
        attempt = night.new_attempt("test")
        run_id = attempt["run_id"]
        build = publish.new_build_dir(settings.reports_dir, name)
        outcomes = []
        for job in jobs:
            (build / job).mkdir()
            frame = pl.DataFrame({"row": range(500), "run_id": [run_id] * 500})
            frame.write_parquet(build / job / "scores.parquet")
            (build / f"{job}.html").write_text(f"<html><p>run {run_id}</p>{'x' * 20_000}</html>")
            outputs = [f"{job}/scores.parquet", f"{job}.html"]
            outcomes.append(night.JobOutcome(job, "success", outputs=outputs))
        night.publish_night(settings, run_date, build, outcomes, attempt, {}, {})
        if first:
            print("published", flush=True)
            first = False
""")

READER = textwrap.dedent("""
    import json, os, sys, time
    import pyarrow as pa
    import pyarrow.parquet as pq

    reports, name, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    link = os.path.join(reports, name)
    seen = {"passes": 0, "straddled": 0, "quick_opens": 0, "violations": 0, "first": []}
    builds = set()
    QUICK_OPENS = 500  # about as long as a whole pass: half the time, a gap of microseconds is seen


    def read(rel):
        with open(os.path.join(link, rel), "rb") as fh:
            return fh.read()


    def failed_open(before, rel, err):
        # The one legitimate failure: the link moved on and the build it left is being removed.
        # Anything else means the link was missing or named an incomplete build at that moment.
        if not isinstance(err, (FileNotFoundError, NotADirectoryError)):
            return f"{rel}: {err!r}"
        try:
            now = os.readlink(link)
        except FileNotFoundError:
            return f"reports/{name} was missing (opening {rel})"
        if now == before:
            return f"{rel} was missing from the published build {before}"
        if all(os.path.lexists(os.path.join(reports, build, rel)) for build in (before, now)):
            return f"{rel} could not be opened though both {before} and {now} had it"
        return None


    def half_written(pages, tables):
        # Returns the problems and the run ids each Parquet file holds.
        bad = [f"{rel} is cut short" for rel, data in pages.items() if not data.rstrip().endswith(b"</html>")]
        ids = {}
        for rel, data in tables.items():
            try:
                ids[rel] = set(pq.read_table(pa.BufferReader(data)).column("run_id").to_pylist())
            except Exception as e:
                bad.append(f"{rel} is not a complete Parquet file: {e!r}")
        return bad, ids


    def disagreements(manifest, pages, ids, listed):
        run_id = manifest["run_id"]
        bad = [] if manifest["run_date"] == name else [f"manifest is for {manifest['run_date']}"]
        bad += [f"{rel} is not from run {run_id}"
                for rel, data in pages.items() if run_id.encode() not in data]
        bad += [f"{rel} holds runs {sorted(got)}, the manifest {run_id}"
                for rel, got in ids.items() if got != {run_id}]
        for job, files in listed.items():
            outputs = sorted(o.split("/", 1)[1] for o in manifest["jobs"][job]["outputs"] if "/" in o)
            if files != outputs:
                bad.append(f"{job}/ holds {files}, the manifest lists {outputs}")
        return bad


    def one_pass():
        # Everything a night shows, through the link; returns the violations and whether the link moved.
        try:
            before = os.readlink(link)
        except OSError as e:
            return [f"reports/{name} could not be followed: {e.strerror}"], False
        rel, pages, tables, listed = "manifest.json", {}, {}, {}
        try:
            manifest = json.loads(read(rel))
            rel = "index.html"
            pages[rel] = read(rel)
            for job, entry in manifest["jobs"].items():
                for rel in entry["outputs"]:
                    (tables if rel.endswith(".parquet") else pages)[rel] = read(rel)
                rel = job
                listed[job] = sorted(os.listdir(os.path.join(link, job)))
        except OSError as e:
            problem = failed_open(before, rel, e)
            return ([problem] if problem else []), True
        except (ValueError, KeyError) as e:
            return [f"manifest.json is unreadable: {e!r}"], False
        bad, ids = half_written(pages, tables)
        try:
            after = os.readlink(link)
        except OSError as e:
            return bad + [f"reports/{name} could not be followed: {e.strerror}"], False
        if after != before:
            return bad, True  # files of two builds are expected in this pass; completeness is not
        builds.add(manifest["run_id"])
        return bad + disagreements(manifest, pages, ids, listed), False


    def quick_opens(n):
        # Many quick opens of the run page, as a web server answering requests makes: the link is
        # looked up every few microseconds, so even a gap of a few microseconds in it is seen.
        try:
            before = os.readlink(link)
        except OSError as e:
            return [f"reports/{name} could not be followed: {e.strerror}"], False
        page = os.path.join(link, "index.html")
        for _ in range(n):
            try:
                os.close(os.open(page, os.O_RDONLY))
            except OSError as e:
                problem = failed_open(before, "index.html", e)
                return ([problem] if problem else []), True
        try:
            return [], os.readlink(link) != before
        except OSError as e:
            return [f"reports/{name} could not be followed: {e.strerror}"], False


    def note(bad):
        seen["violations"] += len(bad)
        seen["first"] += bad[: max(0, 20 - len(seen["first"]))]  # the first few say what went wrong


    while not os.path.lexists(link):  # the first night is still being published
        time.sleep(0.01)
    print("reading", flush=True)
    while seen["passes"] % 20 or not os.path.exists(stop):
        bad, moved = one_pass()
        seen["passes"] += 1
        seen["straddled"] += moved
        note(bad)
        bad, moved = quick_opens(QUICK_OPENS)
        seen["quick_opens"] += QUICK_OPENS
        seen["straddled"] += moved
        note(bad)
    print(json.dumps({**seen, "builds": len(builds)}))
""")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIGHTSHIFT_", "PREFECT_"))}
    return {**env, "NIGHTSHIFT_HOME": str(home), "PYTHONUNBUFFERED": "1"}


class Writer:
    """A publisher of nights for D in its own process, started ahead so that its imports overlap."""

    def __init__(self, home: Path, log: IO[str]) -> None:
        self.log = log
        self.p = subprocess.Popen([sys.executable, "-c", WRITER, str(home), D.isoformat(), ",".join(JOBS)],
                                  env=_env(home), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                  text=True)

    def _expect(self, line: str) -> None:
        assert self.p.stdout is not None
        if self.p.stdout.readline().strip() != line:
            self.stop()
            self.log.flush()
            raise AssertionError(f"the publisher died before {line!r}:\n{self.log_tail()}")

    def log_tail(self) -> str:
        """What the publishers wrote to stderr, last part."""
        return Path(self.log.name).read_text()[-3000:]

    def go(self) -> None:
        """Start publishing; return once the first night is in place."""
        assert self.p.stdin is not None
        self._expect("ready")
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        self._expect("published")

    def stop(self) -> None:
        """SIGKILL, wherever it is."""
        self.p.kill()
        self.p.wait()
        for pipe in (self.p.stdin, self.p.stdout):
            if pipe is not None:
                pipe.close()


def _wait_for_swaps(link: Path, count: int, writer: Writer, timeout: float = 120) -> int:
    """Wait until `link` has been pointed at `count` more builds (polled, so possibly a few more).

    Returns how often the link was found missing: this poller is a reader too.
    """
    seen, missing, last, deadline = 0, 0, os.readlink(link), time.monotonic() + timeout
    while seen < count:
        assert writer.p.poll() is None, f"the publisher died:\n{writer.log_tail()}"
        assert time.monotonic() < deadline, f"only {seen} nights published in {timeout} s"
        time.sleep(0.005)
        try:
            now = os.readlink(link)
        except FileNotFoundError:
            missing += 1
            continue
        seen, last = seen + (now != last), now
    return missing


def test_a_reader_never_sees_a_partial_or_mixed_night_while_nights_are_swapped_in(tmp_path: Path) -> None:
    rng, missing = random.Random(16), 0
    home, stop = tmp_path / "home", tmp_path / "stop"
    reports = home / "reports"
    with (tmp_path / "writer.log").open("w") as log:
        writers = [Writer(home, log)]
        reader = subprocess.Popen([sys.executable, "-c", READER, str(reports), D.isoformat(), str(stop)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            writers[0].go()
            assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
            for i in range(WRITERS):
                if i + 1 < WRITERS:
                    writers.append(Writer(home, log))
                # Counted in nights rather than seconds, so a slow or busy machine tests as many swaps.
                missing += _wait_for_swaps(reports / D.isoformat(), NIGHTS_PER_WRITER, writers[i])
                time.sleep(rng.uniform(0, 0.2))  # then a kill at a random moment of publishing
                writers[i].stop()
                if i + 1 < WRITERS:
                    writers[i + 1].go()
            stop.touch()
            out, err = reader.communicate(timeout=60)
        finally:
            for w in writers:
                w.stop()
            reader.kill()
            reader.wait()
    assert reader.returncode == 0, err[-3000:]
    seen = json.loads(out.splitlines()[-1])
    print(seen)
    assert (seen["violations"], missing) == (0, 0), (
        f"{seen['violations']} violations, the first: {seen['first']}; "
        f"reports/{D} found missing by the poller {missing} times")
    # Not vacuous: many whole passes, over many different nights, and reads that overlapped swaps.
    assert seen["passes"] >= 200 and seen["builds"] >= 10 and seen["straddled"] >= 5, seen
