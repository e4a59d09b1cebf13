"""Demo loan applications and their outcomes, with a planted, monotone default risk.

Default depends monotonically on debt-to-income (up, with a steeper slope above 45%), credit
score (down) and interest rate (up), plus smaller effects (term, home ownership, purpose,
employment) and one interaction (thin credit with high debt) that trees can find and a linear
model cannot. Outcomes arrive months after the application: a `current` row about a month in,
then `repaid` or `default` 2–10 months later, with the same lag for both so labels known by a date
are not biased towards defaults. Some applicants apply more than once.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

REGIONS = ("north", "south", "east", "west", "central")
PURPOSES = ("debt_consolidation", "credit_card", "home_improvement", "car", "medical", "small_business", "other")
PURPOSE_P = (0.35, 0.2, 0.12, 0.12, 0.06, 0.05, 0.10)
PURPOSE_EFFECT = (0.0, -0.1, -0.2, -0.25, 0.2, 0.55, 0.1)
HOME = ("rent", "mortgage", "own")
FIRST_SEEN_DAYS = 30  # a booked loan's first outcome row ("current") comes this long after applying
MIN_LAG, MAX_LAG = 60, 300  # days from application to the final status


def true_logit(dti: np.ndarray, score: np.ndarray, rate: np.ndarray, term: np.ndarray, emp: np.ndarray,
               home_idx: np.ndarray, purpose_idx: np.ndarray) -> np.ndarray:
    """The planted log-odds of default (monotone in dti, score and rate)."""
    return (
        -2.75
        + 3.0 * (dti - 0.3) + 5.0 * np.maximum(dti - 0.45, 0.0)
        - 0.016 * (score - 690)
        + 0.11 * (rate - 12.0)
        + 0.3 * (term == 60)
        - 0.03 * np.minimum(emp, 15)
        + np.array([0.3, 0.0, -0.15])[home_idx]
        + np.asarray(PURPOSE_EFFECT)[purpose_idx]
        + 0.9 * ((score < 640) & (dti > 0.4))
    )


def generate(rng: np.random.Generator, start: date, end: date, size) -> dict[str, pl.DataFrame]:
    """Loans applied for in [start, end] and the outcomes observed by `end`; truth: each default probability."""
    n_days = (end - start).days + 1
    per_day = rng.poisson(size.loans_per_day, n_days)
    n = int(per_day.sum())
    day_offset = np.repeat(np.arange(n_days), per_day)
    app_date = np.datetime64(start) + day_offset.astype("timedelta64[D]")

    # Applicants: a pool smaller than the applications, so some apply more than once.
    pool = max(1, int(n * 0.8))
    applicant = rng.integers(0, pool, n)
    a_region = rng.integers(0, len(REGIONS), pool)
    a_home = rng.choice(len(HOME), pool, p=[0.45, 0.4, 0.15])
    a_score = rng.normal(690, 55, pool)
    a_income = rng.lognormal(np.log(62_000), 0.45, pool)
    a_emp = np.clip(rng.exponential(6.0, pool), 0, 45)

    score = np.clip(np.round(a_score[applicant] + rng.normal(0, 12, n)), 300, 850).astype(np.int32)
    income = a_income[applicant] * rng.lognormal(0, 0.05, n)
    dti = np.clip(rng.beta(2.6, 6.0, n) * 1.1, 0.01, 1.5)
    amount = np.clip(income * rng.lognormal(np.log(0.25), 0.5, n), 1_000, 60_000)
    term = rng.choice([36, 60], n, p=[0.7, 0.3]).astype(np.int32)
    rate = np.clip(6.0 + (760 - score) / 18.0 + 1.5 * (term == 60) + rng.normal(0, 1.8, n), 3.0, 35.0)
    emp = np.round(np.clip(a_emp[applicant] + rng.normal(0, 0.3, n), 0, 45), 1)
    purpose = rng.choice(len(PURPOSES), n, p=PURPOSE_P)
    home = a_home[applicant]

    p_default = 1.0 / (1.0 + np.exp(-true_logit(dti, score, rate, term, emp, home, purpose)))
    defaulted = rng.uniform(size=n) < p_default
    lag = rng.integers(MIN_LAG, MAX_LAG + 1, n)

    loans = pl.DataFrame({
        "application_id": pl.Series(np.char.add("A", np.char.zfill(np.arange(n).astype(str), 8))),
        "applicant_id": pl.Series(np.char.add("P", np.char.zfill(applicant.astype(str), 7))),
        "application_date": pl.Series(app_date).cast(pl.Date),
        "amount_cents": pl.Series((np.round(amount, -1) * 100).astype(np.int64)),
        "interest_rate": pl.Series(np.round(rate, 2)),
        "term_months": pl.Series(term),
        "annual_income_cents": pl.Series((np.round(income, -2) * 100).astype(np.int64)),
        "debt_to_income": pl.Series(np.round(dti, 4)),
        "credit_score": pl.Series(score),
        "employment_years": pl.Series(emp.astype(np.float64)),
        "home_ownership": pl.Series(np.asarray(HOME)[home]),
        "purpose": pl.Series(np.asarray(PURPOSES)[purpose]),
        "region": pl.Series(np.asarray(REGIONS)[a_region[applicant]]),
    })
    end_np = np.datetime64(end)
    first = app_date + np.timedelta64(FIRST_SEEN_DAYS, "D")
    final = app_date + lag.astype("timedelta64[D]")
    current = pl.DataFrame({"application_id": loans["application_id"], "observed_date": pl.Series(first).cast(pl.Date),
                            "status": "current"}).filter(pl.Series(first <= end_np))
    resolved = pl.DataFrame({
        "application_id": loans["application_id"], "observed_date": pl.Series(final).cast(pl.Date),
        "status": pl.Series(np.where(defaulted, "default", "repaid")),
    }).filter(pl.Series(final <= end_np))
    outcomes = pl.concat([current, resolved]).sort("observed_date", "application_id")
    truth = pl.DataFrame({"application_id": loans["application_id"], "p_default": p_default,
                          "defaulted": defaulted, "resolved_on": pl.Series(final).cast(pl.Date)})
    return {"loans": loans, "loan_outcomes": outcomes, "_truth": {"default_prob": truth}}

