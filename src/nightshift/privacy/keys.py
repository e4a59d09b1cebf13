"""Public keys: where the key values of a release may come from, and DP key selection.

A key that appears only because some person's row mentions it leaks that row, so a release's keys
come from one of two places:

- a **declared public list** in the settings (`privacy_public_keys.<list>`: the campaign catalogue,
  the service regions), decided without looking at the data;
- a **DP key selection** over the values the data holds: per candidate value, the number of distinct
  units (at most K values per unit, chosen by a salted hash in SQL), plus Laplace noise, kept only when
  the noisy count reaches a threshold. This is OpenDP's `make_laplace_threshold` (propose-test-release
  on a map of counts): it is (ε, δ)-DP, δ being the chance that a value held by a handful of people
  clears the threshold. The threshold is the smallest one whose δ, by OpenDP's own privacy map, is at
  most the declared δ; ε and δ are charged to the ledger like any release.

Values outside the list (declared or selected) are folded into one public cell, `OTHER`, before the
release: they are counted there, never named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
from opendp import domains, measurements, metrics
from opendp.mod import Measurement, binary_search, enable_features

OTHER = "other"  # the public cell every value outside the key list is counted in
MAX_THRESHOLD = 10**9


@dataclass(frozen=True)
class KeySelection:
    """A DP choice of the values of `column` to use as keys, for a list not declared in the settings."""

    name: str
    dataset: str  # key of settings.privacy_budgets
    unit: str  # the privacy unit column
    column: str  # the candidate key column
    public_list: str  # the settings list (privacy_public_keys.<name>) that would make this unnecessary
    max_keys_per_unit: int = 1  # K: distinct values one unit may count towards
    epsilon: float = 0.05
    delta: float = 1e-7

    def validate(self) -> None:
        where = f"key selection {self.name!r}"
        if not (self.epsilon > 0 and 0 < self.delta < 1):
            raise ValueError(f"{where}: needs epsilon > 0 and 0 < delta < 1")
        if int(self.max_keys_per_unit) != self.max_keys_per_unit or self.max_keys_per_unit < 1:
            raise ValueError(f"{where}: max_keys_per_unit must be an integer >= 1")

    @property
    def scale(self) -> float:
        # One unit adds 1 to at most K distinct values' counts: L1 sensitivity K.
        return self.max_keys_per_unit / self.epsilon

    @property
    def distance(self) -> tuple[int, int, int]:
        """The neighbour distance OpenDP maps: (values changed, L1, L∞) = (K, K, 1)."""
        k = int(self.max_keys_per_unit)
        return k, k, 1


def _mechanism(scale: float, threshold: int) -> Measurement:
    enable_features("contrib")
    space = domains.map_domain(domains.atom_domain(T=str), domains.atom_domain(T="i64"))
    return measurements.make_laplace_threshold(space, metrics.l01inf_distance(metrics.absolute_distance(T="i64")),
                                               scale=scale, threshold=threshold)


def threshold(selection: KeySelection) -> int:
    """The smallest threshold whose δ (OpenDP's privacy map) is at most the selection's δ."""

    def fits(t: int) -> bool:
        return _mechanism(selection.scale, t).map(selection.distance)[1] <= selection.delta

    lowest = int(selection.max_keys_per_unit)
    if fits(lowest):  # a δ so large the lowest threshold meets it: binary_search wants the boundary inside
        return lowest
    return int(binary_search(fits, bounds=(lowest, MAX_THRESHOLD), T=int))


def privacy_loss(selection: KeySelection, at: int) -> tuple[float, float]:
    """(ε, δ) of the selection at threshold `at`, by OpenDP's privacy map."""
    eps, delta = _mechanism(selection.scale, at).map(selection.distance)
    return float(eps), float(delta)


def select(selection: KeySelection, counts: dict[str, int], at: int) -> dict[str, int]:
    """The noisy counts of the values whose noisy count clears the threshold (the others are dropped)."""
    return {str(k): int(v) for k, v in _mechanism(selection.scale, at)(
        {str(k): int(v) for k, v in counts.items() if v > 0}).items()}


def fold_other(frame: pl.DataFrame, column: str, keys: list[Any]) -> pl.DataFrame:
    """`frame` with every value of `column` outside `keys` (nulls included) replaced by OTHER."""
    kept = [str(k) for k in keys]
    value = pl.col(column).cast(pl.String)
    return frame.with_columns(pl.when(value.is_in(kept)).then(value).otherwise(pl.lit(OTHER)).alias(column))


def with_other(keys: list[Any]) -> list[str]:
    """The release's key values: the public list, then the OTHER cell (once)."""
    out = [str(k) for k in keys if str(k) != OTHER]
    return [*dict.fromkeys(out), OTHER]
