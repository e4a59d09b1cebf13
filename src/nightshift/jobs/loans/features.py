"""Loan features: which columns the model uses, the one place categories are encoded, time splits.

The feature rows themselves come from `sql/marts/loans/features.sql` (point-in-time, canonical
columns only). Here they become a numeric matrix: numeric columns as they are, categorical ones
one-hot against a vocabulary learned on the training window (unseen levels fall into `other`),
so XGBoost and the logistic baseline see exactly the same encoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

NUMERIC = [
    "amount", "annual_income", "interest_rate", "term_months", "debt_to_income", "credit_score",
    "employment_years", "loan_to_income", "payment_to_income",
]
# No applicant-history features: history is cut off where the data starts, so they would differ
# between early training rows and tonight's applications for no reason about the applicant.
CATEGORICAL = ["home_ownership", "purpose", "region"]
# Domain knowledge the model must respect: risk never falls as debt or price rises, or as score falls.
MONOTONE = {"debt_to_income": 1, "credit_score": -1, "interest_rate": 1}
MIN_LEVEL_ROWS = 20  # rarer categories are pooled into "other"
OTHER = "other"


@dataclass
class Encoder:
    """The fixed mapping from feature rows to a float matrix (numeric + one-hot categories)."""

    numeric: list[str] = field(default_factory=lambda: list(NUMERIC))
    levels: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pl.DataFrame, min_rows: int = MIN_LEVEL_ROWS) -> Encoder:
        """Learn each category's levels (those with at least `min_rows` rows) from training rows.

        A feature the source does not have (an optional column left out: every training value null)
        is left out of the model, not fed as zeros; `absent` names them for the page."""
        present = [c for c in (*NUMERIC, *CATEGORICAL) if frame[c].null_count() < frame.height]
        levels = {}
        for col in (c for c in CATEGORICAL if c in present):
            counts = frame.group_by(col).len().filter(pl.col("len") >= min_rows).sort(col)
            levels[col] = [v for v in counts[col].to_list() if v is not None and v != OTHER] + [OTHER]
        return cls([c for c in NUMERIC if c in present], levels)

    @property
    def absent(self) -> list[str]:
        """Features the model does without because the data has none of them."""
        return [c for c in (*NUMERIC, *CATEGORICAL) if c not in self.numeric and c not in self.levels]

    @property
    def names(self) -> list[str]:
        """Matrix column names: numeric features, then `<category>=<level>` (level text made safe for
        XGBoost, which refuses `[`, `]` and `<` in names; any text from the data is a valid level)."""
        names = self.numeric + [f"{c}={_safe(lv)}" for c, lvs in self.levels.items() for lv in lvs]
        seen: dict[str, int] = {}
        for i, name in enumerate(names):  # two levels that differ only in those characters stay apart
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                names[i] = f"{name}#{seen[name]}"
        return names

    def source(self, name: str) -> str:
        """The input feature a matrix column came from (`purpose=car` -> `purpose`)."""
        return name.split("=", 1)[0]

    @property
    def sources(self) -> list[str]:
        """Input features, in matrix order, each once."""
        return list(dict.fromkeys(self.source(n) for n in self.names))

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        """The float32 matrix for `frame` (missing numeric values stay NaN)."""
        exprs = [pl.col(c).cast(pl.Float64) for c in self.numeric]
        for col, lvs in self.levels.items():
            known = [lv for lv in lvs if lv != OTHER]
            mapped = pl.when(pl.col(col).is_in(known)).then(pl.col(col)).otherwise(pl.lit(OTHER))
            exprs += [(mapped == lv).cast(pl.Float64).alias(f"{col}={lv}") for lv in lvs]
        return frame.select(exprs).to_numpy().astype(np.float32)

    def monotone_constraints(self) -> str:
        """XGBoost's monotone constraint string for the matrix columns."""
        return "(" + ",".join(str(MONOTONE.get(n, 0)) for n in self.names) + ")"

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "levels": self.levels}

    @classmethod
    def from_dict(cls, d: dict) -> Encoder:
        return cls(list(d["numeric"]), {k: list(v) for k, v in d["levels"].items()})


def _safe(level: str) -> str:
    return level.translate(str.maketrans({"[": "(", "]": ")", "<": "‹"}))


@dataclass(frozen=True)
class Split:
    """A time-based split of the labelled rows: fit on the oldest, stop/calibrate next, judge on the newest."""

    train: pl.DataFrame
    valid: pl.DataFrame
    holdout: pl.DataFrame

    def window(self, part: str) -> tuple[date, date]:
        f = getattr(self, part)
        return f["application_date"].min(), f["application_date"].max()


def time_split(labelled: pl.DataFrame, valid_frac: float = 0.15, holdout_frac: float = 0.15) -> Split:
    """Split by application date (whole days, never shuffled): train < valid < holdout."""
    if labelled.height < 200:
        raise ValueError(
            f"loans: only {labelled.height} applications have a known outcome by the run date; the model "
            "needs at least 200 (outcomes arrive months after applications: load more history)"
        )
    dates = labelled["application_date"].sort()
    n = dates.len()
    cut_h = dates[int(n * (1 - holdout_frac))]
    cut_v = dates[int(n * (1 - holdout_frac - valid_frac))]
    train = labelled.filter(pl.col("application_date") < cut_v)
    valid = labelled.filter((pl.col("application_date") >= cut_v) & (pl.col("application_date") < cut_h))
    holdout = labelled.filter(pl.col("application_date") >= cut_h)
    for name, part in (("training", train), ("validation", valid), ("holdout", holdout)):
        if part.height == 0 or part["defaulted"].n_unique() < 2:
            raise ValueError(f"loans: the {name} window has no defaults or no repayments; load more history")
    return Split(train, valid, holdout)


def data_hash(frame: pl.DataFrame) -> str:
    """A content hash of the training rows (order-independent), recorded with the model."""
    h = frame.sort("application_id").hash_rows(seed=0).to_numpy().tobytes()
    return hashlib.sha256(h).hexdigest()[:16]
