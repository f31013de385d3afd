# The two commands that matter on a fresh machine:
#   make run    evaluate the reference model on the smoke suite, end to end
#   make test   run the whole test suite (what CI runs)

VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup run test test-fast ui bench lint clean

setup:
	./scripts/setup.sh

run: setup
	$(BIN)/evalctl run --model reference --suite smoke

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

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
