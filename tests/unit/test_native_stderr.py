"""TensorFlow's start-up lines stay off the terminal (kept in the log); anything else written meanwhile
reaches it; `-v` (TF_CPP_MIN_LOG_LEVEL=0) lets everything through as it comes.

The lines are written to file descriptor 2 the way TensorFlow's C++ writes them, in a child process,
so the redirection is the real one and pytest's own capture is not in the way.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

START_UP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796177611.674248   28643 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results",
    "I0000 00:00:1796177611.739484   28643 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
]
OTHER = ["E0000 00:00:1796177611.1 28643 gpu.cc:12] a real error", "a line another thread printed"]

CHILD = """
import logging, os, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="log: %(name)s: %(message)s")
from nightshift.native_stderr import held
lines = sys.argv[1:]
with held():
    for line in lines:
        os.write(2, (line + "\\n").encode())
"""


def _child(level: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}
    return subprocess.run([sys.executable, "-c", CHILD, *START_UP, *OTHER], capture_output=True, text=True,
                          env=env, check=True)


def test_start_up_lines_go_to_the_log_and_the_rest_to_the_terminal():
    out = _child("3")
    assert out.stderr.splitlines() == OTHER
    assert out.stdout.splitlines() == [f"log: tensorflow: {line}" for line in START_UP]


def test_verbose_lets_every_line_through_as_it_comes():
    out = _child("0")
    assert out.stderr.splitlines() == [*START_UP, *OTHER]
    assert out.stdout == ""


def test_sort_lines_keeps_the_order_of_what_reaches_the_terminal(capsys, caplog):
    from nightshift.native_stderr import sort_lines

    with caplog.at_level(logging.INFO, logger="tensorflow"):
        sort_lines("\n".join([OTHER[1], START_UP[1], OTHER[0], ""]), logging.getLogger("tensorflow"))
    assert capsys.readouterr().err.splitlines() == [OTHER[1], OTHER[0]]
    assert [r.getMessage() for r in caplog.records] == [START_UP[1]]


def test_what_a_failed_load_wrote_still_reaches_the_terminal():
    code = ("import os\nfrom nightshift.native_stderr import held\nwith held():\n"
            "    os.write(2, b'libtensorflow.so: cannot open shared object file\\n')\n"
            "    raise ImportError('no TensorFlow')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode != 0
    assert out.stderr.startswith("libtensorflow.so: cannot open shared object file\n")
    assert "ImportError: no TensorFlow" in out.stderr
