"""`python -m nightshift.bench --scale small|medium|large [--reps N] [--home DIR]`: print and save the results."""

from __future__ import annotations

import argparse
from pathlib import Path

from nightshift.bench import harness, workload


def _fmt_s(x: dict) -> str:
    return f"{x['median']:.2f}"


def print_tables(result: dict) -> None:
    """The per-stage table, bandwidth, re-run and throughput figures, with rich."""
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(Console().width, 130))  # the table stays readable when piped to a file
    t = Table(title=f"nightshift (A) vs pandas (B) — scale {result['scale']}, {result['reps']} reps, "
                    f"{result['machine']['cpus']} CPUs, load avg {result['machine']['load_avg_1m']}")
    for col in ("stage", "A median s", "A min–max", "B median s", "B min–max", "B/A", "A peak MiB", "B peak MiB"):
        t.add_column(col, justify="right" if col != "stage" else "left")
    for stage, row in result["stages"].items():
        a, b = row["nightshift"], row["pandas"]
        ratio = row["ratio_b_over_a"]
        t.add_row(stage.replace("_", " "), _fmt_s(a["seconds"]), f"{a['seconds']['min']:.2f}–{a['seconds']['max']:.2f}",
                  _fmt_s(b["seconds"]), f"{b['seconds']['min']:.2f}–{b['seconds']['max']:.2f}",
                  f"[{'green' if ratio and ratio >= 1 else 'red'}]{ratio:.2f}×[/]" if ratio else "—",
                  f"{a['peak_mib']:.0f}", f"{b['peak_mib']:.0f}")
    con.print(t)
    if "cold_start" in result:
        c = result["cold_start"]
        con.print(f"A's load is a night: the warehouse holds earlier nights (drops up to the day before) and the "
                  f"night checks every drop's hash and loads the new day. Cold start (empty warehouse, "
                  f"{sum(c['rows_loaded'].values()):,} rows of history): {c['nightshift_seconds']:.2f} s, peak "
                  f"{c['nightshift_peak_mib']:.0f} MiB vs pandas' load stage run right before and after it "
                  f"{' / '.join(f'{s:.2f}' for s in c['pandas_load_each'])} s (median "
                  f"{c['pandas_load_seconds']:.2f} s) = "
                  f"{c['ratio_b_over_a']:.2f}×; against its bare read of the files (no cleaning) "
                  f"{c['pandas_bare_read_seconds']:.2f} s = {c['bare_read_ratio']:.2f}× "
                  f"(once per warehouse, not per night). The behavior job's kept event "
                  f"history, built from nothing as the first night does (later nights only add their new events): "
                  f"{c['kept_history_seconds']:.2f} s, peak {c['kept_history_peak_mib']:.0f} MiB")
    bw = result["machine"]["memory_bandwidth"]
    con.print(f"memory copy bandwidth {bw['copy_gb_s']} GB/s (read+write, numpy {bw['array_mib']} MiB copy)")
    for stage, fig in result["bandwidth"].items():
        con.print(f"{stage}: {fig['bytes'] / 1e6:.1f} MB scanned — nightshift {fig['nightshift']['gb_s']} GB/s "
                  f"({fig['nightshift']['of_copy_bandwidth']:.2%} of copy bw), pandas {fig['pandas']['gb_s']} GB/s "
                  f"({fig['pandas']['of_copy_bandwidth']:.2%})")
    ag = result["agreement"]
    con.print(f"same outputs (row counts and sums): {ag['same_counts']}; holdout AUC A {ag['nightshift'].get('auc')} "
              f"/ B {ag['pandas'].get('auc')}; forecast MAE A {ag['nightshift'].get('forecast_mae')} "
              f"/ B {ag['pandas'].get('forecast_mae')}")
    if "rerun" in result:
        r = result["rerun"]
        con.print(f"unchanged re-run ({', '.join(r['jobs'])}): {r['rerun_seconds']:.2f} s vs cold {r['cold_seconds']:.2f} s "
                  f"= {r['rerun_fraction']:.1%}; statuses {r['rerun_status']}")
    for name in ("sales", "energy"):
        if f"{name}_bench" in result:
            con.print(f"{name} bench: {result[f'{name}_bench']}")
    con.print(f"peak memory method: {result['memory_method']}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m nightshift.bench", description=__doc__)
    p.add_argument("--scale", choices=list(workload.SCALES), default="small")
    p.add_argument("--reps", type=int, default=None, help="A/B pairs (default: 3 small, 2 medium, 1 large)")
    p.add_argument("--home", type=Path, default=None, help="nightshift home (default: the settings' home)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rerun-jobs", default="loans", help="jobs for the cold vs re-run figure ('' to skip)")
    p.add_argument("--extras", default="sales,energy", help="helper benchmarks to run ('' to skip)")
    args = p.parse_args(argv)
    from nightshift.settings import load_settings

    home = args.home or load_settings().home
    reps = args.reps or {"tiny": 1, "small": 3, "medium": 2, "large": 1}[args.scale]
    result, path = harness.run(
        args.scale, reps, home / "data" / "bench", home / "reports" / "bench", seed=args.seed,
        rerun_jobs=[j for j in args.rerun_jobs.split(",") if j],
        extras_for=tuple(x for x in args.extras.split(",") if x))
    print_tables(result)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
