# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint format bench system-deps interop-deps clean help

help:
	@echo "make run    - start the bot on paper trading with the sidecar (dashboard http://127.0.0.1:8080)"
	@echo "make test   - install test dependencies (Python and system) and run the whole suite"
	@echo "make lint   - ruff check + format check"
	@echo "make bench  - run every benchmark script and print its figures"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,polymarket]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) main.py

system-deps:
	@bash scripts/install_test_deps.sh

# the official MCP SDK (1.x, 2.x) and the MCP Inspector, each in its own folder under .cache/ (never .venv)
interop-deps: system-deps
	@bash scripts/install_interop_deps.sh

test: $(STAMP) system-deps interop-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	@for script in tests/benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done
	@echo "== tests/test_batch_performance.py (trading latency with the sidecar busy vs without)"
	$(PY) tests/test_batch_performance.py --duration 180 --with-mcp

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis htmlcov .coverage
