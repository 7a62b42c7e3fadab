# The usual targets. `make run` and `make test` are the README's two commands.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-fast test-unit lint format bench dataset clean

$(BIN)/callscope: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/callscope

setup: $(BIN)/callscope

# The demo: the collector on 127.0.0.1, filled with sample traffic over OTLP, a live trickle. `make run ARGS=...`
# passes flags to `callscope up` (e.g. ARGS="--data-dir /tmp/cs --otlp-http-port 14318 --otlp-grpc-port 14317
# --dashboard-port 18501").
run: setup
	$(BIN)/callscope up --demo $(ARGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

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
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
