# The two commands that matter on a fresh machine:
#   make run    evaluate the reference model on the smoke suite, end to end
#   make test   run the whole test suite (what CI runs)

VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Tests mostly wait on daemons, services and sandboxes: three test processes keep two
# cores busy (pytest-xdist; each process has its own sandboxes, see tests/conftest.py).
PYTEST_PARALLEL ?= -n 3 --dist loadgroup

.PHONY: setup run test test-fast ui bench lint clean

setup:
	./scripts/setup.sh

run: setup
	$(BIN)/evalctl run --model reference --suite smoke

test: setup
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

clean:
	rm -rf .dagster_home
