# inferline: `make serve` installs and starts the server; `make test` installs and runs the tests.
# Python 3.11-3.13: scripts/venv.sh picks the first of python3.11/3.12/3.13/python3 that is one (or PYTHON=...).
# BASE_VENV=path/to/.venv: build $(VENV) offline on that environment's packages (installs only this checkout's
# inferline; see scripts/venv.sh). INFERLINE_PROFILE=test make serve: the test profile's small models.
VENV   ?= .venv
BIN    := $(VENV)/bin
# The checkout's data/ (absolute, so it does not depend on the folder a command runs in). `make install`
# records it in $(VENV)/inferline.env, which the venv's `inferline` reads from any folder.
export INFERLINE_DATA_DIR   ?= $(CURDIR)/data
export INFERLINE_MODELS_DIR ?= $(INFERLINE_DATA_DIR)/models

.PHONY: browser-deps install install-dev serve test test-postgres bench bench-smoke lint fmt node-deps models-default models-test clean

# The server's runtime (what `make serve` needs); torch for fine-tuning is the optional `train` extra.
$(BIN)/inferline: pyproject.toml scripts/venv.sh
	PYTHON='$(PYTHON)' BASE_VENV='$(BASE_VENV)' scripts/venv.sh $(VENV) engines,audio,postgres,s3
	@touch $@

# Everything the tests and benchmarks need on top: the trainer (torch CPU build) and the client SDKs.
$(VENV)/.dev-installed: $(BIN)/inferline
	PYTHON='$(PYTHON)' BASE_VENV='$(BASE_VENV)' scripts/venv.sh $(VENV) engines,audio,postgres,s3,train,diarize,dev
	@touch $@

install: $(BIN)/inferline
	@printf 'INFERLINE_DATA_DIR=%s\nINFERLINE_MODELS_DIR=%s\n' '$(INFERLINE_DATA_DIR)' '$(INFERLINE_MODELS_DIR)' \
	  > $(VENV)/inferline.env

install-dev: install $(VENV)/.dev-installed

models-default: install
	$(BIN)/inferline models install --profile default

models-test: install-dev
	$(BIN)/inferline models install --profile test
	$(BIN)/inferline models install openai/whisper-base  # multilingual: the translation tests
	@# espeak-ng voices speak beside Piper's in the diarization tests and bench (Debian: apt install espeak-ng).
	@command -v espeak-ng >/dev/null || { apt-get update -qq && apt-get install -y -qq espeak-ng; } || \
	  { echo "inferline: install espeak-ng (apt install espeak-ng / brew install espeak-ng)" >&2; exit 1; }

tests/js/node_modules/.package-lock.json: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --silent

node-deps: tests/js/node_modules/.package-lock.json

# The console's browser tests drive Debian's chromium through Playwright (no browser download); without it,
# and without root to install it, tests/test_console.py skips with a message saying so.
browser-deps:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
	  { apt-get update -qq && apt-get install -y -qq chromium; } || \
	  echo "inferline: install chromium (apt install chromium) for the console tests" >&2

serve: install
	$(BIN)/inferline models install --profile $${INFERLINE_PROFILE:-default}
	INFERLINE_PROFILE=$${INFERLINE_PROFILE:-default} $(BIN)/inferline serve

# The SQLite pass, then the PostgreSQL pass, one after the other: side by side they took as long on a 2-core
# machine (61:44 against 38:19 + 23:41), each test using both cores when it computes.
test: models-test node-deps browser-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-postgres

# The tests that use the test database again, on PostgreSQL + pgvector, installed and started by
# scripts/postgres.sh (one fresh database per test session; tests/conftest.py skips the others).
# PG_PYTEST_ARGS narrows it, e.g. PG_PYTEST_ARGS='-m "not slow"'.
PG_PYTEST_ARGS ?=
test-postgres: models-test node-deps
	@url="$$(scripts/postgres.sh)" && echo "PostgreSQL suite on $$url" && \
	  INFERLINE_TEST_DATABASE_URL="$$url" $(BIN)/python -m pytest $(PG_PYTEST_ARGS)

# Every figure next to its baseline; the table goes to bench/results/ and docs/BENCHMARKS.md.
bench: models-test
	$(BIN)/python bench/run.py --write-docs

# Each benchmark once, small sizes (what tests/test_bench_smoke.py runs): checks they work, figures mean nothing.
bench-smoke: models-test
	BENCH_SMOKE=1 $(BIN)/python bench/run.py

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: install-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# An offline install bundle (docs/DEPLOYMENT.md): dist/inferline-<version>-<PROFILE>-py<X.Y>-<platform>.tar with
# every pinned wheel of the runtime extras, the profile's verified models and install.sh. The target's Python
# and platform default to this machine's (TARGET_PYTHON=3.12 TARGET_PLATFORM=manylinux_2_28_aarch64 for another);
# BUNDLE_MODELS adds models by id (catalog ones, or ones registered with `inferline models add`).
.PHONY: bundle image
PROFILE ?= $(or $(INFERLINE_PROFILE),default)
BUNDLE_EXTRAS ?= engines,audio,postgres,s3
bundle: install
	$(BIN)/inferline bundle --profile $(PROFILE) --extras $(BUNDLE_EXTRAS) --output dist \
	  $(if $(TARGET_PYTHON),--python-version $(TARGET_PYTHON)) $(if $(TARGET_PLATFORM),--platform $(TARGET_PLATFORM)) \
	  $(foreach m,$(BUNDLE_MODELS),--model $(m))

# The container image inferline:$(PROFILE) from that bundle, built with no network (packaging/Containerfile), then
# timed from start to /ready on a loopback port; figures in dist/image-figures.json. BASE_IMAGE (default
# python:3.11-slim-bookworm) must already be on the engine (docker or podman: ENGINE=...).
image: bundle
	$(BIN)/python scripts/build_image.py --profile $(PROFILE) $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE))

clean:
	rm -rf $(VENV) tests/js/node_modules
