"""The loans job on ISLR's `Default`: 10,000 card holders, whether they defaulted, their balance and income.

The data has no dates and none of the loan terms, as many a user's export will not. The user's
export here is a DuckDB file with the data set as it ships plus the customer number, and the
mapping derives what the loans contract needs: one application per customer, 50 a day from
2025-01-01 (200 days), the card balance as the amount owed, constants for the terms the data
lacks, and the outcome observed 30 days after applying. The last 30 days' outcomes are not yet
known on the run date: those applications are tonight's to score. Copyable as a starting point:

```toml
[sources.loans]
path = "default.duckdb"
query = '''
select 'L' || customer as application_id, 'C' || customer as applicant_id,
       date '2025-01-01' + cast((customer - 1) // 50 as integer) as application_date,
       cast(greatest(balance, 1) * 100 as bigint) as amount_cents,
       cast(income * 100 as bigint) as annual_income_cents,
       18.0 as interest_rate, 12 as term_months, 0.0 as debt_to_income, 650 as credit_score,
       0.0 as employment_years, 'rent' as home_ownership,
       case student when 'Yes' then 'student' else 'personal' end as purpose, 'all' as region
from default_data'''

[sources.loan_outcomes]
path = "default.duckdb"
query = '''
select 'L' || customer as application_id,
       date '2025-01-01' + cast((customer - 1) // 50 as integer) + 30 as observed_date,
       case "default" when 'Yes' then 'default' else 'repaid' end as status
from default_data'''
```

A zero balance becomes one dollar (the contract wants a positive amount). The constant columns
carry no signal, so both candidates learn from balance, income and student alone: the data set
ISLR fits a logistic regression to, which is why the logistic baseline is a real contender here.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from conftest import byo_night, r_dataset, write_toml

pytestmark = pytest.mark.slow
RUN_DATE = date(2025, 7, 19)  # the last application day: 2025-01-01 + 199


def _toml() -> str:
    doc = __doc__ or ""
    return doc[doc.index("```toml") + len("```toml"):doc.rindex("```")]


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    home = tmp_path_factory.mktemp("islr_default")
    frame = r_dataset("ISLR", "Default").with_row_index("customer", offset=1)
    with duckdb.connect(str(home / "default.duckdb")) as con:
        con.register("f", frame.to_arrow())
        con.execute("create table default_data as select * from f")
    write_toml(home, _toml())
    return byo_night(home, RUN_DATE, ["loans"]), home


def test_the_published_model_is_never_worse_than_the_baseline_on_the_holdout(night: tuple[dict, Path]) -> None:
    manifest, _ = night
    verdict = manifest["jobs"]["loans"]["selections"]["default_model"]
    board = {e["name"]: e for e in verdict["board"]}
    print("ISLR Default bake-off:", {n: round(e["value"], 4) for n, e in board.items()}, "->", verdict["published"])
    assert set(board) == {"xgboost", "logistic baseline"} and verdict["holdout_rows"] >= 1000
    best_baseline = max(e["value"] for e in board.values() if e["baseline"])
    published = board[verdict["published"]]["value"]
    assert published >= best_baseline
    if board[verdict["published"]]["baseline"]:
        assert published == best_baseline
    assert verdict["published"] == verdict["winner"] and verdict["promoted"]  # first night: no champion
    assert verdict["learned_lost"] == board[verdict["winner"]]["baseline"]


def test_the_page_says_which_model_won(night: tuple[dict, Path]) -> None:
    manifest, home = night
    verdict = manifest["jobs"]["loans"]["selections"]["default_model"]
    html = (home / "reports" / RUN_DATE.isoformat() / "loans.html").read_text()
    assert f"<strong>{verdict['winner']}</strong> won; the runner-up {verdict['runner_up']}" in html
    assert ("The learned model lost to a baseline" in html) == verdict["learned_lost"]
    assert f"scored with <strong>{verdict['published']}</strong>" in html
