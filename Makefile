# inferline: `make serve` installs and starts the server; `make test` installs and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export INFERLINE_DATA_DIR   ?= ./data
export INFERLINE_MODELS_DIR ?= $(INFERLINE_DATA_DIR)/models

.PHONY: install install-dev serve test test-postgres bench lint fmt node-deps models-default models-test clean

# The server's runtime (what `make serve` needs); torch for fine-tuning is the optional `train` extra.
$(BIN)/inferline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[engines,audio,postgres,s3]'
	@touch $@

# Everything the tests and benchmarks need on top: the trainer (torch CPU build) and the client SDKs.
$(VENV)/.dev-installed: $(BIN)/inferline
	$(BIN)/pip install -q -e '.[engines,audio,postgres,s3,train,dev]'
	@touch $@

install: $(BIN)/inferline

install-dev: $(VENV)/.dev-installed

models-default: install
	$(BIN)/inferline models install --profile default

models-test: install-dev
	$(BIN)/inferline models install --profile test
	$(BIN)/inferline models install openai/whisper-base  # multilingual: the translation tests

tests/js/node_modules/.package-lock.json: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --silent

node-deps: tests/js/node_modules/.package-lock.json

serve: models-default
	INFERLINE_PROFILE=$${INFERLINE_PROFILE:-default} $(BIN)/inferline serve

test: models-test node-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-postgres

# The suite again on PostgreSQL + pgvector, installed and started by scripts/postgres.sh (one fresh database
# per test session). PG_PYTEST_ARGS narrows it, e.g. PG_PYTEST_ARGS='-m "not slow"'.
PG_PYTEST_ARGS ?=
test-postgres: models-test node-deps
	@url="$$(scripts/postgres.sh)" && echo "PostgreSQL suite on $$url" && \
	  INFERLINE_TEST_DATABASE_URL="$$url" $(BIN)/python -m pytest $(PG_PYTEST_ARGS)

bench: models-test
	$(BIN)/python bench/run.py

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: install-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) tests/js/node_modules
