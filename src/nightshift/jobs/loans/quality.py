"""How good the loans model is, from a DP release: the shareable tier's AUC and calibration.

The exact holdout metrics (team page) count applicants' outcomes, so they cannot leave the team. The
shareable figures come from one DP release instead, `loans_model_quality`: on the holdout, per public
quality band (`QUALITY_BANDS`: fixed cut-points, coarser than the page's risk bands) and outcome, the
noisy number of applications (K = 1 application per applicant). Everything else is post-processing of
that table, free of further privacy cost:

- calibration per band: observed default rate = defaults / applications, beside the band's range of
  predicted probabilities (a public constant): a calibrated model's rate falls inside it (suppressed
  where the band's count is mostly noise);
- AUC from the band × outcome histogram: P(a default is in a higher band than a repayment), ties
  counting one half. Banding ties applications within a band, so this AUC is below the exact one even
  without noise; the page says so.

Coarsened on purpose, so that most cells read at ε 12 a year: four bands instead of the six risk bands
(defaults in the lowest bands were fewer than their noise), and counts only: a noisy sum of predictions
per cell would split the release's ε in two, and in the low bands it was far below its own noise.

`POST_PROCESSING` is the post-processing the shareable tier publishes (`nightshift.shareable`) and the
leak check recomputes from the stored release.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from nightshift.jobs.loans.report import BANDS, band_of
from nightshift.privacy import Count, Release

NAME = "loans_model_quality"
OUTCOMES = ("repaid", "default")
# Quality band -> the risk bands (report.BANDS) it pools: public cut-points, fixed before any data is read.
QUALITY_BANDS = {"A–B": ("A", "B"), "C–D": ("C", "D"), "E": ("E",), "F": ("F",)}
MIN_SHOWN = 2.0  # a band's rate is shown only when its noisy count exceeds this many margins of error
COARSENED = ("Model quality: four quality bands (A–B, C–D, E, F) instead of six risk bands, and application "
             "counts only (no summed predictions): defaults in the low bands, and summed predictions, were "
             "below their noise.")


def _ranges() -> dict[str, tuple[float, float]]:
    """Each quality band's range of predicted probability, from the risk bands' cut-points."""
    lower = dict(BANDS)
    upper = dict(zip([b for b, _ in BANDS], [lo for _, lo in BANDS[1:]] + [1.0], strict=True))
    return {q: (lower[rs[0]], upper[rs[-1]]) for q, rs in QUALITY_BANDS.items()}


def quality_band(risk_band: np.ndarray) -> np.ndarray:
    """The quality band of each risk band letter."""
    of = {r: q for q, rs in QUALITY_BANDS.items() for r in rs}
    return np.array([of[r] for r in risk_band], dtype=object)


def declaration(epsilon: float) -> Release:
    """Applications per (public) quality band and outcome on the holdout."""
    return Release(
        NAME, dataset="applicants", unit="applicant_id",
        keys={"risk_band": list(QUALITY_BANDS), "outcome": list(OUTCOMES)},
        measures=[Count("applications")], max_rows_per_unit=1, epsilon=epsilon,
    )


def frame(holdout: pl.DataFrame, p: np.ndarray) -> pl.DataFrame:
    """The person-level input: one row per holdout application (the layer keeps one per applicant)."""
    outcome = np.where(holdout["defaulted"].to_numpy() == 1, OUTCOMES[1], OUTCOMES[0])
    return pl.DataFrame({"applicant_id": holdout["applicant_id"],
                         "risk_band": quality_band(band_of(p)) if len(p) else [], "outcome": outcome},
                        schema={"applicant_id": holdout.schema["applicant_id"], "risk_band": pl.String,
                                "outcome": pl.String})


def _wide(table: pl.DataFrame) -> pl.DataFrame:
    """One row per band (in band order): noisy repaid and default counts."""
    order = {b: i for i, b in enumerate(QUALITY_BANDS)}
    parts = [table.filter(pl.col("outcome") == o).select(
        "risk_band", pl.col("applications").clip(lower_bound=0).alias(o)) for o in OUTCOMES]
    wide = parts[0].join(parts[1], on="risk_band")
    return wide.with_columns(pl.col("risk_band").replace_strict(order).alias("_order")).sort("_order")


def auc(table: pl.DataFrame) -> float | None:
    """The AUC implied by the noisy band × outcome histogram (None when either outcome is ~empty)."""
    wide = _wide(table)
    pos, neg = wide["default"].to_numpy().astype(float), wide["repaid"].to_numpy().astype(float)
    if pos.sum() <= 0 or neg.sum() <= 0:
        return None
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])  # repaid applications in lower bands
    return float(np.sum(pos * (below + 0.5 * neg)) / (pos.sum() * neg.sum()))


def calibration(table: pl.DataFrame) -> pl.DataFrame:
    """Per quality band: noisy applications and observed default rate, beside the band's predicted range.

    A band's rate is left out (null) when its noisy count is not clearly above its noise."""
    wide = _wide(table)
    moe = float(table["applications_moe"].max())
    ranges = _ranges()
    n = (pl.col("repaid") + pl.col("default")).cast(pl.Float64)
    shown = n > MIN_SHOWN * 2 * moe  # a band's count adds two noisy cells: twice the margin, at most
    return wide.select(
        "risk_band",
        pl.col("risk_band").replace_strict({q: lo for q, (lo, _) in ranges.items()}, return_dtype=pl.Float64)
        .alias("predicted_from"),
        pl.col("risk_band").replace_strict({q: hi for q, (_, hi) in ranges.items()}, return_dtype=pl.Float64)
        .alias("predicted_to"),
        n.alias("applications"),
        pl.when(shown).then(pl.col("default") / n).round(4).alias("observed_default_rate"),
    )


def headline(table: pl.DataFrame) -> pl.DataFrame:
    """One row: the holdout's noisy applications, default rate and the histogram's AUC (post-processing)."""
    wide = _wide(table)
    repaid, default = float(wide["repaid"].sum()), float(wide["default"].sum())
    total = repaid + default
    value = auc(table)
    return pl.DataFrame({"applications": [total], "default_rate": [round(default / total, 4) if total > 0 else None],
                         "auc_banded": [None if value is None else round(value, 4)]},
                        schema={"applications": pl.Float64, "default_rate": pl.Float64, "auc_banded": pl.Float64})


# What the shareable tier publishes beside the release: output name -> post-processing of its table.
POST_PROCESSING = {"calibration": calibration, "headline": headline}
