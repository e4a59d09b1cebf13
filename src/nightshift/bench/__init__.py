"""`make bench`: nightshift's way (A) against a competent pandas + scikit-learn baseline (B).

Same data, same work, same models, interleaved A/B/A/B in fresh child processes; per stage
(load, aggregate, train, forecast, score, write) and end to end: median and min–max seconds,
the ratio B/A, peak memory; plus memory bandwidth, bytes scanned per second, the unchanged
re-run of a date vs the cold run, and the jobs' own throughput benchmarks when present.
Modules: `workload` (what is done), `nightshift_side`/`pandas_side` (how), `worker` (one rep in a
process), `memory` (peak RSS, bandwidth), `rerun`, `extras`, `harness` (the run), `__main__` (CLI).
"""
