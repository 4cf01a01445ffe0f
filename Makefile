# Targets named in README.md. `make setup` creates .venv with the project and its dev tools.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup ui test test-fast test-postgres lint typecheck conformance bench bench-cluster bench-setup check screenshots

$(BIN)/tiercel: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/tiercel

ui: setup
	$(BIN)/tiercel ui --flows sample_flows

test: setup
	$(BIN)/pytest -q -n 2
	$(BIN)/python tests/run_conformance.py

# The quick loop (under 3 minutes on 2 cores): everything but the slow, reliability and tmux tests,
# in 4 workers (pytest-xdist; the tests mostly wait on processes and timers, so 4 keep 2 cores busy).
# Mark a test `slow` when it takes seconds and a quicker test of its feature stays in this loop.
test-fast: setup
	$(BIN)/pytest -q -x -n 4 -m "not slow and not reliability" --ignore=tests/e2e

# The engine's tests with every engine on a PostgreSQL store (a schema of its own per test) instead
# of an SQLite file: the server on 127.0.0.1:5432, or TIERCEL_TEST_PG (see tests/postgres.py).
test-postgres: setup
	TIERCEL_TEST_STORE=postgres $(BIN)/pytest -q -n 4 -m "not slow and not reliability" tests/engine

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

conformance: setup
	$(BIN)/python tests/run_conformance.py

bench-setup:
	PY=$(PY) sh bench/peers/setup.sh

bench: setup bench-setup
	mkdir -p bench/.results
	$(BIN)/python bench/engine_overhead.py --runs 5 --json bench/.results/overhead.json
	$(BIN)/python bench/compare.py --runs 3 --json bench/.results/compare.json
	$(BIN)/python bench/scaling.py --runs 3 --json bench/.results/scaling.json
	$(BIN)/python bench/server_load.py --seconds 20 --runs 3 --rates 6000,30000,45000,60000,75000 --json bench/.results/load.json
	$(BIN)/python bench/server_load.py --seconds 20 --runs 3 --rates 60000 --sync NORMAL --json bench/.results/load_normal.json
	$(MAKE) bench-cluster
	$(BIN)/python bench/store_scale.py --json bench/.results/store.json
	$(BIN)/python bench/ui_responsiveness.py
	$(BIN)/python bench/report.py bench/.results bench/RESULTS.md

# The benchmark flow through a PostgreSQL cluster (0, 1, 2, 4 worker processes) beside SQLite, and
# how soon a killed worker's task runs again. Needs a PostgreSQL server at PG_BENCH.
PG_BENCH ?= postgresql://postgres@127.0.0.1/postgres
bench-cluster: setup
	mkdir -p bench/.results
	for w in 0 1 2 4; do $(BIN)/python bench/server_load.py --postgres $(PG_BENCH) --workers $$w --rates 1000,6000,15000,30000 --seconds 10 --runs 1 --p99-ms 500 --json bench/.results/cluster_w$$w.json; done
	$(BIN)/python bench/server_load.py --rates 1000,6000,15000,30000 --seconds 10 --runs 1 --p99-ms 500 --json bench/.results/cluster_sqlite.json
	$(BIN)/python bench/cluster_recovery.py --postgres $(PG_BENCH) --trials 5 --json bench/.results/cluster_recovery.json
	$(BIN)/python bench/server_takeover.py --postgres $(PG_BENCH) --trials 5 --chaos-seconds 300 --json bench/.results/server_takeover.json
	$(BIN)/python bench/scaling.py --postgres $(PG_BENCH) --runs 5 --json bench/.results/backends.json
	$(BIN)/python bench/shared_files.py --postgres $(PG_BENCH) --json bench/.results/shared_files.json

screenshots: setup
	$(BIN)/python -m tiercel.app.screenshots screenshots

check: lint typecheck test
