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
