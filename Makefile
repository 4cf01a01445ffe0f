# Targets named in README.md. `make setup` creates .venv with the project and its dev tools.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup ui test lint typecheck conformance bench check screenshots

$(BIN)/tiercel: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/tiercel

ui: setup
	$(BIN)/tiercel ui --flows sample_flows

test: setup
	$(BIN)/pytest -q
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python ../shared/conformance/run.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

conformance: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python ../shared/conformance/run.py

bench: setup
	$(BIN)/python bench/engine_overhead.py

screenshots: setup
	$(BIN)/python -m app.screenshots screenshots

check: lint typecheck test
