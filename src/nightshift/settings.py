"""Typed settings, read once from `NIGHTSHIFT_*` variables and an optional TOML file.

Nothing happens at import: `load_settings()` reads and validates, and every path a run writes to
is derived from one root, `home`, so a deployment can point all state elsewhere.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from nightshift.cadence import DEFAULT as DEFAULT_CADENCE
from nightshift.cadence import JOBS as RETRAINED_JOBS
from nightshift.cadence import Cadence
from nightshift.tables import TABLES

REPO_ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)


def default_home() -> Path:
    """Where state lives unless NIGHTSHIFT_HOME says: the checkout when run from one, else the current folder."""
    return REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "sql").is_dir() else Path.cwd()

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class SettingsError(ValueError):
    """A setting is wrong; the message says which one and what to do."""


class SourceSettings(BaseModel):
    """Where one canonical table comes from, when it is not the landing zone."""

    path: str | None = None  # CSV or Parquet file or glob, or a DuckDB file (with `table`)
    table: str | None = None  # table inside a DuckDB database file
    query: str | None = None  # a read-only SQL query over `path`'s DuckDB database
    format: Literal["csv", "parquet", "duckdb"] | None = None
    # their_name = "our_name" renames a column; our_name = "SQL expression over their columns" computes
    # one (e.g. amount_cents = "round(balance * 100)"); our_name = 36 (a number or true/false) is a constant.
    columns: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # The zone of timestamps sent without an offset (e.g. "Europe/London"); they are stored in UTC.
    # Default: taken as UTC. A timestamp with an offset is converted by its offset either way.
    timezone: str | None = None
    # sales only: the series' frequency when it cannot be inferred from the dates (default: inferred)
    frequency: Literal["daily", "weekly", "monthly", "quarterly"] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SourceSettings:
        if not self.path:
            raise SettingsError("a source needs `path` (a CSV/Parquet file or glob, or a DuckDB file)")
        if self.table and not _NAME.match(self.table):
            raise SettingsError(f"source table name {self.table!r} is not a plain identifier")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise SettingsError(f"source timezone {self.timezone!r} is not a time zone name such as "
                                    "'Europe/London' or 'UTC'") from None
        if self.query is not None:
            q = self.query.strip().rstrip(";").lower()
            if not (q.startswith("select") or q.startswith("with")) or ";" in q:
                raise SettingsError("a source `query` must be one SELECT statement")
        return self


class Budget(BaseModel):
    """A privacy budget: at most `epsilon` spent on `dataset` within any `window_days`."""

    epsilon: float = Field(gt=0)
    window_days: int = Field(default=365, gt=0)


# ε 12 per person per 365 days per dataset (about 1 a month); why this number: docs/PRIVACY.md.
DEFAULT_BUDGETS = {
    "users": Budget(epsilon=12.0),
    "applicants": Budget(epsilon=12.0),
    "households": Budget(epsilon=12.0),
}

# Public key lists (`privacy_public_keys.<list>`): values a DP release may use as keys because they were
# decided without looking at anyone's rows (a campaign catalogue, service regions). The defaults are
# the demo's lists; declare your own, or leave a list out to have its keys chosen by DP key selection
# (see nightshift.privacy.keys). Values outside a list are counted in one "other" cell.
# (Energy's DP release pools all regions, so it needs no region list: see docs/PRIVACY.md.)
PUBLIC_KEY_LISTS = ("campaigns", "loan_regions")
DEMO_PUBLIC_KEYS = {
    "campaigns": [f"cmp_{i:02d}" for i in range(1, 11)],
    "loan_regions": ["north", "south", "east", "west", "central"],
}


class Settings(BaseSettings):
    """All of nightshift's settings. Env: NIGHTSHIFT_<NAME>; file: NIGHTSHIFT_CONFIG or <home>/nightshift.toml."""

    model_config = SettingsConfigDict(env_prefix="NIGHTSHIFT_", env_nested_delimiter="__", extra="forbid")

    home: Path = Field(default_factory=default_home)
    seed: int = 7
    demo_size: Literal["tiny", "small", "medium", "large"] = "small"
    demo_end: date | None = None  # last demo date; default: yesterday
    jobs: list[str] | None = None  # run only these jobs; default: all registered
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    # Folders outside the home that sources may read (absolute paths); symlinks are resolved first.
    allowed_roots: list[Path] = Field(default_factory=list)
    bad_fraction_limit: float = Field(default=0.5, ge=0, le=1)  # above: the table is unusable for D
    # Rows dated before this are quarantined (sentinels such as 1900-01-01); lower it for old history.
    earliest_date: date = date(1901, 1, 1)
    # A landing drop's rows dated more than this many days before the drop date are quarantined.
    max_days_before_drop: int = Field(default=366, ge=0)
    max_workers: int = Field(default=2, ge=1)
    # DuckDB's memory cap; beyond it sorts, joins and windows spill to disk next to the warehouse.
    warehouse_memory_limit: str = Field(default="4GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|MiB|GiB)$")
    # privacy
    privacy_budgets: dict[str, Budget] = Field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    privacy_public_keys: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEMO_PUBLIC_KEYS.items()})
    # models
    champion_margin: float = Field(default=0.002, ge=0)  # a challenger must beat the champion by this
    # When energy and sales train: "nightly", "weekly" (default) or "monthly"; they score every night.
    retrain: dict[str, Cadence] = Field(default_factory=dict)
    # sales
    sales_reselect_days: int = Field(default=7, ge=1)  # ARIMA orders are re-selected this often
    # In periods of each series' own frequency; unset: 28 days, 13 weeks, 12 months or 8 quarters ahead,
    # and 730 days, 156 weeks, 120 months or 48 quarters of history per fit.
    sales_horizon: int | None = Field(default=None, ge=1)
    sales_history: int | None = Field(default=None, ge=8)
    sales_backtest_origins: int = Field(default=3, ge=1)  # rolling origins scored on the page
    # inventory
    service_level: float = Field(default=0.95, gt=0, lt=1)
    # schedules
    schedule_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    catch_up: Literal["all", "latest", "none"] = "all"
    catch_up_limit: int = Field(default=7, ge=0)
    alert_command: str | None = None
    alert_webhook: str | None = None
    # past one machine
    dask_address: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)

    @field_validator("sources")
    @classmethod
    def _known_tables(cls, v: dict[str, SourceSettings]) -> dict[str, SourceSettings]:
        for name, src in v.items():
            if name not in TABLES:
                raise SettingsError(f"sources: unknown table {name!r}; known tables: {', '.join(TABLES)}")
            names = TABLES[name].column_names
            for key, value in src.columns.items():
                if key not in names and value not in names:
                    raise SettingsError(
                        f"sources.{name}.columns: {key} = {value!r} names no column of {name} "
                        f"({', '.join(names)}); write their_name = \"our_name\" to rename, or "
                        f"our_name = \"SQL expression\" to compute one"
                    )
        return v

    @field_validator("privacy_public_keys")
    @classmethod
    def _known_key_lists(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in v.items():
            if name not in PUBLIC_KEY_LISTS:
                raise SettingsError(f"privacy_public_keys: unknown list {name!r}; known lists: "
                                    f"{', '.join(PUBLIC_KEY_LISTS)} (leave one out to select its keys with DP)")
            if not values or len(set(values)) != len(values) or "other" in values:
                raise SettingsError(f"privacy_public_keys.{name}: needs distinct values, none of them 'other' "
                                    "(values outside the list are counted as 'other'); leave the list out "
                                    "to select its keys with DP")
        return v

    @field_validator("retrain")
    @classmethod
    def _retrained_jobs(cls, v: dict[str, Cadence]) -> dict[str, Cadence]:
        for name in v:
            if name not in RETRAINED_JOBS:
                raise SettingsError(f"retrain: {name!r} has no training cadence; jobs with one: "
                                    f"{', '.join(RETRAINED_JOBS)}")
        return v

    def cadence(self, job: str) -> Cadence:
        """How often `job` trains (`[retrain]`, default weekly)."""
        return self.retrain.get(job, DEFAULT_CADENCE)

    @field_validator("jobs")
    @classmethod
    def _plain_job_names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            if not _NAME.match(name):
                raise SettingsError(f"jobs: {name!r} is not a job name")
        return v

    # -- derived paths: everything a run writes lives under `home` -------------------------------
    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def exports_dir(self) -> Path:
        """Person-level operational exports, owner-only: never inside the reports."""
        return self.home / "exports"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    def source_path(self, table: str) -> Path | None:
        """The resolved path (or glob) of a user source, confined to the home and `allowed_roots`."""
        src = self.sources.get(table)
        if src is None or src.path is None:
            return None
        return self.confine(self.home / Path(src.path).expanduser(), f"sources.{table}.path {src.path!r}")

    def confine(self, path: Path, what: str) -> Path:
        """`path` with symlinks resolved, refused unless it lies in the home or an allowed root."""
        resolved = path.resolve()
        roots = [self.home.resolve(), *(Path(r).expanduser().resolve() for r in self.allowed_roots)]
        if not any(resolved.is_relative_to(r) for r in roots):
            raise SettingsError(
                f"{what} resolves to {resolved}, outside the home {self.home}"
                + (f" and the allowed roots ({', '.join(map(str, self.allowed_roots))})" if self.allowed_roots else "")
                + "; move the data under the home or add its folder to allowed_roots in nightshift.toml")
        return resolved


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"settings file {path} is not valid TOML: {e}") from None


