"""The other helpers' throughput benchmarks, run in a child process when their modules exist.

`bench_sales` (sales series per second vs the naive loop) and `bench_energy` (network training
windows per second) live with their jobs; a child process keeps TensorFlow out of the harness.
`python -m nightshift.bench.extras <sales|energy> <size> <out.json>`
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

BENCHES = {"sales": ("nightshift.bench.sales", "bench_sales"),
           "energy": ("nightshift.bench.energy", "bench_energy")}


def available(name: str) -> bool:
    """Whether that helper's benchmark module is installed."""
    return importlib.util.find_spec(BENCHES[name][0]) is not None


def run_in_child(name: str, size: str, out: Path, timeout_s: float) -> dict:
    """Run one helper benchmark in a child process; its JSON, or why there is none."""
    if not available(name):
        return {"skipped": f"{BENCHES[name][0]} not present"}
    try:
        proc = subprocess.run([sys.executable, "-m", "nightshift.bench.extras", name, size, str(out)],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0 or not out.exists():
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
    return json.loads(out.read_text())


def main(argv: list[str]) -> None:
    name, size, out = argv
    module, fn_name = BENCHES[name]
    fn = getattr(importlib.import_module(module), fn_name)
    params = inspect.signature(fn).parameters
    kwargs = {"size": size} if "size" in params else {}
    result = fn(**kwargs)
    Path(out).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
