# Two commands from a fresh Debian machine: `make demo` and `make test`.
# Each sets up what it needs: a virtual environment (.venv) with the package and its extras
# installed against constraints.txt, and ZooKeeper (scripts/ensure-zookeeper.sh).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
PYTEST_ARGS ?=

.PHONY: all venv zookeeper proto proto-check lint types unit integration test check repeat demo bench clean

all: test

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[test,dev]'
	touch $(STAMP)

# The benchmarks' peers (Celery, Redis's client) and charts (matplotlib): not needed by tests.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[bench]'
	touch $(BENCH_STAMP)

venv: $(STAMP)

zookeeper: $(STAMP)
	@scripts/ensure-zookeeper.sh $(BIN)/python

# Regenerate the gRPC code from proto/.
proto: $(STAMP)
	PYTHON=$(BIN)/python PATH=$(BIN):$$PATH scripts/gen_proto.sh helixpy/proto

# Fails when the committed generated code differs from a fresh regeneration.
proto-check: $(STAMP)
	@tmp=$$(mktemp -d) && \
	PYTHON=$(BIN)/python PATH=$(BIN):$$PATH scripts/gen_proto.sh $$tmp >/dev/null && \
	diff -r -x __pycache__ $$tmp/helixpy helixpy/proto/helixpy && rm -rf $$tmp && \
	echo "proto: generated code is up to date"

lint: $(STAMP)
	$(BIN)/ruff check helixpy tests bench

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

# The whole suite: lint, types, generated code, unit and cluster tests.
# Container-backed tests get a container engine from scripts/with-docker.sh (a private
# dockerd when none is configured and we may install one); they skip without one.
test: $(STAMP) zookeeper proto-check lint types
	scripts/ensure-chromium.sh || true
	scripts/with-docker.sh $(BIN)/python $(BIN)/pytest -q -p no:cacheprovider tests $(PYTEST_ARGS)

# The flake hunter: `make repeat N=5 ARGS="tests/integration tests/chaos"` runs pytest N
# times and prints how often each test failed.
N ?= 5
ARGS ?= tests/integration tests/chaos
repeat: $(STAMP) zookeeper
	PATH=$(BIN):$$PATH $(BIN)/python scripts/repeat-tests $(N) $(ARGS)

# The quick inner loop: lint, types, unit tests and one cluster smoke test.
check: $(STAMP) zookeeper lint types
	$(BIN)/pytest -q -p no:cacheprovider tests/unit -m "not cluster or smoke" $(PYTEST_ARGS)
	$(BIN)/pytest -q -p no:cacheprovider tests/integration -m smoke $(PYTEST_ARGS)

# Every benchmark with its peers, then docs/benchmarks.md (never part of `make test`).
bench: $(BENCH_STAMP) zookeeper
	scripts/ensure-redis.sh
	$(BIN)/python -m bench all

demo: $(STAMP) zookeeper
	$(BIN)/helixpy demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