def _warn_unknown(env_keys: set[str]) -> None:
    """A NIGHTSHIFT_* variable that is no setting is most likely a typo: say so rather than ignore it."""
    # NIGHTSHIFT_RUN_TOKEN: set by a run for its children (nightshift.lifeline), not by users
    known = set(Settings.model_fields) | {"config", "run_token"}
    # ALERT_*: set for alert hooks; RETRAIN__ENERGY and the like: a nested setting's key
    for key in sorted(k for k in env_keys if k.split("__", 1)[0] not in known and not k.startswith("alert_")):
        log.warning("NIGHTSHIFT_%s is not a setting and is ignored (settings: %s)", key.upper(),
                    ", ".join(sorted(Settings.model_fields)))


def load_settings(**overrides: Any) -> Settings:
    """Read settings: defaults < settings file < NIGHTSHIFT_* variables < explicit overrides."""
    env_home = os.environ.get("NIGHTSHIFT_HOME")
    home = Path(overrides.get("home") or env_home or default_home()).expanduser().resolve()
    config = os.environ.get("NIGHTSHIFT_CONFIG")
    file_values: dict[str, Any] = {}
    cfg_path = Path(config).expanduser() if config else home / "nightshift.toml"
    if config and not cfg_path.exists():
        raise SettingsError(f"NIGHTSHIFT_CONFIG points at {cfg_path}, which does not exist")
    if cfg_path.exists():
        file_values = _read_toml(cfg_path)
    try:
        # Env beats file: build from the file, then let pydantic-settings read the environment on top.
        merged = {**file_values, **{k: v for k, v in overrides.items() if v is not None}}
        merged["home"] = home
        env_keys = {k[len("NIGHTSHIFT_") :].lower() for k in os.environ if k.startswith("NIGHTSHIFT_")}
        _warn_unknown(env_keys)
        for key in env_keys & set(file_values):
            merged.pop(key, None)
        settings = Settings(**merged)
    except SettingsError:
        raise
    except Exception as e:  # pydantic's ValidationError: reword for people
        raise SettingsError(f"invalid settings ({cfg_path if cfg_path.exists() else 'environment'}): {e}") from None
    for table in settings.sources:
        settings.source_path(table)
    return settings
