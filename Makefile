# nightshift — `make help` lists every target. `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NS := $(BIN)/nightshift
STAMP := $(VENV)/.installed-stamp
# uv: the one on PATH, else a private copy under .bin/ installed with the system Python.
UV := $(shell command -v uv 2>/dev/null || echo .bin/uv-env/bin/uv)

# Byte-compiled imports: TensorFlow, XGBoost and scikit-learn take tens of seconds to import from source.
export PYTHONDONTWRITEBYTECODE :=

DATE ?=
START ?=
END ?=
JOBS ?=
MODE ?= missing
DRY_RUN ?=
FORCE ?=
SIZE ?=
SCALE ?= small

.PHONY: help setup demo run test test-slow test-all lint backfill serve status privacy models sources bench clean same-outputs

help: ## List the targets with one line each
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'
	@echo "  variables: DATE=YYYY-MM-DD START= END= JOBS=a,b MODE=missing|failed|all DRY_RUN=1 FORCE=1 SIZE= SCALE="

.bin/uv-env/bin/uv:
	$(PYTHON) -m venv .bin/uv-env
	.bin/uv-env/bin/python -m pip install -q uv

$(STAMP): requirements.lock pyproject.toml | $(UV)
	@test -x $(BIN)/python || $(UV) venv -q --python $(PYTHON) $(VENV)
	$(UV) pip sync -q --compile-bytecode --python $(BIN)/python requirements.lock
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

setup: $(STAMP) ## Create .venv with the exact locked versions (uv is installed if missing)

lock: | $(UV) ## Re-resolve requirements.lock from pyproject.toml (names and versions only)
	$(UV) pip compile -q --universal --python-version 3.11 pyproject.toml --extra dev --extra dask --extra bench \
		--no-annotate --no-header -o requirements.lock

demo: setup ## Generate the demo data into data/landing/ (SIZE=tiny|small|medium|large)
	$(NS) demo $(if $(SIZE),--size $(SIZE))

run: setup ## Run the nightly job (DATE= for one date; demo data is generated if none) and print the report path
	$(NS) run $(if $(DATE),--date $(DATE)) $(if $(JOBS),--jobs $(JOBS)) $(if $(FORCE),--force)

backfill: setup ## Run START..END oldest first in one process, resumable; DRY_RUN=1: the plan, which dates train, the time (JOBS= MODE= FORCE=1)
	@test -n "$(START)" -a -n "$(END)" || { echo "usage: make backfill START=YYYY-MM-DD END=YYYY-MM-DD [JOBS=a,b] [MODE=missing|failed|all] [DRY_RUN=1] [FORCE=1]"; exit 2; }
	$(NS) backfill --start $(START) --end $(END) --mode $(MODE) $(if $(JOBS),--jobs $(JOBS)) $(if $(DRY_RUN),--dry-run) $(if $(FORCE),--force)

serve: setup ## Serve the nightly schedule with Prefect (cron and time zone from settings)
	$(NS) serve

status: setup ## Show per date and job what ran, when, how it ended, rows in/out
	$(NS) status

sources: setup ## Check each table's source without running a night: files, mapping, rows per date, first failures
	$(NS) sources check

privacy: setup ## Show the privacy budget ledger: spent and left per dataset and window
	$(NS) privacy

models: setup ## List model versions and champions per job
	@for j in behavior loans inventory energy sales; do $(NS) models list $$j; done

test: setup ## Run the fast test suite (model-quality tests are marked slow)
	$(BIN)/python -m pytest -q

test-slow: setup ## Run the slow model-quality tests
	$(BIN)/python -m pytest -q -m slow

test-all: setup ## Run every test, fast and slow
	$(BIN)/python -m pytest -q -m "slow or not slow"

same-outputs: setup ## Compare a demo night's Parquet outputs with those of revision BASE= (a refactor keeps behaviour)
	@test -n "$(BASE)" || { echo "usage: make same-outputs BASE=<git revision> [JOBS=a,b]"; exit 2; }
	$(BIN)/python tests/flows/same_outputs.py $(BASE) $(if $(JOBS),--jobs $(JOBS))

.PHONY: mutants
mutants: setup ## Mutation score of the core modules and SQL, survivors listed (MODULES=a,b PLANTED=1; not in CI)
	$(BIN)/python tests/mutation/$(if $(PLANTED),planted.py,run.py $(if $(MODULES),--modules $(MODULES)))

lint: setup ## Check the code with ruff
	$(BIN)/ruff check src flows tests

bench: setup ## Benchmark nightshift against a pandas baseline, side by side (SCALE=small|medium|large)
	$(BIN)/python -m nightshift.bench --scale $(SCALE)

clean: ## Remove generated data, reports, models, logs, exports and the virtual environment (the privacy ledger too)
	rm -rf data reports/20* reports/.builds reports/assets reports/index.html reports/.privacy-anchor.json \
		models/* logs exports .prefect $(VENV) .bin
	@git checkout -- models reports 2>/dev/null || true
