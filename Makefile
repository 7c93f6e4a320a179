# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need
# (uv if missing, then the locked environment) and keep Prefect's state inside the project.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_HOME := $(CURDIR)/.prefect
export UV_COMPILE_BYTECODE := 1
export GX_ANALYTICS_ENABLED := false

UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --locked --no-sync
ORACLE := tests/oracle

.PHONY: help install age-cli demo test test-fast bench lint format clean

help:
	@echo "make demo    install and run the pipeline on an embedded SurrealDB (./.demo)"
	@echo "make test    install and run the whole test suite"
	@echo "make bench   run the benchmarks, results in benchmarks/results/"
	@echo "make lint    ruff"

install: .venv/.synced age-cli $(if $(shell command -v node 2>/dev/null),$(ORACLE)/node_modules/.package-lock.json)

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --locked
	@touch $@

# Debian's `age` command line: the tests open an encrypted backup object with it, as an
# operator would without this tool. Installed only when missing, with apt-get, as root.
age-cli:
	@if ! command -v age >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's age (for the encryption interchange test)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q age >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q age >/dev/null; }; \
	  else \
	    echo "note: the age command line is missing (apt-get install age): its interchange test will be skipped"; \
	  fi; \
	fi

# SurrealDB's own exporter/importer (engine 3.0.2 under Node), the oracle of the dump tests.
$(ORACLE)/node_modules/.package-lock.json: $(ORACLE)/package.json $(ORACLE)/package-lock.json
	cd $(ORACLE) && npm ci --no-audit --no-fund --loglevel=error

demo: install
	$(RUN) spectron-backup demo

test: install
	$(RUN) pytest

bench: install
	$(RUN) python -m benchmarks.run

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

clean:
	rm -rf .demo .prefect .pytest_cache
