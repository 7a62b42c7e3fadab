# The usual targets. `make run` and `make test` are the README's two commands.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-lake run test test-lake test-fast test-unit lint format bench dataset clean

$(BIN)/callscope: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/callscope

setup: $(BIN)/callscope

# Lake mode pins duckdb 1.5.5 (the `lake` extra: its extension wheels exist for 1.5.x only), so its tests run in a
# venv of their own; the main venv keeps the newest duckdb, as a default install does.
LAKE_VENV := .venv-lake
LAKE_BIN := $(LAKE_VENV)/bin

$(LAKE_BIN)/callscope: pyproject.toml
	$(PY) -m venv $(LAKE_VENV)
	$(LAKE_BIN)/pip install --quiet --upgrade pip
	$(LAKE_BIN)/pip install --quiet -e '.[dev,lake]'
	touch $(LAKE_BIN)/callscope

setup-lake: $(LAKE_BIN)/callscope

# The demo: the collector on 127.0.0.1, filled with sample traffic over OTLP, a live trickle. `make run ARGS=...`
# passes flags to `callscope up` (e.g. ARGS="--data-dir /tmp/cs --otlp-http-port 14318 --otlp-grpc-port 14317
# --dashboard-port 18501").
run: setup
	$(BIN)/callscope up --demo $(ARGS)

# The two venvs install side by side (about two minutes saved on a fresh machine); should that ever trip over the
# project's build metadata both write, they install again one after the other.
test:
	$(MAKE) -j2 setup setup-lake || $(MAKE) setup setup-lake
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	$(LAKE_BIN)/pytest -m lake

# Only the lake tests (several nodes on one DuckLake, `callscope migrate`, the analytics suite on a lake node).
test-lake: setup-lake
	$(LAKE_BIN)/pytest -m lake

# Without the slow tests (crash safety, overload, the demo through `up`, the browser).
test-fast: setup
	$(BIN)/pytest -m "not slow"

# Only the tests that need no server (seconds).
test-unit: setup
	$(BIN)/pytest tests/unit

lint: setup
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py

# Regenerate the shipped demo dataset (a test fails when it is stale).
dataset: setup
	$(BIN)/python -m sample_data.dataset

clean:
	rm -rf $(VENV) $(LAKE_VENV) .pytest_cache .ruff_cache *.egg-info
