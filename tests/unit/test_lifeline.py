"""The watchdog ends what a killed run leaves behind, including children it never saw while polling."""

import os
import subprocess
import sys

import psutil

from nightshift import lifeline


def _sleeper(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)


def test_a_child_carrying_the_runs_token_is_ended_after_the_run_dies():
    marked = _sleeper({**os.environ, lifeline.TOKEN: "run-a"})
    other = _sleeper({**os.environ, lifeline.TOKEN: "run-b"})  # another run's child is left alone
    dead_run = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_run.wait()
    try:
        lifeline.watch(dead_run.pid, "run-a")
        assert marked.wait(timeout=10) is not None
        assert psutil.Process(other.pid).is_running()
    finally:
        for p in (marked, other):
            p.kill()
            p.wait()


def test_without_a_token_nothing_is_scanned():
    assert lifeline._carrying("") == []


def test_the_runs_token_is_not_taken_for_a_mistyped_setting(monkeypatch, caplog, tmp_path):
    from nightshift.settings import load_settings

    monkeypatch.setenv(lifeline.TOKEN, "run-a")
    monkeypatch.setenv("NIGHTSHIFT_SEEED", "3")  # the control: a real typo is still named
    with caplog.at_level("WARNING"):
        load_settings(home=tmp_path)
    assert "NIGHTSHIFT_SEEED is not a setting" in caplog.text
    assert lifeline.TOKEN not in caplog.text
