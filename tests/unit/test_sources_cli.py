"""`nightshift sources check`: a table's source, mapping, rows per date and first failures, no night run."""

from __future__ import annotations

from typer.testing import CliRunner

from nightshift.cli import app


def test_sources_check_reports_rows_and_the_first_failures_without_loading(home):
    (home / "sales.csv").write_text("day,shop,sku,qty,dollars\n2026-02-28,s1,p1,3,2.5\n2026-03-01,s1,p1,28.5,2.5\n")
    (home / "nightshift.toml").write_text(
        '[sources.sales]\npath = "sales.csv"\n[sources.sales.columns]\nday = "date"\nshop = "store_id"\n'
        'sku = "product_id"\nqty = "units"\nunit_price_cents = "round(dollars * 100)"\non_promotion = false\n')
    result = CliRunner().invoke(app, ["sources", "check", "sales"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2 date(s): 2026-02-28 … 2026-03-01" in result.output
    assert "column units: 28.5 is not a valid BIGINT" in result.output
    assert "unit_price_cents = 'round(dollars * 100)'" in result.output
    assert not (home / "data" / "warehouse.duckdb").exists()


def test_sources_check_fails_on_a_source_that_cannot_be_read(home):
    (home / "nightshift.toml").write_text('[sources.sales]\npath = "missing.csv"\n')
    result = CliRunner().invoke(app, ["sources", "check", "sales"], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "no file matches" in result.output


def test_the_missing_column_message_keeps_the_mapping_to_add_in_the_terminal(home):
    (home / "s.csv").write_text("day,shop,extra\n2026-03-01,s1,x\n")
    (home / "nightshift.toml").write_text('[sources.sales]\npath = "s.csv"\n[sources.sales.columns]\nday = "date"\n')
    result = CliRunner().invoke(app, ["sources", "check", "sales"], env={"COLUMNS": "300"})
    assert "[sources.sales.columns]" in result.output  # not eaten as Rich markup
    assert "(it has: day, shop, extra)" in result.output  # the file's own names, before mapping


def test_the_latest_complete_date_counts_only_the_tables_the_jobs_need(home):
    """Only loans and its outcomes are configured: a loans night needs no sales drop."""
    from datetime import date

    from nightshift.settings import load_settings
    from nightshift.sources import latest_complete_date

    (home / "l.csv").write_text("application_id,applicant_id,application_date,amount_cents,annual_income_cents\n"
                                "a1,p1,2026-02-27,100,100\na2,p2,2026-03-01,100,100\n")
    (home / "nightshift.toml").write_text('[sources.loans]\npath = "l.csv"\n')
    settings = load_settings()
    assert latest_complete_date(settings) is None  # every daily table: sales etc. have nothing
    assert latest_complete_date(settings, ["loans", "loan_outcomes"]) == date(2026, 3, 1)
