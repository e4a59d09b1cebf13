"""The canonical source tables: columns, types and the rules every row must keep.

One declaration serves the demo generator, the sources (column mapping), the staging SQL checks
and the contracts, so a table's shape is written down exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHANNELS = ("organic", "search", "social", "email", "partner", "referral")
EVENT_TYPES = ("visit", "ad_impression", "ad_click", "add_to_cart", "purchase")
DEVICES = ("mobile", "desktop", "tablet")
HOME_OWNERSHIP = ("rent", "mortgage", "own")
LOAN_STATUS = ("current", "repaid", "default")


@dataclass(frozen=True)
class Column:
    """One canonical column: its DuckDB type and the values it may hold."""

    name: str
    type: str  # DuckDB type name: VARCHAR, BIGINT, INTEGER, DOUBLE, BOOLEAN, DATE, TIMESTAMP
    required: bool = True
    enum: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    truncate: str | None = None  # a TIMESTAMP kept to this unit (date_trunc), e.g. "hour" for meter readings


@dataclass(frozen=True)
class Reference:
    """A foreign key: every value of `column` must exist in `table.column` as of the run date."""

    column: str
    table: str
    target: str


@dataclass(frozen=True)
class TableSpec:
    """A source table: its columns, unique key, the column that dates a row, and its references."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    time_column: str  # a row belongs to the business day of this column (point-in-time filter)
    privacy_unit: str | None = None
    references: tuple[Reference, ...] = field(default=())
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


C = Column
# Magnitudes no real row reaches: a value beyond them is a unit error or a corrupt export
# (units = 9e18 would otherwise publish forecasts of 1e18). Money in cents: $10 billion.
BIG_COUNT = 1e9
BIG_MONEY = 1e12

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "events",
            (
                C("event_id", "VARCHAR"),
                C("user_id", "BIGINT"),
                C("ts", "TIMESTAMP"),
                C("event_type", "VARCHAR", enum=EVENT_TYPES),
                C("channel", "VARCHAR", enum=CHANNELS),
                C("campaign_id", "VARCHAR", required=False),
                C("device", "VARCHAR", required=False, enum=DEVICES),
                C("product_id", "VARCHAR", required=False),
                C("revenue_cents", "BIGINT", required=False, min=0, max=BIG_MONEY),
            ),
            key=("event_id",),
            time_column="ts",
            privacy_unit="user_id",
            references=(Reference("user_id", "users", "user_id"),),
            description="one row per user action",
        ),
        TableSpec(
            "users",
            (
                C("user_id", "BIGINT"),
                C("signup_date", "DATE"),
                C("signup_channel", "VARCHAR", enum=CHANNELS),
                C("country", "VARCHAR"),
                C("age_band", "VARCHAR", required=False),
            ),
            key=("user_id",),
            time_column="signup_date",
            privacy_unit="user_id",
            description="one row per user",
        ),
        TableSpec(
            "sales",
            (
                C("date", "DATE"),
                C("store_id", "VARCHAR"),
                C("product_id", "VARCHAR"),
                C("units", "BIGINT", min=0, max=BIG_COUNT),
                C("unit_price_cents", "BIGINT", min=0, min_exclusive=True, max=BIG_MONEY),
                C("on_promotion", "BOOLEAN"),
            ),
            key=("date", "store_id", "product_id"),
            time_column="date",
            description="one row per store, product and day",
        ),
        TableSpec(
            "loans",
            (
                C("application_id", "VARCHAR"),
                C("applicant_id", "VARCHAR"),
                C("application_date", "DATE"),
                C("amount_cents", "BIGINT", min=0, min_exclusive=True, max=BIG_MONEY),
                C("interest_rate", "DOUBLE", min=0, max=100, required=False),
                C("term_months", "INTEGER", min=1, max=600, required=False),
                C("annual_income_cents", "BIGINT", min=0, max=BIG_MONEY),
                C("debt_to_income", "DOUBLE", min=0, max=10, required=False),
                C("credit_score", "INTEGER", min=300, max=850, required=False),
                C("employment_years", "DOUBLE", min=0, max=80, required=False),
                C("home_ownership", "VARCHAR", enum=HOME_OWNERSHIP, required=False),
                C("purpose", "VARCHAR", required=False),
                C("region", "VARCHAR", required=False),
            ),
            key=("application_id",),
            time_column="application_date",
            privacy_unit="applicant_id",
            description="one row per loan application",
        ),
        TableSpec(
            "loan_outcomes",
            (
                C("application_id", "VARCHAR"),
                C("observed_date", "DATE"),
                C("status", "VARCHAR", enum=LOAN_STATUS),
            ),
            key=("application_id", "observed_date"),
            time_column="observed_date",
            references=(Reference("application_id", "loans", "application_id"),),
            description="what became of a loan, known months later",
        ),
        TableSpec(
            "inventory",
            (
                C("date", "DATE"),
                C("warehouse_id", "VARCHAR"),
                C("product_id", "VARCHAR"),
                C("on_hand", "BIGINT", min=0, max=BIG_COUNT),
                C("received", "BIGINT", min=0, max=BIG_COUNT),
                C("ordered", "BIGINT", min=0, max=BIG_COUNT),
                C("lead_time_days", "INTEGER", min=0, min_exclusive=True),
                C("unit_cost_cents", "BIGINT", min=0, min_exclusive=True, max=BIG_MONEY),
                C("holding_cost_rate", "DOUBLE", min=0, max=10),
                C("order_cost_cents", "BIGINT", min=0, max=BIG_MONEY),
            ),
            key=("date", "warehouse_id", "product_id"),
            time_column="date",
            description="one row per warehouse, SKU and day",
        ),
        TableSpec(
            "energy",
            (
                C("ts", "TIMESTAMP", truncate="hour"),
                C("meter_id", "VARCHAR"),
                C("region", "VARCHAR"),
                C("kwh", "DOUBLE", min=0, max=BIG_COUNT),
                C("temperature_c", "DOUBLE", required=False, min=-80, max=70),
                C("is_holiday", "BOOLEAN"),
            ),
            key=("ts", "meter_id"),
            time_column="ts",
            privacy_unit="meter_id",
            description="one row per meter and hour",
        ),
    )
}

# Tables that get a drop every business day; the others (sign-ups, outcomes) only when something happened.
DAILY_TABLES = frozenset({"events", "sales", "loans", "inventory", "energy"})

# Tables are loaded in this order so that references point at already-loaded tables.
LOAD_ORDER = ("users", "events", "sales", "loans", "loan_outcomes", "inventory", "energy")


def spec(table: str) -> TableSpec:
    """The spec of a canonical table, or a clear error naming the known ones."""
    try:
        return TABLES[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}") from None
