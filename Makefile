# The two commands that matter on a fresh machine:
#   make run    evaluate the reference model on the smoke suite, end to end
#   make test   run the whole test suite (what CI runs)

VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Two test processes (pytest-xdist): the tests that start services (marked slow) run one
# at a time in each of two groups, one group per process, the rest fill in around them
# (see tests/conftest.py; each process has its own sandboxes). `make test-fast` skips them.
PYTEST_PARALLEL ?= -n 2 --dist loadgroup

.PHONY: setup run test test-fast ui bench lint clean

setup:
	./scripts/setup.sh

run: setup
	$(BIN)/evalctl run --model reference --suite smoke

# Lint first (seconds): ruff's rules with import sorting, and its formatter, as CI runs them.
test: setup lint
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

test-fast: setup
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow"

ui: setup
	$(BIN)/evalctl ui

bench: setup
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/control.py
	$(BIN)/python bench/analytics.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf .dagster_home
