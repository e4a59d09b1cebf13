"""nightshift: nightly batch analytics — load, check, model, publish privacy-safe reports.

The package is built in floors; each imports only from the floors below it:

1. settings, tables — typed settings; the five tables' specs
2. warehouse, sources, publish — DuckDB and `run_sql`; where rows come from; atomic writes
3. contracts, ingest — checks and quarantine; loading drops
4. privacy, registry, modeling, reporting — DP releases and ledger; model versions and the
   selection rule; model families; pages
5. jobs/<job>/ — one package per job (`job.py:run(ctx)`), its SQL in sql/marts/<job>/
6. night — `run_night`: the night's whole sequence, with an injected `submit`
7. cli, backfill, serve_cli, schedule, bench, and flows/ (outside this package) — the shells

A new job is a folder under jobs/ plus one line in `jobs.JOBS`; a new table a spec in `tables`.
"""

__version__ = "0.1.0"
