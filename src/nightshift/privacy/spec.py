"""Declared releases and their query plan: sensitivities from declared bounds, ε split across queries.

A release asks a few *noisy queries* of one bounded input, each one vector over all declared cells:

- ``rows``: the number of bounded rows per cell (used by ``Count`` and by every ``Mean``);
- ``units``: the number of distinct units per cell (``Count(distinct=True)``);
- ``sum:<column>:<lower>:<upper>``: the clipped sum of a column per cell (``Sum`` and ``Mean``).

Queries shared by several measures are asked once. The release's ε is split **equally** across its
noisy queries (sequential composition: n queries at ε/n each give ε for the release). Each query's
L1 sensitivity over the whole vector comes from the declaration only — K rows per unit, at most K
distinct cells per unit, K·max(|L|, |U|) for a sum — so the Laplace scale is sensitivity / (ε/n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Count:
    """A count per cell: bounded rows, or distinct units when `distinct`."""

    name: str
    distinct: bool = False


@dataclass(frozen=True)
class Sum:
    """A sum per cell of `column`, each value clipped to [lower, upper] in units of `resolution`."""

    name: str
    column: str
    lower: float
    upper: float
    resolution: float = 1.0  # integer cents: 1; kWh to 0.01: 0.01 (noise is on integers)


@dataclass(frozen=True)
class Mean:
    """A mean per cell: noisy clipped sum / noisy row count; suppressed when the count is too noisy."""

    name: str
    column: str
    lower: float
    upper: float
    resolution: float = 1.0


Measure = Count | Sum | Mean


@dataclass(frozen=True)
class Release:
    """A declared DP release: unit, public keys, measures, contribution bound K and ε."""

    name: str
    dataset: str  # key of settings.privacy_budgets: users, applicants, households
    unit: str  # the privacy unit column in the frame
    keys: dict[str, list[Any]] = field(default_factory=dict)  # public key values, declared up front
    measures: list[Measure] = field(default_factory=list)
    # K: rows (distinct cells for a distinct count) one unit may contribute to the whole release, i.e.
    # to its window (the frame passed in: one day, the last 28 days, ...), across all cells together.
    max_rows_per_unit: int = 1
    epsilon: float = 0.1
    # key column -> the public list its values come from (`privacy_public_keys.<list>` or that list's DP
    # key selection, see nightshift.privacy.keys); the layer refuses values the list does not hold.
    # Key columns not named here hold code constants: the calendar, the channel enum, fixed bins.
    public_lists: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError naming what is wrong with the declaration."""
        where = f"release {self.name!r}"
        if not self.name or not self.measures:
            raise ValueError(f"{where}: needs a name and at least one measure")
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise ValueError(f"{where}: epsilon must be a positive number, got {self.epsilon!r}")
        if int(self.max_rows_per_unit) != self.max_rows_per_unit or self.max_rows_per_unit < 1:
            raise ValueError(f"{where}: max_rows_per_unit must be an integer >= 1")
        names = [m.name for m in self.measures]
        taken = set(self.keys) | {self.unit}
        out_cols = [c for n in names for c in (n, f"{n}_moe")] + [f"{m.name}_note" for m in self.measures
                                                                  if isinstance(m, Mean)]
        if len(set(out_cols)) != len(out_cols) or taken & set(out_cols):
            raise ValueError(f"{where}: measure names must be unique and differ from key/unit columns")
        for col in self.public_lists:
            if col not in self.keys:
                raise ValueError(f"{where}: public list given for {col!r}, which is not a key column")
        for col, values in self.keys.items():
            if len(values) == 0 or len(set(values)) != len(values):
                raise ValueError(f"{where}: key {col!r} needs a non-empty list of distinct public values")
        for m in self.measures:
            if isinstance(m, Sum | Mean):
                if not (m.lower <= m.upper) or not (m.resolution > 0):
                    raise ValueError(f"{where}: measure {m.name!r} needs lower <= upper and resolution > 0")
                lo, hi = int_bounds(m)
                if max(abs(lo), abs(hi)) == 0:
                    raise ValueError(f"{where}: measure {m.name!r} has bounds that clip every value to 0")


def int_bounds(m: Sum | Mean) -> tuple[int, int]:
    """The declared clip bounds in integer units of the measure's resolution (inward rounding)."""
    return math.ceil(m.lower / m.resolution - 1e-9), math.floor(m.upper / m.resolution + 1e-9)


@dataclass(frozen=True)
class Query:
    """One noisy vector: what it counts or sums, its L1 sensitivity, its ε share and its scale."""

    key: str  # rows | units | sum:<column>:<lo>:<hi>:<resolution>
    sensitivity: int
    epsilon: float

    @property
    def scale(self) -> float:
        return self.sensitivity / self.epsilon


def sum_key(m: Sum | Mean) -> str:
    lo, hi = int_bounds(m)
    return f"sum:{m.column}:{lo}:{hi}:{m.resolution!r}"


def plan(release: Release) -> dict[str, Query]:
    """The noisy queries a release asks, with sensitivity from K and bounds and an equal ε split."""
    k = int(release.max_rows_per_unit)
    needed: dict[str, int] = {}
    for m in release.measures:
        if isinstance(m, Count):
            needed["units" if m.distinct else "rows"] = k
        else:
            lo, hi = int_bounds(m)
            needed[sum_key(m)] = k * max(abs(lo), abs(hi))
            if isinstance(m, Mean):
                needed["rows"] = k
    share = release.epsilon / len(needed)
    return {key: Query(key, sens, share) for key, sens in needed.items()}


def sum_columns(release: Release) -> list[tuple[str, int, int, float]]:
    """The distinct (column, lower, upper, resolution) value columns the bounding step must clip."""
    seen: dict[str, tuple[str, int, int, float]] = {}
    for m in release.measures:
        if isinstance(m, Sum | Mean):
            lo, hi = int_bounds(m)
            seen.setdefault(sum_key(m), (m.column, lo, hi, m.resolution))
    return list(seen.values())


def describe(release: Release) -> dict[str, Any]:
    """A stable, JSON-able description of the declaration (part of the release's input hash)."""
    return {
        "name": release.name,
        "dataset": release.dataset,
        "unit": release.unit,
        "keys": {c: [str(v) for v in vs] for c, vs in release.keys.items()},
        "measures": [{"type": type(m).__name__, **{k: repr(v) for k, v in vars(m).items()}}
                     for m in release.measures],
        "k": int(release.max_rows_per_unit),
        "epsilon": repr(float(release.epsilon)),
    }
