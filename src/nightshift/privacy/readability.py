"""How many published cells of a night's releases can be read through their noise.

A cell is one measure of one row of a released table (a value with its `<measure>_moe`). It is
*unreadable* when it was suppressed (null) or its value is not above its 95% margin of error: the
noise could have made it up. Choosing groupings, windows and ε splits is about keeping this count
low at a budget worth signing (docs/PRIVACY.md, "Measured on a demo night"). Everything here reads
the stored noisy tables only, so it costs no privacy.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from nightshift.privacy.store import Store


def count_cells(table: pl.DataFrame) -> tuple[int, int]:
    """(cells, unreadable) of one released table; a key selection (no margins) has no cells."""
    measures = [c.removesuffix("_moe") for c in table.columns if c.endswith("_moe")]
    unreadable = sum(int((table[m].is_null() | (table[m].cast(pl.Float64).abs() <= table[f"{m}_moe"].cast(pl.Float64)))
                         .sum()) for m in measures)
    return table.height * len(measures), unreadable


def night(store: Store, run_date: date) -> pl.DataFrame:
    """Per release charged on `run_date` (its newest, when charged twice): ε, δ, cells and unreadable ones.

    On a fresh home every release is charged on the first night, so this measures all of them."""
    newest = {}
    for e in store.entries():
        d = e.data
        if d["kind"] == "charge" and d["run_date"] == run_date.isoformat():
            newest[(d["job"], d["release"])] = e  # entries are in charge order: later is newer
    rows = []
    for (job, name), e in sorted(newest.items()):
        cells, bad = count_cells(store.table(e))
        rows.append({"job": job, "release": name, "epsilon": float(e.data["epsilon"]),
                     "delta": float(e.data.get("delta", 0.0)), "cells": cells, "unreadable": bad})
    schema = {"job": pl.String, "release": pl.String, "epsilon": pl.Float64, "delta": pl.Float64,
              "cells": pl.Int64, "unreadable": pl.Int64}
    return pl.DataFrame(rows, schema=schema)

